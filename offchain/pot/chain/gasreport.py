"""What ``pot bench gas`` shows and writes: tables (never cut when piped), CSV, PNG plots and the
comparison of two runs. Works on the JSON document alone, so an old run can be re-rendered."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from pot.chain.gasbench import PAPER, PAPER_K, PAPER_PER_ACCOUNT

PATHS = ("executeSigned", "propose-confirm-execute")


def console():
    """A rich Console for the tables. Piped or redirected, it is as wide as the widest table (tables
    take only the width they need), so nothing is cut at 80 columns."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=1000, soft_wrap=True)


def load(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except ValueError as exc:
        import click

        raise click.BadParameter(f"{path} is not JSON: {exc}", param_hint="--compare") from None
    if not isinstance(doc, dict) or "functions" not in doc:
        import click

        raise click.BadParameter(f"{path} is not the JSON of `pot bench gas`", param_hint="--compare")
    return doc


def _money(gas: float, gwei: float, usd: float) -> tuple[str, str]:
    native = gas * gwei * 1e-9
    return f"{native:.6f}", f"${native * usd:.4f}"


def paper_ratio(row: dict) -> float | None:
    """How many times cheaper than the paper per paid account: only where the paper measured the same
    committee, k = 30 (the paper has no figure for any other k)."""
    if row["k"] != PAPER_K:
        return None
    return PAPER_PER_ACCOUNT / row["gas_per_account"]


def rows(doc: dict) -> list[dict[str, Any]]:
    """Every figure as one flat row (CSV and comparisons use the same keys)."""
    gwei, usd = doc["gas_price_gwei"], doc["token_usd"]
    out = []
    for name, gas in sorted(doc["functions"].items()):
        out.append({"section": "function", "scenario": name, "gas": gas, "per": "call", "gas_per": gas,
                    "paper_gas": PAPER.get(name)})
    for r in doc["payout"]:
        out.append({"section": "payout", "scenario": f"{r['path']} n={r['n']} k={r['k']} batch={r['batch']} "
                                                      f"{r['recipients']}",
                    "path": r["path"], "n": r["n"], "k": r["k"], "batch": r["batch"], "recipients": r["recipients"],
                    "gas": r["gas_per_account"] * r["batch"], "per": "account", "gas_per": r["gas_per_account"],
                    "paper_gas": PAPER_PER_ACCOUNT if r["k"] == PAPER_K else None})
    for r in doc.get("settlement", []):
        out.append({"section": "settlement", "scenario": f"executeSigned n={r['n']} k={r['k']} orders={r['orders']} "
                                                          f"{r['winners']}",
                    "path": "executeSigned", "n": r["n"], "k": r["k"], "orders": r["orders"], "winners": r["winners"],
                    "gas": r["gas"], "per": "order", "gas_per": r["gas_per_order"], "paper_gas": None})
    for r in out:
        r["native_per"], r["usd_per"] = (float(x.lstrip("$")) for x in _money(r["gas_per"], gwei, usd))
    return out


CSV_COLUMNS = ("section", "scenario", "path", "n", "k", "batch", "recipients", "orders", "winners", "gas", "per",
               "gas_per", "native_per", "usd_per", "paper_gas")


def write_csv(doc: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows(doc):
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    return path


def _describe(doc: dict) -> str:
    ch, b = doc.get("chain") or {}, doc.get("build") or {}
    if not ch:
        return "chain and build not recorded (a run from before they were)"
    commit = (b.get("commit") or "?")[:10] + (" + local changes" if b.get("dirty") else "")
    return (f"chain {ch.get('chain_id')} ({ch.get('client_version') or 'client ?'}, {ch.get('hardfork')}), "
            f"block {ch.get('block')}, {ch.get('rpc')}; contracts {commit}, solc {(b.get('solc') or '?').split('+')[0]}, "
            f"code {str(b.get('code_sha256') or '?')[:12]}; {doc.get('date', '?')}")


def render(doc: dict, console) -> None:
    from rich.table import Table

    gwei, usd = doc["gas_price_gwei"], doc["token_usd"]
    console.print(f"[dim]{_describe(doc)}; gas price {gwei:g} gwei ({doc.get('gas_price_source', 'option')}), "
                  f"${usd}/token[/dim]")

    def table(title: str, cols: tuple[str, ...], left: tuple[str, ...]) -> Table:
        t = Table(title=title)
        for col in cols:
            # a narrow terminal folds a cell rather than cut it
            t.add_column(col, justify="left" if col in left else "right", overflow="fold")
        return t

    t = table(f"PoT contract functions (gas; native token and USD at {gwei:g} gwei, ${usd}/token)",
              ("function", "gas", "native", "USD", "paper (Table 6)"), ("function",))
    for name, gas in sorted(doc["functions"].items()):
        paper = PAPER.get(name)
        t.add_row(name, f"{gas:,}", *_money(gas, gwei, usd), f"{paper:,}" if paper else "–")
    t.caption = "The paper's Table 6 measured proposeReward, confirmReward and executeReward only."
    console.print(t)
    p = table(f"Paying accounts, n = 30 (paper, k = {PAPER_K}: {PAPER_PER_ACCOUNT:,} gas = "
              f"{_money(PAPER_PER_ACCOUNT, gwei, usd)[1]} per account)",
              ("path", "k", "batch", "recipients", "gas/account", "native/account", "USD/account", "vs paper (k = 30)"),
              ("path", "recipients"))
    for row in doc["payout"]:
        gas = row["gas_per_account"]
        ratio = paper_ratio(row)
        p.add_row(row["path"], str(row["k"]), str(row["batch"]), row["recipients"], f"{gas:,}",
                  *_money(gas, gwei, usd), (f"{ratio:.1f}x less" if ratio < 10 else f"{ratio:.0f}x less") if ratio else "–")
    p.caption = "The paper measured k = 30 only: other k have nothing to compare with."
    console.print(p)
    if doc.get("settlement"):
        q = table("Settling orders: one executeSigned, k = 2f+1, every order with its own winner, "
                  "3 validators of a pool of 10, the tax to all n members",
                  ("n", "k", "orders", "winners", "payouts", "transfers", "gas", "gas/order", "USD/order"), ("winners",))
        for r in doc["settlement"]:
            q.add_row(str(r["n"]), str(r["k"]), str(r["orders"]), r["winners"], f"{r['payouts']:,}",
                      f"{r['transfers']:,}", f"{r['gas']:,}", f"{r['gas_per_order']:,}",
                      _money(r["gas_per_order"], gwei, usd)[1])
        console.print(q)


def compare(base: dict, doc: dict, console, base_name: str = "BASE") -> list[dict]:
    """Print every figure both runs have, with the change in gas and percent; returns the rows."""
    from rich.table import Table

    old = {r["scenario"]: r for r in rows(base)}
    new = {r["scenario"]: r for r in rows(doc)}
    console.print(f"[dim]base: {_describe(base)}[/dim]\n[dim]this: {_describe(doc)}[/dim]")
    codes = [(d.get("build") or {}).get("code_sha256") for d in (base, doc)]
    if all(codes):
        console.print("[dim]the same contract code in both runs[/dim]" if codes[0] == codes[1]
                      else "[dim]the contracts' code differs between the runs[/dim]")
    t = Table(title=f"Compared with {base_name} (gas per call, per paid account, per settled order)")
    for col in ("scenario", "base", "this run", "change", "%"):
        t.add_column(col, justify="left" if col == "scenario" else "right", overflow="fold")
    out = []
    for key, r in new.items():
        if key not in old:
            continue
        a, b = old[key]["gas_per"], r["gas_per"]
        pct = (b - a) / a * 100 if a else 0.0
        out.append({"scenario": key, "base": a, "this": b, "change": b - a, "pct": pct})
        t.add_row(key, f"{a:,}", f"{b:,}", f"{b - a:+,}", f"{pct:+.2f}%")
    console.print(t)
    only_base = [k for k in old if k not in new]
    only_new = [k for k in new if k not in old]
    if only_base:
        console.print(f"[dim]{len(only_base)} figures of {base_name} were not measured in this run[/dim]")
    if only_new:
        console.print(f"[dim]{len(only_new)} figures of this run are not in {base_name}[/dim]")
    return out


def plot(doc: dict, out_dir: Path) -> list[Path]:
    """payout.png (gas per paid account vs batch size, both paths, beside the paper), functions.png
    (per-function bars, the paper's three beside ours) and settlement.png (gas per order vs orders)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    thousands = FuncFormatter(lambda v, _pos: f"{v:,.0f}")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    subtitle = _describe(doc)

    fig, ax = plt.subplots(figsize=(8, 5.2))
    styles = {("executeSigned", "holders"): ("tab:blue", "o"), ("executeSigned", "fresh"): ("tab:cyan", "s"),
              ("propose-confirm-execute", "holders"): ("tab:red", "o"),
              ("propose-confirm-execute", "fresh"): ("tab:orange", "s")}
    ks = sorted({r["k"] for r in doc["payout"]})
    for k in ks:
        for (path, who), (color, marker) in styles.items():
            pts = sorted((r["batch"], r["gas_per_account"]) for r in doc["payout"]
                         if r["k"] == k and r["path"] == path and r["recipients"] == who)
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], color=color, marker=marker,
                        linestyle="-" if k == PAPER_K else ":", label=f"{path}, {who}, k = {k}")
    ax.axhline(PAPER_PER_ACCOUNT, color="black", linestyle="--",
               label=f"paper, k = {PAPER_K}: {PAPER_PER_ACCOUNT:,} (one account)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted({r["batch"] for r in doc["payout"]}))
    ax.xaxis.set_major_formatter(thousands)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(thousands)
    ax.set_xlabel("accounts paid by one settlement (batch)")
    ax.set_ylabel("gas per paid account")
    ax.set_title("Paying accounts through the committee multisig, n = 30", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.text(0.01, 0.005, subtitle, fontsize=5.5, color="gray")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    written.append(out_dir / "payout.png")
    fig.savefig(written[-1], dpi=130)
    plt.close(fig)

    items = sorted(doc["functions"].items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(items) + 1.6))
    ys = range(len(items))
    ax.barh([y + 0.2 for y in ys], [g for _, g in items], height=0.4, color="tab:blue", label="PoT")
    paper = [(y, PAPER[n]) for y, (n, _) in zip(ys, items) if n in PAPER]
    if paper:
        ax.barh([y - 0.2 for y, _ in paper], [g for _, g in paper], height=0.4, color="tab:gray",
                label="paper (Table 6)")
    ax.set_yticks(list(ys), [n for n, _ in items], fontsize=7)
    ax.xaxis.set_major_formatter(thousands)
    ax.set_xlabel("gas per call")
    ax.set_title("Gas of every PoT contract function", fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.005, subtitle, fontsize=5.5, color="gray")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    written.append(out_dir / "functions.png")
    fig.savefig(written[-1], dpi=130)
    plt.close(fig)

    if doc.get("settlement"):
        fig, ax = plt.subplots(figsize=(8, 5))
        for (n, who), color in zip(sorted({(r["n"], r["winners"]) for r in doc["settlement"]}),
                                   ("tab:blue", "tab:cyan", "tab:green", "tab:olive")):
            pts = sorted((r["orders"], r["gas_per_order"]) for r in doc["settlement"]
                         if r["n"] == n and r["winners"] == who)
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", color=color,
                    label=f"n = {n}, winners {who}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted({r["orders"] for r in doc["settlement"]}))
        ax.xaxis.set_major_formatter(thousands)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(thousands)
        ax.set_xlabel("orders settled by one executeSigned")
        ax.set_ylabel("gas per settled order")
        ax.set_title("Settling real orders (winner, 3 validators, tax to n members)", fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.text(0.01, 0.005, subtitle, fontsize=5.5, color="gray")
        fig.tight_layout(rect=(0, 0.02, 1, 1))
        written.append(out_dir / "settlement.png")
        fig.savefig(written[-1], dpi=130)
        plt.close(fig)
    return written
