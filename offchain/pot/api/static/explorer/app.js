// PoT explorer: a read-only view of this replica's ledger, from its JSON API (/docs).
// No framework and nothing fetched from anywhere but this replica. Every piece of data from the
// network goes into the page as text (textContent), never as HTML: CIDs and the like are
// whatever a participant chose to write.
"use strict";
(function () {
  const POLL_MS = 3000;           // one /v1/health a poll; the page's data only when the ledger moved
  const MAX_BACKOFF_MS = 30000;
  const WEI = 10n ** 18n;
  const SVG_NS = "http://www.w3.org/2000/svg";
  // [phase, label, start field, end field] of CONVENTIONS.md's timeline ("a|b": a, else b)
  const PHASES = [
    ["training", "Training", "t0", "train_end"],
    ["model-reveal", "Model reveal", "train_end", "reveal_end"],
    ["test-release", "Test release", "reveal_end", "t3|release_end"],
    ["validation", "Validation", "t3", "validate_end"],
    ["validation-reveal", "Validation reveal", "validate_end", "validation_reveal_end"],
    ["challenge", "Challenge", "validation_reveal_end", "challenge_end"],
    ["challenge-reveal", "Challenge reveal", "challenge_end", "challenge_reveal_end"],
  ];
  const PHASE_LABEL = Object.fromEntries(PHASES.map(([p, l]) => [p, l]));
  PHASE_LABEL.finalization = "Finalization";
  PHASE_LABEL["not-started"] = "Not started";
  const STATUSES = ["open", "verifying", "settling", "settled", "skipped", "cancelled"];

  const main = document.getElementById("main");
  const statusLine = document.getElementById("status");
  const liveButton = document.getElementById("live");
  const announce = document.getElementById("announce");
  const state = {
    live: true, timer: null, backoff: POLL_MS, seq: null, view: null, liveEl: null, lastHtml: "",
    ledgerTime: null, ledgerAt: 0, receipts: new Map(), routeToken: 0,
  };

  // --- data -------------------------------------------------------------------------------------

  // Amounts are wei and pass 2**53: keep them exact as BigInt where the browser tells the source
  function parseJSON(text) {
    return JSON.parse(text, function (key, value, context) {
      if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
        return BigInt(context.source);
      }
      return value;
    });
  }

  class HttpError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path) {
    const r = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" });
    const text = await r.text();
    let body = null;
    try { body = parseJSON(text); } catch (e) { body = null; }
    if (!r.ok) throw new HttpError(r.status, (body && body.detail) || `HTTP ${r.status}`);
    if (body && typeof body.time === "number") setLedgerTime(body.time);
    return body;
  }

  async function apiOrNull(path) {
    try { return await api(path); } catch (e) { if (e instanceof HttpError && e.status === 404) return null; throw e; }
  }

  async function receipt(nonce) {
    const known = state.receipts.get(nonce);
    if (known && (known.gasUsed != null || performance.now() < known.retryAt)) return known.gasUsed != null ? known : null;
    try {
      const r = await api(`v1/settlements/${nonce}/receipt`);
      state.receipts.set(nonce, r);   // a mined receipt never changes
      return r;
    } catch (e) {
      // no chain node behind this replica, or the transaction not there yet: ask again later
      state.receipts.set(nonce, { retryAt: performance.now() + 15000 });
      return null;
    }
  }

  function setLedgerTime(t) { state.ledgerTime = t; state.ledgerAt = performance.now(); }
  function ledgerNow() {
    if (state.ledgerTime == null) return Date.now() / 1000;
    return state.ledgerTime + (performance.now() - state.ledgerAt) / 1000;
  }

  // --- building the page ------------------------------------------------------------------------

  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k == null || k === false) continue;
      el.append(k instanceof Node ? k : String(k));
    }
    return el;
  }
  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") el.setAttribute("class", v);
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    return el;
  }
  function h(tag, attrs, ...kids) { return append(setAttrs(document.createElement(tag), attrs), kids); }
  function s(tag, attrs, ...kids) { return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), kids); }

  let idSeq = 0;
  const uid = (p) => `${p}-${++idSeq}`;

  function section(title, ...kids) {
    const id = uid("sec");
    return h("section", { "aria-labelledby": id }, h("h2", { id, text: title }), ...kids);
  }

  function table(caption, headers, rows, foot) {
    const head = h("tr", null, headers.map((c) => {
      const [label, cls] = Array.isArray(c) ? c : [c, null];
      return h("th", { scope: "col", class: cls }, label);
    }));
    const body = rows.length ? rows.map((r) => h("tr", null, r.map((cell, i) => {
      const cls = Array.isArray(headers[i]) ? headers[i][1] : null;
      return h("td", { class: cls }, cell);
    }))) : [h("tr", null, h("td", { colspan: headers.length, class: "muted" }, "None."))];
    return h("div", { class: "table-wrap" }, h("table", null, h("caption", { class: "sr-only" }, caption),
      h("thead", null, head), h("tbody", null, body), foot ? h("tfoot", null, foot) : null));
  }

  function facts(pairs) {
    return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
  }

  function cards(pairs) {
    return h("ul", { class: "cards" }, pairs.map(([k, v]) => h("li", { class: "card" },
      h("span", { class: "k" }, k), h("span", { class: "v" }, v))));
  }

  // --- formatting -------------------------------------------------------------------------------

  const nf = new Intl.NumberFormat("en-US");
  function num(n) { return n == null ? "–" : nf.format(n); }
  function big(x) { return typeof x === "bigint" ? x : BigInt(Math.round(Number(x))); }
  function potText(amount) {
    let a = big(amount);
    const neg = a < 0n;
    if (neg) a = -a;
    if (a > 0n && a < 10n ** 12n) return `${neg ? "−" : ""}${nf.format(a)} wei`;   // below 0.000001 POT
    let frac = (a % WEI).toString().padStart(18, "0").replace(/0+$/, "");
    if (frac.length > 6) frac = frac.slice(0, 6) + "…";
    return `${neg ? "−" : ""}${nf.format(a / WEI)}${frac ? "." + frac : ""} POT`;
  }
  function pot(amount) {
    return h("span", { class: "amount", title: `${big(amount).toString()} wei` }, potText(amount));
  }
  function short(hex, n) {
    if (!hex) return "–";
    n = n || 6;
    return hex.length > 2 * n + 4 ? `${hex.slice(0, n + 2)}…${hex.slice(-n)}` : hex;
  }
  function hexCode(hex, n) { return hex ? h("code", { title: hex }, short(hex, n)) : "–"; }
  function addr(a) {
    if (!a) return "–";
    return h("a", { href: `#/accounts/${a}`, class: "mono", title: a }, short(a, 4));
  }
  function orderLink(id) { return h("a", { href: `#/orders/${id}` }, `Order ${id}`); }
  function nonceLink(n) { return n == null ? "–" : h("a", { href: `#/settlements/${n}` }, `Settlement ${n}`); }
  function ppm(score) {
    if (score == null) return "–";
    return h("span", { title: `${num(score)} ppm` }, `${(Number(score) / 10000).toFixed(2)} %`);
  }
  function clock(t) {
    if (t == null) return "–";
    return new Date(Number(t) * 1000).toLocaleTimeString("en-GB", { hour12: false });
  }
  function when(t) {
    if (t == null) return "–";
    const d = new Date(Number(t) * 1000);
    return h("time", { datetime: d.toISOString() }, `${d.toLocaleDateString("en-CA")} ${clock(t)}`);
  }
  function duration(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 90) return `${sec} s`;
    const m = Math.floor(sec / 60), r = sec % 60;
    if (m < 90) return r ? `${m} min ${r} s` : `${m} min`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }
  // filled in by tickCountdowns() every second from the ledger's clock
  function countdown(until, prefix) {
    if (until == null) return null;
    return h("span", { class: "countdown", "data-until": until, "data-prefix": prefix || "ends in" });
  }
  function tickCountdowns(root) {
    const now = ledgerNow();
    for (const el of (root || document).querySelectorAll(".countdown[data-until]")) {
      const left = Number(el.dataset.until) - now;
      el.textContent = left > 0 ? `${el.dataset.prefix} ${duration(left)}` : "ended";
    }
  }
  function phaseBadge(phase) {
    return h("span", { class: "badge" }, h("span", { class: `dot ph-${phase}`, "aria-hidden": "true" }),
      PHASE_LABEL[phase] || phase);
  }
  function statusBadge(status, cancelled) {
    if (cancelled) return h("span", { class: "badge warn" }, "cancelled");
    const cls = { settled: "ok", skipped: "warn", verifying: "warn" }[status] || "";
    return h("span", { class: `badge ${cls}` }, status);
  }
  function modelType(hex) {
    if (!hex) return "–";
    let out = "";
    for (let i = 2; i < hex.length; i += 2) {
      const c = parseInt(hex.slice(i, i + 2), 16);
      if (!c) break;
      out += String.fromCharCode(c);
    }
    return out || hex;
  }
  function windowEnd(tl, field) {
    for (const f of field.split("|")) if (tl[f] != null) return tl[f];
    return null;
  }
  function segments(tl) {
    const out = [];
    for (const [phase, label, a, b] of PHASES) {
      const start = windowEnd(tl, a), end = windowEnd(tl, b);
      if (start != null && end != null && end > start) out.push({ phase, label, start, end });
    }
    return out;
  }

  // --- charts (SVG, drawn here) -----------------------------------------------------------------

  function legend(phases) {
    return h("ul", { class: "legend", "aria-label": "Phases" }, phases.map((p) =>
      h("li", null, h("span", { class: `dot ph-${p}`, "aria-hidden": "true" }), PHASE_LABEL[p])));
  }

  // Phases of each order on one time axis, with a line at the ledger's now
  function gantt(rows, caption) {
    const W = 960, left = 96, right = 16, top = 8, rowH = 26, axisH = 26;
    const H = top + rows.length * rowH + axisH;
    let lo = Infinity, hi = -Infinity;
    for (const r of rows) for (const g of r.segs) { lo = Math.min(lo, g.start); hi = Math.max(hi, g.end); }
    const now = ledgerNow();
    if (!isFinite(lo)) { lo = now - 60; hi = now + 60; }
    // the axis runs to now only while an order still runs: closed ones keep their bars readable
    if (rows.some((r) => r.open)) hi = Math.max(hi, now);
    const span = Math.max(hi - lo, 10);
    lo -= span * 0.02; hi += span * 0.02;
    const x = (t) => left + ((t - lo) / (hi - lo)) * (W - left - right);
    const titleId = uid("gt"), descId = uid("gd");
    const desc = rows.map((r) => `${r.label}: ${PHASE_LABEL[r.phase] || r.phase}`).join("; ");
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${titleId} ${descId}` },
      s("title", { id: titleId }, caption), s("desc", { id: descId }, `Current phases: ${desc}.`));
    const ticks = 6;
    for (let i = 0; i <= ticks; i++) {
      const t = lo + ((hi - lo) * i) / ticks, xx = x(t);
      svg.append(s("line", { class: "grid-line", x1: xx, x2: xx, y1: top, y2: H - axisH }));
      svg.append(s("text", { x: xx, y: H - 8, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" },
        clock(t)));
    }
    rows.forEach((r, i) => {
      const y = top + i * rowH;
      svg.append(s("text", { x: 4, y: y + rowH / 2 + 4 }, r.label));
      for (const g of r.segs) {
        const rect = s("rect", { class: `ph-${g.phase}`, x: x(g.start), y: y + 4, height: rowH - 8, rx: 2,
          width: Math.max(1, x(g.end) - x(g.start)) });
        rect.append(s("title", null, `${r.label} · ${g.label}: ${clock(g.start)}–${clock(g.end)}`));
        svg.append(rect);
      }
    });
    svg.append(s("line", { class: "axis", x1: left, x2: W - right, y1: H - axisH, y2: H - axisH }));
    const showNow = now >= lo && now <= hi;
    if (showNow) svg.append(s("line", { class: "now", x1: x(now), x2: x(now), y1: top - 4, y2: H - axisH }));
    const used = new Set(rows.flatMap((r) => r.segs.map((g) => g.phase)));
    return h("figure", { class: "chart" }, svg,
      h("figcaption", null, showNow ? `${caption}. The dashed line is the ledger's time now.` : `${caption}.`),
      legend(PHASES.map((p) => p[0]).filter((p) => used.has(p))));
  }

  // One bar per item (gas per settlement), value labels on the bars
  function bars(items, caption, unit) {
    const W = 960, left = 8, top = 22, H = 180, bottom = 28;
    const max = Math.max(1, ...items.map((i) => i.value || 0));
    const bw = Math.min(90, (W - left * 2) / Math.max(items.length, 1));
    const titleId = uid("bt"), descId = uid("bd");
    const desc = items.map((i) => `${i.label}: ${i.value == null ? "unknown" : num(i.value) + " " + unit}`).join("; ");
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${titleId} ${descId}` },
      s("title", { id: titleId }, caption), s("desc", { id: descId }, desc || "No data."));
    items.forEach((it, i) => {
      const x = left + i * bw + bw * 0.15, w = bw * 0.7;
      const hgt = it.value == null ? 4 : Math.max(2, ((H - top - bottom) * it.value) / max);
      const y = H - bottom - hgt;
      const rect = s("rect", { class: it.value == null ? "bar pending" : "bar", x, y, width: w, height: hgt, rx: 2 });
      rect.append(s("title", null, `${it.label}: ${it.value == null ? "not executed" : num(it.value) + " " + unit}`
        + (it.note ? ` (${it.note})` : "")));
      svg.append(rect);
      svg.append(s("text", { x: x + w / 2, y: y - 5, "text-anchor": "middle" }, it.value == null ? "–" : num(it.value)));
      svg.append(s("text", { x: x + w / 2, y: H - 10, "text-anchor": "middle" }, it.label));
    });
    svg.append(s("line", { class: "axis", x1: left, x2: W - left, y1: H - bottom, y2: H - bottom }));
    return h("figure", { class: "chart" }, svg, h("figcaption", null, caption));
  }

  // --- tables shared by several pages -----------------------------------------------------------

  function ordersTable(orders, caption) {
    return table(caption, ["Order", "Phase", "Status", ["Reward", "num"], "Client", ["Claims", "num"],
      ["Models", "num"], "Winner", "Settlement"], orders.map((o) => [
      orderLink(o.order.orderId),
      [phaseBadge(o.phase), " ", o.status === "open" && !o.cancelled ? countdown(o.phaseEnd) : null],
      statusBadge(o.status, o.cancelled), pot(o.order.reward), addr(o.order.client), num(o.claims), num(o.models),
      o.winner ? addr(o.winner) : "–", nonceLink(o.nonce)]));
  }

  function orderGantt(orders, caption) {
    const rows = orders.slice().reverse().map((o) => ({
      label: `Order ${o.order.orderId}`, phase: o.status === "open" ? o.phase : o.status, segs: segments(o.timeline),
      open: o.status === "open" && !o.cancelled,
    }));
    return gantt(rows, caption);
  }

  async function gasItems(settlements) {
    const done = settlements.filter((x) => x.executed).slice(0, 12).reverse();
    const rs = await Promise.all(done.map((x) => receipt(x.nonce)));
    return done.map((x, i) => ({
      label: `#${x.nonce}`, value: rs[i] ? rs[i].gasUsed : null,
      note: `${x.orderIds.length} order${x.orderIds.length === 1 ? "" : "s"}`,
    }));
  }

  async function settlementsTable(settlements, caption) {
    const rs = await Promise.all(settlements.map((x) => (x.executed ? receipt(x.nonce) : null)));
    return table(caption, ["Settlement", "Orders", ["Paid", "num"], "Signatures", "State", "Transaction",
      ["Gas", "num"]], settlements.map((x, i) => [
      nonceLink(x.nonce), x.orderIds.map((id, j) => [j ? ", " : "", h("a", { href: `#/orders/${id}` }, String(id))]),
      pot(x.total), `${x.signatures} (${x.threshold} needed)`,
      x.executed ? h("span", { class: "badge ok" }, "executed") : h("span", { class: "badge warn" }, "pending"),
      x.txHash ? hexCode(x.txHash, 6) : "–", rs[i] ? num(rs[i].gasUsed) : "–"]));
  }

  function healthBadge(m, behind) {
    if (!m.ok) return h("span", { class: "badge bad" }, "down");
    if (behind.includes(m.url)) return h("span", { class: "badge warn" }, "behind");
    return h("span", { class: "badge ok" }, "up");
  }

  function committeeSummary(c) {
    const n = c.committee.length;
    const agree = c.digestsAgree
      ? h("span", { class: "badge ok" }, "digests agree")
      : h("span", { class: "badge bad" }, "digests DIFFER");
    const views = c.views.length === 1 ? `view ${c.views[0]}` : `views ${c.views.join(", ") || "–"}`;
    const seqs = c.members.filter((m) => m.ok).map((m) => m.ledgerSeq);
    return h("p", null, `${c.answering} of ${n} members answering · ${views} · ledger seq `,
      seqs.length ? `${Math.min(...seqs)}–${Math.max(...seqs)}` : "–", " · ", agree,
      c.behind.length ? [" · ", h("span", { class: "badge warn" }, `${c.behind.length} behind`)] : null);
  }

  function committeeTable(c, full) {
    const headers = ["Replica", "Address", "Health", ["View", "num"], ["Ledger seq", "num"], "Ledger digest"];
    if (full) headers.push("API", ["Executed", "num"], "Primary", ["Latency", "num"]);
    const rows = c.members.map((m) => {
      const row = [m.replicaId == null ? "?" : `${m.replicaId}${m.self ? " (this one)" : ""}`, addr(m.address),
        healthBadge(m, c.behind), m.ok ? num(m.view) : "–", m.ok ? num(m.ledgerSeq) : "–",
        m.ok ? hexCode(m.ledgerDigest, 6) : h("span", { class: "muted" }, m.error || "no answer")];
      if (full) row.push(m.url ? h("code", null, m.url) : "–", m.ok ? num(m.lastExecuted) : "–",
        m.primary == null ? "–" : String(m.primary), m.latencyMs == null ? "–" : `${m.latencyMs} ms`);
      return row;
    });
    return table("Committee members", headers, rows);
  }

  // --- pages ------------------------------------------------------------------------------------

  function overview() {
    return {
      title: "Overview", nav: "#/",
      live: async () => {
        const [committee, orders, settlements] = await Promise.all([
          api("v1/committee"), api("v1/orders?limit=8"), api("v1/settlements?limit=10")]);
        const gas = await gasItems(settlements.settlements);
        return [
          cards([["Orders", num(orders.total)], ["Settlements", num(settlements.total)],
            ["Committee", `${committee.answering} of ${committee.committee.length} up`],
            ["Ledger seq", num(orders.seq)], ["Ledger time", clock(orders.time)]]),
          section("Committee", committeeSummary(committee), committeeTable(committee, false),
            h("p", null, h("a", { href: "#/committee" }, "Committee details"))),
          section("Recent orders",
            orders.orders.length ? orderGantt(orders.orders, "Phases of the most recent orders") : null,
            ordersTable(orders.orders, "Most recent orders"),
            h("p", null, h("a", { href: "#/orders" }, `All orders (${num(orders.total)})`))),
          section("Settlements",
            gas.some((g) => g.value != null) ? bars(gas, "Gas used by each executed settlement transaction", "gas") : null,
            await settlementsTable(settlements.settlements, "Most recent settlements"),
            h("p", null, h("a", { href: "#/settlements" }, `All settlements (${num(settlements.total)})`))),
        ];
      },
    };
  }

  function ordersPage(params) {
    const q = new URLSearchParams(params || "");
    const pick = (k) => q.get(k) || "";
    const phaseSel = h("select", { id: "f-phase", name: "phase" }, h("option", { value: "" }, "any"),
      h("option", { value: "active", selected: pick("phase") === "active" }, "still in their cycle"),
      [...PHASES.map((p) => p[0]), "finalization"].map((p) =>
        h("option", { value: p, selected: pick("phase") === p }, PHASE_LABEL[p])));
    const statusSel = h("select", { id: "f-status", name: "status" }, h("option", { value: "" }, "any"),
      STATUSES.map((st) => h("option", { value: st, selected: pick("status") === st }, st)));
    const form = h("form", { class: "filters", "aria-label": "Filter orders" },
      h("label", { for: "f-phase" }, "Phase", phaseSel),
      h("label", { for: "f-status" }, "Status", statusSel),
      h("label", { for: "f-client" }, "Client address",
        h("input", { id: "f-client", name: "client", value: pick("client"), spellcheck: "false",
          pattern: "0x[0-9a-fA-F]{40}", placeholder: "0x…" })),
      h("label", { for: "f-miner" }, "Miner address",
        h("input", { id: "f-miner", name: "miner", value: pick("miner"), spellcheck: "false",
          pattern: "0x[0-9a-fA-F]{40}", placeholder: "0x…" })),
      h("button", { type: "submit" }, "Apply"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const out = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) out.set(k, v.trim());
      location.hash = `#/orders${out.toString() ? "?" + out : ""}`;
    });
    return {
      title: "Orders", nav: "#/orders",
      head: () => [h("p", { class: "lede" }, "Every order the ledger holds, newest first."), form],
      live: async () => {
        const query = new URLSearchParams(q);
        query.set("limit", "25");
        const doc = await api(`v1/orders?${query}`);
        const base = new URLSearchParams(q);
        base.delete("cursor");
        const older = new URLSearchParams(base);
        if (doc.nextCursor != null) older.set("cursor", doc.nextCursor);
        return [
          doc.orders.length ? orderGantt(doc.orders, "Phases of the orders on this page") : null,
          h("p", null, `${num(doc.total)} matching order${doc.total === 1 ? "" : "s"}.`),
          ordersTable(doc.orders, "Orders"),
          h("nav", { class: "pager", "aria-label": "Pages" },
            q.get("cursor") ? h("a", { href: `#/orders${base.toString() ? "?" + base : ""}` }, "Newest") : null,
            doc.nextCursor != null ? h("a", { href: `#/orders?${older}` }, "Older orders") : null),
        ];
      },
    };
  }

  function phaseList(cyc) {
    const tl = cyc.timeline, now = ledgerNow();
    return h("ol", { class: "phases", "aria-label": "Phases" }, PHASES.map(([p, label, a, b]) => {
      const start = windowEnd(tl, a), end = windowEnd(tl, b);
      let cls = "upcoming", text = start == null ? "after the test data is released" : `${clock(start)} – ${clock(end)}`;
      if (cyc.phase === p && cyc.status === "open") cls = "current";
      else if (end != null && end <= now) cls = "done";
      else if (start == null && (cyc.phase === "finalization" || cyc.status !== "open")) {
        cls = "skipped"; text = "did not happen (no test data)";
      }
      const stateWord = { current: "now", done: "done", upcoming: "upcoming", skipped: "skipped" }[cls];
      return h("li", { class: cls, "aria-current": cls === "current" ? "step" : null },
        h("span", { class: `dot ph-${p}`, "aria-hidden": "true" }), `${label} (${stateWord})`,
        h("span", null, text, " ", cls === "current" ? countdown(end) : null));
    }));
  }

  function orderPage(id) {
    return {
      title: `Order ${id}`, nav: "#/orders",
      live: async () => {
        const [cyc, out] = await Promise.all([apiOrNull(`v1/orders/${id}`), apiOrNull(`v1/orders/${id}/outcome`)]);
        if (!cyc) return [h("p", { class: "notice bad" }, `Order ${id} is not in this replica's ledger (yet).`)];
        const o = cyc.order, tl = cyc.timeline;
        const rc = out && out.executed ? await receipt(out.nonce) : null;
        const scores = new Map();
        for (const m of cyc.models) {
          const vals = m.validations.map((v) => v.score);
          scores.set(m.mid, m.verifiedScore != null ? m.verifiedScore : vals.length && vals.every((v) => v === vals[0]) ? vals[0] : null);
        }
        const verdicts = new Map((out ? out.verdicts : []).map((v) => [v.challenger, v]));
        const allValidations = cyc.models.flatMap((m) => m.validations.map((v) => ({ ...v, miner: m.miner })));
        const endOf = cyc.status === "open" && cyc.phase !== "finalization"
          ? countdown(windowEnd(tl, (PHASES.find((p) => p[0] === cyc.phase) || [, , , "t0"])[3])) : null;
        const parts = [
          facts([
            ["Status", statusBadge(cyc.status, cyc.cancelled)],
            ["Phase", [phaseBadge(cyc.phase), " ", endOf]],
            ["Reward", pot(o.reward)],
            ["Client", addr(o.client)],
            ["Model type", h("code", null, modelType(o.modelType))],
            ["Spec", h("code", null, o.specCid)],
            ["Test data", cyc.testCid ? h("code", null, cyc.testCid) : "not released"],
            ["Placed", when(o.t0)],
            ["Settlement", nonceLink(cyc.nonce)],
          ]),
          section("Timeline", gantt([{ label: `Order ${id}`, phase: cyc.phase, segs: segments(tl),
            open: cyc.status === "open" && !cyc.cancelled }],
            `Windows of order ${id}`), phaseList(cyc)),
          section("Claims", table("Claims", ["Miner", "Commitment", ["Ledger seq", "num"]],
            cyc.claims.map((c) => [addr(c.miner), hexCode(c.commitment), num(c.seq)]))),
          section("Revealed models", table("Revealed models", ["Model", "Miner", "Stored at", ["Validations", "num"],
            ["Score", "num"], "PoT.Verify"], cyc.models.map((m) => [
            hexCode(m.mid), addr(m.miner), h("code", null, m.modelCid), num(m.validations.length), ppm(scores.get(m.mid)),
            m.verifiedScore != null ? ppm(m.verifiedScore)
              : cyc.pendingVerification.includes(m.mid) ? "running" : cyc.excluded.includes(m.mid) ? "excluded" : "–"]))),
          section("Validations", table("Validations", ["Validator", "Model", ["Score", "num"], ["vStake", "num"]],
            allValidations.map((v) => [addr(v.validator), hexCode(v.mid), ppm(v.score), pot(v.vStake)]))),
          section("Challenges", table("Challenges", ["Challenger", ["cStake", "num"], "Challenged validation", "Verdict"],
            cyc.challenges.map((c) => {
              const v = verdicts.get(c.challenger);
              return [addr(c.challenger), pot(c.cStake), c.vid ? hexCode(c.vid) : "not revealed",
                v ? h("span", { class: `badge ${v.upheld ? "ok" : "bad"}` }, v.upheld ? "upheld" : "rejected") : "–"];
            }))),
        ];
        parts.push(section("Outcome", ...outcome(out, rc, cyc)));
        return parts;
      },
    };
  }

  function outcome(out, rc, cyc) {
    if (!out || out.nonce == null) {
      const fin = windowEnd(cyc.timeline, "challenge_reveal_end|release_end");
      return [h("p", { class: "notice" }, "Not settled yet: the committee builds the settlement once the last window is over",
        fin ? [" (", clock(fin), ", ", countdown(fin, "in"), ")"] : null, ".")];
    }
    const total = out.paid.reduce((a, p) => a + big(p.amount), 0n);
    const parts = [
      facts([
        ["Winner", out.winner ? [addr(out.winner), " with ", ppm(out.winningScore)] : "none"],
        out.winningMid ? ["Winning model", hexCode(out.winningMid)] : null,
        ["Committee tax", out.perMember ? [pot(out.perMember), ` to each of ${out.members} members`] : "none"],
        ["Settlement", [nonceLink(out.nonce), " ", out.executed
          ? h("span", { class: "badge ok" }, out.applied === false ? "executed, order skipped" : "executed")
          : h("span", { class: "badge warn" }, "waiting for signatures or execution")]],
        ["Transaction", out.txHash ? h("code", { class: "tx" }, out.txHash) : "not executed yet"],
        rc ? ["Gas used", `${num(rc.gasUsed)} (${num(rc.gasPerOrder)} per order; ${out.batchOrders} order${out.batchOrders === 1 ? "" : "s"} in the batch)`] : null,
        rc ? ["Block", [num(rc.blockNumber), " at ", when(rc.blockTime)]] : null,
      ]),
      h("h3", null, "Payouts (committee tax included)"),
      table("Payouts", ["To", "As", ["Amount", "num"]], out.paid.map((p) => [addr(p.to), p.roles.join(", ") || "–", pot(p.amount)]),
        h("tr", null, h("td", null, "Total"), h("td", null, `reward ${potText(out.reward)}`), h("td", { class: "num" }, pot(total)))),
    ];
    if (out.slashes.length || out.verdicts.length) {
      parts.push(h("h3", null, "Slashes"), table("Slashes", ["Staker", ["Up to", "num"], "To"],
        out.slashes.map((x) => [addr(x.staker), pot(x.amount), addr(x.to)])));
      parts.push(h("h3", null, "Challenge verdicts"), table("Challenge verdicts", ["Challenger", "Validator", "Verdict"],
        out.verdicts.map((v) => [addr(v.challenger), addr(v.validator), v.upheld ? "upheld" : "rejected"])));
    }
    return parts;
  }

  function accountPage(address) {
    return {
      title: `Account ${short(address, 4)}`, nav: null,
      head: () => [h("p", { class: "lede" }, h("code", null, address))],
      live: async () => {
        const a = await api(`v1/accounts/${address}`);
        const n = a.node;
        return [
          cards([["Stake", n ? potText(n.stake) : "none"], ["Locked", n ? potText(n.locked) : "–"],
            ["Earned", potText(a.earned)], ["Pending", potText(a.pending)], ["Slashed", potText(a.slashed)]]),
          facts([["Roles", n && n.roleNames.length ? n.roleNames.join(", ") : "none staked"],
            ["Committee member", a.member ? "yes" : "no"], ["Orders", num(a.orderCount)]]),
          section("Orders", table("Orders of this account", ["Order", "As", "Status", "Phase", ["Reward", "num"]],
            a.orders.map((o) => [orderLink(o.orderId), o.roles.join(", "), statusBadge(o.status, o.cancelled),
              o.status === "open" ? phaseBadge(o.phase) : "–", pot(o.reward)]))),
          section("Earnings", table("Earnings", ["Order", "Settlement", "From", ["Amount", "num"], "State"],
            a.earnings.map((e) => [orderLink(e.orderId), nonceLink(e.nonce), e.source === "slash" ? "a slashed stake" : "the order's reward",
              pot(e.amount), e.executed ? (e.applied ? "paid" : "skipped on-chain") : "pending"]))),
          section("Slashes", table("Slashes", ["Order", "Settlement", ["Up to", "num"], "To", "State"],
            a.slashes.map((x) => [orderLink(x.orderId), nonceLink(x.nonce), pot(x.amount), addr(x.to),
              x.executed ? "executed" : "pending"]))),
        ];
      },
    };
  }

  function settlementsPage(params) {
    const q = new URLSearchParams(params || "");
    return {
      title: "Settlements", nav: "#/settlements",
      head: () => [h("p", { class: "lede" }, "Every settlement batch the ledger built, newest first: what it paid, "
        + "its signatures, and its transaction once executed.")],
      live: async () => {
        const query = new URLSearchParams({ limit: "20" });
        if (q.get("cursor")) query.set("cursor", q.get("cursor"));
        const doc = await api(`v1/settlements?${query}`);
        const gas = await gasItems(doc.settlements);
        return [
          gas.some((g) => g.value != null) ? bars(gas, "Gas used by each executed settlement transaction", "gas") : null,
          h("p", null, `${num(doc.total)} settlement${doc.total === 1 ? "" : "s"}.`),
          await settlementsTable(doc.settlements, "Settlements"),
          h("nav", { class: "pager", "aria-label": "Pages" },
            q.get("cursor") ? h("a", { href: "#/settlements" }, "Newest") : null,
            doc.nextCursor != null ? h("a", { href: `#/settlements?cursor=${doc.nextCursor}` }, "Older settlements") : null),
        ];
      },
    };
  }

  function settlementPage(nonce) {
    return {
      title: `Settlement ${nonce}`, nav: "#/settlements",
      live: async () => {
        const [list, doc] = await Promise.all([api(`v1/settlements?limit=1&cursor=${Number(nonce) + 1}`),
          apiOrNull(`v1/settlements/${nonce}`)]);
        const x = list.settlements[0];
        if (!doc || !x || String(x.nonce) !== String(nonce)) {
          return [h("p", { class: "notice bad" }, `No settlement ${nonce} in this replica's ledger.`)];
        }
        const rc = x.executed ? await receipt(x.nonce) : null;
        return [
          facts([
            ["State", x.executed ? h("span", { class: "badge ok" }, "executed")
              : h("span", { class: "badge warn" }, `${x.signatures} of ${x.threshold} signatures`)],
            ["Orders", x.orderIds.map((id, j) => [j ? ", " : "", orderLink(id)])],
            x.skipped.length ? ["Skipped on-chain", x.skipped.join(", ")] : null,
            ["Paid in all", pot(x.total)],
            ["Epoch", String(x.epoch)],
            ["Deadline", when(x.deadline)],
            ["Digest", h("code", null, x.digest)],
            ["Transaction", x.txHash ? h("code", { class: "tx" }, x.txHash) : "not executed yet"],
            rc ? ["Gas used", `${num(rc.gasUsed)} (${num(rc.gasPerOrder)} per order)`] : null,
            rc ? ["Block", [num(rc.blockNumber), " at ", when(rc.blockTime)]] : null,
            rc ? ["Submitted by", addr(rc.sender)] : null,
            rc ? ["Receipt status", rc.status === 1 ? "success" : "reverted"] : null,
          ]),
          section("Paid", table("Paid by address", ["To", ["Amount", "num"]], x.paid.map((p) => [addr(p.to), pot(p.amount)]))),
          section("Slashes", table("Slashes", ["Order", "Staker", ["Up to", "num"], "To"],
            x.slashes.map((y) => [orderLink(y.orderId), addr(y.staker), pot(y.amount), addr(y.to)]))),
          section("Challenge verdicts", table("Challenge verdicts", ["Order", "Challenger", "Validator", "Verdict"],
            x.verdicts.map((v) => [orderLink(v.orderId), addr(v.challenger), addr(v.validator), v.upheld ? "upheld" : "rejected"]))),
          section("Signers", table("Signers", ["Member"], doc.signers.map((m) => [addr(m)]))),
        ];
      },
    };
  }

  function committeePage() {
    return {
      title: "Committee", nav: "#/committee",
      head: () => [h("p", { class: "lede" }, "Each member as this replica sees it (their /v1/info, asked at most once a second). "
        + "Members at the same ledger sequence number must have the same digest.")],
      live: async () => {
        const c = await api("v1/committee");
        return [committeeSummary(c), committeeTable(c, true),
          facts([["Signatures per settlement", `${c.threshold} of ${c.committee.length}`],
            ["Members (RewardMultisig)", c.committee.map((m, i) => [i ? ", " : "", addr(m)])]])];
      },
    };
  }

  function notFound() {
    return { title: "Not found", nav: null, live: async () => [h("p", null, "No such page. ", h("a", { href: "#/" }, "Overview"))] };
  }

  const ROUTES = [
    [/^#\/?$/, () => overview()],
    [/^#\/orders\/(\d+)$/, (m) => orderPage(m[1])],
    [/^#\/orders(?:\?(.*))?$/, (m) => ordersPage(m[1])],
    [/^#\/accounts\/(0x[0-9a-fA-F]{40})$/, (m) => accountPage(m[1])],
    [/^#\/settlements\/(\d+)$/, (m) => settlementPage(m[1])],
    [/^#\/settlements(?:\?(.*))?$/, (m) => settlementsPage(m[1])],
    [/^#\/committee$/, () => committeePage()],
  ];

  function route() {
    const hash = location.hash || "#/";
    for (const [re, make] of ROUTES) {
      const m = hash.match(re);
      if (m) return make(m);
    }
    return notFound();
  }

  // --- rendering and live updates ---------------------------------------------------------------

  let page = null;

  function focusKey(el) {
    return el && (el.getAttribute("href") || el.id || null);
  }

  async function refresh() {
    if (!page || !state.liveEl) return;
    const token = state.routeToken, target = state.liveEl;
    let nodes;
    idSeq = 0;   // the same data renders to the same markup, so an unchanged page is left alone
    try {
      nodes = await page.live();
    } catch (e) {
      if (token !== state.routeToken) return;
      if (!target.childNodes.length || target.querySelector(".loading")) {
        target.replaceChildren(h("p", { class: "notice bad", role: "alert" }, `Could not load this page: ${e.message}`));
      }
      throw e;
    }
    if (token !== state.routeToken) return;   // the reader went elsewhere meanwhile
    const fresh = h("div", null, nodes);
    if (fresh.innerHTML === state.lastHtml) return;   // nothing new: leave focus and selection alone
    state.lastHtml = fresh.innerHTML;
    const active = document.activeElement;
    const key = target.contains(active) ? focusKey(active) : null;
    target.replaceChildren(...fresh.childNodes);
    tickCountdowns(target);
    if (key) {
      const again = [...target.querySelectorAll("[href],[id]")].find((el) => focusKey(el) === key);
      if (again) again.focus({ preventScroll: true });
    }
  }

  async function show() {
    const hash = location.hash;
    if (hash && !hash.startsWith("#/")) {   // in-page anchors (the skip link) are not routes
      // the browser has already moved focus to <main>; do it only if it did not, and never take focus
      // from where the reader went before this (queued) event ran
      const at = document.activeElement;
      if (hash === "#main" && (!at || at === document.body || at.id === "skip")) main.focus();
      return;
    }
    state.routeToken++;
    state.lastHtml = "";
    page = route();
    document.title = `${page.title} · PoT explorer`;
    for (const a of document.querySelectorAll(".top nav a")) {
      if (page.nav && a.getAttribute("href") === page.nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    state.liveEl = h("div", { id: "live-region" }, h("p", { class: "loading muted" }, "Loading…"));
    main.replaceChildren(h("h1", null, page.title), ...(page.head ? page.head() : []), state.liveEl);
    try { await refresh(); } catch (e) { /* shown in the page; the poller retries */ }
  }

  function setStatus(text, error) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", !!error);
  }

  async function poll() {
    state.timer = null;
    if (!state.live) return;
    if (document.hidden) { schedule(POLL_MS); return; }
    try {
      const health = await api("v1/health");
      const wasDown = state.backoff > POLL_MS;
      state.backoff = POLL_MS;
      if (wasDown) announce.textContent = "Connection to the replica is back.";
      if (health.seq !== state.seq) {
        state.seq = health.seq;
        await refresh();
      }
      setStatus(`Live · ledger seq ${num(health.seq)} · ledger time ${clock(health.time)} · updates every ${POLL_MS / 1000} s`);
    } catch (e) {
      if (state.backoff === POLL_MS) announce.textContent = "Lost the connection to the replica; retrying.";
      state.backoff = Math.min(state.backoff * 2, MAX_BACKOFF_MS);
      setStatus(`Cannot reach this replica (${e.message}); retrying in ${Math.round(state.backoff / 1000)} s`, true);
    }
    schedule(state.backoff);
  }

  function schedule(ms) {
    if (state.timer) clearTimeout(state.timer);
    if (state.live) state.timer = setTimeout(poll, ms);
  }

  liveButton.addEventListener("click", () => {
    state.live = !state.live;
    liveButton.setAttribute("aria-pressed", String(state.live));
    liveButton.textContent = state.live ? "Pause live updates" : "Resume live updates";
    if (state.live) { announce.textContent = "Live updates resumed."; poll(); }
    else {
      if (state.timer) clearTimeout(state.timer);
      state.timer = null;
      announce.textContent = "Live updates paused.";
      setStatus(`Paused · ledger seq ${num(state.seq)}`);
    }
  });

  document.getElementById("search").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = document.getElementById("q").value.trim();
    if (/^\d+$/.test(q)) location.hash = `#/orders/${q}`;
    else if (/^(n|nonce\s*|#)\d+$/i.test(q)) location.hash = `#/settlements/${q.match(/\d+/)[0]}`;
    else if (/^0x[0-9a-fA-F]{40}$/.test(q)) location.hash = `#/accounts/${q}`;
    else if (/^0x[0-9a-fA-F]{64}$/.test(q)) {
      const doc = await api("v1/settlements?executed=true&limit=500");
      const hit = doc.settlements.find((x) => x.txHash && x.txHash.toLowerCase() === q.toLowerCase());
      if (hit) location.hash = `#/settlements/${hit.nonce}`;
      else announce.textContent = "No settlement transaction with that hash among the last 500.";
    } else {
      announce.textContent = "Type an order id, an address (0x and 40 hex digits), n and a settlement nonce, or a transaction hash.";
    }
  });

  window.addEventListener("hashchange", () => {
    show().then(() => { if (location.hash.startsWith("#/")) main.focus({ preventScroll: false }); });
  });
  setInterval(() => { if (state.live) tickCountdowns(main); }, 1000);
  show().then(() => poll());
})();
