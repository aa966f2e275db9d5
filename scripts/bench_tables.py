"""Rewrite the README's benchmark tables from the JSON the benchmarks wrote (docs/bench/*.json).

    .venv/bin/pot bench gas   --json docs/bench/gas.json --plot docs/bench
    .venv/bin/pot bench pbft  --json docs/bench/pbft.json
    .venv/bin/pot bench train --json docs/bench          (train-<model>.json for every architecture)
    .venv/bin/pot bench soak  --json docs/bench/soak.json
    .venv/bin/pot bench pbft  --only-ledger --json docs/bench/pbft-ledger.json
    .venv/bin/pot bench ledger --orders 100,1000,10000,100000 --json docs/bench/ledger.json
    .venv/bin/pot bench cycle --orders 100 --json docs/bench/cycle.json
    .venv/bin/python scripts/bench_tables.py

Each table sits between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` in README.md, so
the README shows exactly what the last run measured. `pot bench gas` without --json writes a new
bench-gas-<date>-<time>.json in the working directory instead (gitignored): the published
docs/bench/gas.json changes only when it is named.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "docs" / "bench"
PAPER_GAS = {"RewardMultisig.proposeReward": 86_875, "RewardMultisig.confirmReward": 45_371,
             "RewardMultisig.executeReward": 161_888}
PAPER_T4 = {10: 38.7, 30: 132.0, 100: 463.0}  # ms, 1 order + 10 validations, localhost
PAPER_T5 = {10: 1.494, 30: 1.685, 50: 1.842}  # s, 100 tx, 30 Mbps, 30-300 ms


def gas_tables(d: dict) -> str:
    out = ["| function | gas | paper (Table 6) |", "|---|---:|---:|"]
    for name, gas in sorted(d["functions"].items()):
        paper = f"{PAPER_GAS[name]:,}" if name in PAPER_GAS else ""
        out.append(f"| `{name}` | {gas:,} | {paper} |")
    rows: dict[tuple[int, int], dict] = {}
    for r in d["payout"]:
        rows.setdefault((r["k"], r["batch"]), {})[(r["path"], r["recipients"])] = r["gas_per_account"]
    out += ["", "Gas per paid account, committee n = 30 (\"batch\" = accounts paid by one settlement):", "",
            "| k | batch | executeSigned, holders | executeSigned, fresh | propose+k·confirm+execute, holders "
            "| propose+k·confirm+execute, fresh |", "|---:|---:|---:|---:|---:|---:|"]
    for (k, batch), m in sorted(rows.items()):
        cells = [m.get((p, r)) for p in ("executeSigned", "propose-confirm-execute") for r in ("holders", "fresh")]
        out.append(f"| {k} | {batch} | " + " | ".join(f"{c:,}" if c is not None else "" for c in cells) + " |")
    if d.get("settlement"):
        out += ["", "Gas per settled order: real orders (test data released, windows over) settled by one "
                "executeSigned; each order has its own winner, 3 validators from a pool of 10, and pays the "
                "committee tax to all n members; members and validators already hold POT:", "",
                "| n | k | orders | winners | payouts | transfers | executeSigned gas | gas per order |",
                "|---:|---:|---:|---|---:|---:|---:|---:|"]
        for r in d["settlement"]:
            out.append(f"| {r['n']} | {r['k']} | {r['orders']} | {r['winners']} | {r['payouts']:,} | "
                       f"{r['transfers']:,} | {r['gas']:,} | {r['gas_per_order']:,} |")
    if d.get("chain") and d.get("build"):
        ch, b = d["chain"], d["build"]
        out += ["", f"Measured {d['date']} on {ch['client_version']} (chain id {ch['chain_id']}, {ch['hardfork']}), "
                f"contracts at commit `{(b['commit'] or '?')[:10]}`{' with local changes' if b.get('dirty') else ''}, "
                f"solc {b['solc'].split('+')[0]}, optimizer {b['settings']['optimizer']['runs']:,} runs, "
                f"EVM {b['settings']['evmVersion']}."]
    return "\n".join(out)


def pbft_tables(d: dict) -> str:
    out = ["| replicas | scenario | commit latency (ms) | paper, localhost (ms) |", "|---:|---|---:|---:|"]
    for r in d.get("latency", []):
        paper = PAPER_T4.get(r["nodes"]) if r["scenario"].startswith("1 order") else None
        out.append(f"| {r['nodes']} | {r['scenario']} | {r['latency_ms']:,.1f} | {'' if paper is None else paper} |")
    out += ["", "| replicas | signed transactions committed per second |", "|---:|---:|"]
    out += [f"| {r['nodes']} | {r['tx_per_s']:,.0f} |" for r in d.get("throughput", [])]
    out += ["", "| replicas | transactions | link latency (ms) | bandwidth (Mbps) | seconds | paper (s) |",
            "|---:|---:|---|---:|---:|---:|"]
    for r in d.get("wan", []):
        paper = PAPER_T5.get(r["nodes"]) if r["txs"] == 100 else None
        lat = "–".join(str(x) for x in r["latency_ms"]) if isinstance(r["latency_ms"], list) else r["latency_ms"]
        out.append(f"| {r['nodes']} | {r['txs']} | {lat} | {r['bandwidth_mbps']} | {r['seconds']:.3f} | "
                   f"{'' if paper is None else paper} |")
    return "\n".join(out)


def train_table(runs: list[dict]) -> str:
    out = ["| model | parameters | device | plain PyTorch | PoT miner | miner / plain | PoT's own work | "
           "model selection | fixed per window: final holdout scoring | scoring by the reference validator |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = {m: i for i, m in enumerate(("mlp", "cnn", "lstm", "resnet", "gpt", "gpt-50m"))}
    for r in sorted(runs, key=lambda r: (r["device"], order.get(r["model"], 99))):
        unit = "tok/s" if r["unit"] == "tokens" else "samples/s"
        fixed = (f"{r['final_scoring_s']:.2f} s for {r['holdout_samples']} samples" if "final_scoring_s" in r
                 else "–")
        out.append(f"| {r['model']} | {r['params']:,} | {r['device']} | {r['plain_per_s']:,.0f} {unit} "
                   f"| {r['pot_per_s']:,.0f} {unit} | {r['ratio']:.3f} | {r['pot_overhead_pct']:.2f}% "
                   f"| {r['eval_pct']:.2f}% | {fixed} | {r['validation_s']:.2f} s for {r['validation_samples']} samples |")
    rounds = sorted({(r.get("round_s"), r["rounds"]) for r in runs if r.get("round_s")})
    if rounds:
        out += ["", "Rounds: " + "; ".join(f"{n} of each loop, {s:g} s of training each" for s, n in rounds) + "."]
    return "\n".join(out)


def soak_table(d: dict) -> str:
    def f(x):
        return "–" if x is None else f"{x:.1f}"

    out = ["| phase | orders | settled | settle p50 (s) | settle p95 (s) | after last window p50 (s) "
           "| after last window p95 (s) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for phase in ("baseline", "faulted"):
        s = d[phase]
        out.append(f"| {'fault-free' if phase == 'baseline' else 'faults'} | {s['orders']} | {s['settled']} | "
                   f"{f(s['latency_p50_s'])} | {f(s['latency_p95_s'])} | {f(s['committee_latency_p50_s'])} | "
                   f"{f(s['committee_latency_p95_s'])} |")
    c = d["config"]
    out += ["", f"{c['duration_s']:.0f} s of faults after {c['baseline_s']:.0f} s without, one order every "
                f"{c['order_every_s']:g} s: p95 ratio {f(d['p95_ratio'])} (target ≤ {c['target_ratio']:g}); "
                f"{d['settled']} of {d['orders']} orders settled; every honest worker in every order: "
                f"{'yes' if d['every_honest_worker_in_every_order'] else 'no'}; view changes {d['view_changes']}; "
                f"ledger digests equal: {'yes' if d['digests'].get('equal') else 'no'}."]
    return "\n".join(out)


def pbft_ledger_table(d: dict) -> str:
    rows = ["| replicas | state machine | transactions per round | PBFT batches per round | committed tx/s "
            "| CPU µs per tx per replica | of it in the kernel | busiest replica | target |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in d["ledger"]:
        sm = r.get("state_machine", "ledger")
        target = {4: "≤ 75", 30: "≤ 90"}.get(r["nodes"], "") if sm == "ledger" else ""
        batches = r.get("batches_per_round")
        kernel = r.get("sys_us_per_tx_per_replica")
        rows.append(f"| {r['nodes']} | {sm} | {r['txs_per_run']:,} "
                    f"| {statistics.median(batches) if batches else '–'} | {r['tx_per_s']:,.0f} "
                    f"| {r['cpu_us_per_tx_per_replica']:,.0f} | {'–' if kernel is None else f'{kernel:,.0f}'} "
                    f"| {r['cpu_us_per_tx_max_replica']:,.0f} | {target} |")
    return "\n".join(rows)


def ledger_table(d: dict) -> str:
    details = {x["orders"]: x for x in d.get("details", [])}
    rows = ["| orders | messages | msgs/s | µs/msg (wall) | CPU µs/msg | checkpoint ms (median / max) | bytes/order "
            "| open at most |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in d["rows"]:
        x = details.get(r["orders"], {})
        ckpt = "-" if r["checkpoint_ms"] is None else f"{r['checkpoint_ms']:.1f} / {x.get('checkpoint_ms_max') or 0:.1f}"
        cpu = f"{x['cpu_us_per_msg']:.0f}" if "cpu_us_per_msg" in x else "-"
        rows.append(f"| {r['orders']:,} | {r['msgs']:,} | {r['msgs_per_s']:,.0f} | {r['us_per_msg']:.0f} | {cpu} "
                    f"| {ckpt} | {r['db_bytes_per_order']:,} | {x.get('max_open', '-'):,} |")
    if d.get("exponent") is not None and len(d["rows"]) >= 2:
        a, b = d["rows"][-2]["orders"], d["rows"][-1]["orders"]
        rows += ["", f"Exponent of apply time against messages, {a:,} → {b:,} orders: **{d['exponent']}**."]
    return "\n".join(rows)


def cycle_table(d: dict) -> str:
    def f(x):
        return "-" if x is None else f"{x:.1f}"

    lat = d["settle_latency_s"]
    gas = "-" if d["gas_per_order"] is None else f"{d['gas_per_order']:,}"
    return ("| orders | settled | settled exactly once | conservation | settle p50 (s) | settle p95 (s) "
            "| gas per order | view changes |\n|---:|---:|---|---|---:|---:|---:|---:|\n"
            f"| {d['orders']} | {d['settled']} | {'yes' if d['settled_once'] else 'no'} "
            f"| {'yes' if d['conservation'] else 'no'} | {f(lat['p50'])} | {f(lat['p95'])} "
            f"| {gas} | {d['view_changes']} |")


def replace(doc: str, name: str, body: str) -> str:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    if begin not in doc:
        return doc
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def main() -> None:
    readme = ROOT / "README.md"
    doc = readme.read_text()
    if (BENCH / "gas.json").exists():
        doc = replace(doc, "gas", gas_tables(json.loads((BENCH / "gas.json").read_text())))
    if (BENCH / "pbft.json").exists():
        doc = replace(doc, "pbft", pbft_tables(json.loads((BENCH / "pbft.json").read_text())))
    runs = [json.loads(p.read_text()) for p in sorted(BENCH.glob("train-*.json"))]
    if runs:
        doc = replace(doc, "train", train_table(runs))
    if (BENCH / "pbft-ledger.json").exists():
        doc = replace(doc, "pbft-ledger", pbft_ledger_table(json.loads((BENCH / "pbft-ledger.json").read_text())))
    if (BENCH / "ledger.json").exists():
        doc = replace(doc, "ledger", ledger_table(json.loads((BENCH / "ledger.json").read_text())))
    if (BENCH / "cycle.json").exists():
        doc = replace(doc, "cycle", cycle_table(json.loads((BENCH / "cycle.json").read_text())))
    if (BENCH / "soak.json").exists():
        doc = replace(doc, "soak", soak_table(json.loads((BENCH / "soak.json").read_text())))
    readme.write_text(doc)


if __name__ == "__main__":
    main()
