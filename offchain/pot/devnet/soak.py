"""``pot bench soak``: keep a devnet busy with faults in the committee and measure what it costs.

A devnet (4 aggregators, 2 miners, 2 validators, a client process) first runs warm-up orders
(until one had every worker in it), then takes one order every ``order_every_s`` seconds, with
short windows, for ``baseline_s`` seconds without faults and then for ``duration_s`` seconds during
which one replica is stopped (SIGSTOP) for ``stop_s`` seconds and then killed (kill -9) and
restarted, twice: the first time the primary, the second time a backup. An order counts as
fault-free only if it settled before the first fault. Afterwards the soak waits for every order to
settle and reports:

- orders placed and settled, and whether every order settled with every honest worker in it
  (both miners' claims and reveals, both validators' validations of every model);
- settle latency p50/p95 from placement to the settlement executed on-chain (block times), and
  from the order's last window to that settlement (the committee's own share), for the orders of
  the fault-free phase and of the faulted phase, and the ratio of the two p95s (target <= 1.5);
- view changes (views gone through), and whether the replicas' ledger digests are equal at equal
  sequence numbers at the end.

It prints a table and writes JSON (``--json FILE``). The machine's load shows in the figures: say
which machine, and whether it was shared, when you quote them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from pot.api.client import ApiClient, ApiError, CommitteeClient, NoQuorum
from pot.chain.sender import connect
from pot.devnet.network import Devnet, DevnetConfig, _alive, _http_json, _signal, dev_account
from pot.protocol import codec
from pot.protocol.timeline import timeline
from pot.roles.client import build
from pot.roles.config import TOKEN, ClientConfig, load_config


@dataclass
class SoakConfig:
    duration_s: float = 600.0
    baseline_s: float = 240.0
    order_every_s: float = 16.0
    stop_s: float = 30.0
    drain_s: float = 180.0
    miners: int = 2
    validators: int = 2
    verifiers: int = 0
    #: stop and restart replicas during the faulted phase (``pot bench cycle`` runs without)
    faults: bool = True
    #: instead, change the committee during it (docs/COMMITTEE.md): kill aggregator-3 for good
    #: and replace it, grow 4 -> 7, rotate aggregator-1's key
    committee_changes: bool = False
    train_s: int = 16
    reveal_s: int = 8
    validate_s: int = 12
    challenge_s: int = 4
    #: p95 (placement to settled) of the faulted phase over the fault-free one must stay below this
    target_ratio: float = 1.5


@dataclass
class Tracked:
    order_id: int
    placed_at: float                 # seconds since the soak started (wall clock)
    phase: str                       # "baseline" or "faulted"
    t0: int | None = None            # block time of placeOrder
    final: int | None = None         # end of the last window (block time)
    executed_block_time: int | None = None
    settled_at: float | None = None  # seconds since start, when the soak saw it settled
    participants_ok: bool | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def latency(self) -> float | None:
        if self.executed_block_time is None or self.t0 is None:
            return None
        return float(self.executed_block_time - self.t0)

    @property
    def committee_latency(self) -> float | None:
        if self.executed_block_time is None or self.final is None:
            return None
        return float(self.executed_block_time - self.final)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[int(q) - 1]


def devnet_config(cfg: SoakConfig) -> DevnetConfig:
    return DevnetConfig(
        aggregators=4, miners=cfg.miners, validators=cfg.validators, verifiers=cfg.verifiers, clients=1, workers=True,
        poll_interval=0.5, min_reveal_duration=cfg.reveal_s, startup_timeout=180.0, fund=100_000 * TOKEN,
        roles={"client": {"dataset": "digits", "arch": "mlp", "model": {"hidden": [32]}, "epochs": 5,
                          "batch_size": 64, "lr": 0.003, "reward": "10 POT", "train_duration": cfg.train_s,
                          "validate_duration": cfg.validate_s, "challenge_duration": cfg.challenge_s,
                          "reveal_duration": cfg.reveal_s},
               "miner": {"commit_margin_s": 2, "min_train_s": 2, "commit_interval_s": 1.0},
               "validator": {"v_stake": "1 POT"}},
        nodes={})


class Soak:
    def __init__(self, root: Path, cfg: SoakConfig, say=print) -> None:
        self.root = root
        self.cfg = cfg
        self.say = say
        self.net = Devnet(root, devnet_config(cfg))
        self.orders: list[Tracked] = []
        self.faults: list[dict[str, Any]] = []
        self.chain: dict[str, Any] = {}
        self.t0 = 0.0
        self.warm_up: dict[str, Any] = {}
        #: each epoch's committee as the ledger reported it (GET /v1/epoch): sorted members
        self.committees: dict[int, list[str]] = {}
        self.members_check: dict[str, Any] | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        await asyncio.to_thread(self.net.up, progress=lambda m: self.say(f"setup: {m}"))
        st = self.net.state
        self.w3 = connect(st["rpc_url"])
        client_path = st["clients"]["client-1"]
        account = dev_account(self.net.state["accounts"]["client-1"]["index"])
        self.client = build(load_config(ClientConfig, client_path, env={}), account)
        self.api = CommitteeClient(st["api_urls"], timeout=5.0)
        if cfg.committee_changes:
            self.worker_pids = self._worker_pids()
            await self._note_committee()
        await self._warm_up()
        self.views_before = self._views()
        self.t0 = time.monotonic()
        end = cfg.baseline_s + cfg.duration_s
        fault_at = [cfg.baseline_s + cfg.duration_s * k / 6 for k in (1, 4)]
        tasks = [asyncio.create_task(self._place(end)), asyncio.create_task(self._follow(end + cfg.drain_s))]
        if cfg.committee_changes:
            tasks.append(asyncio.create_task(self._committee_changes(cfg.baseline_s)))
        elif cfg.faults:
            tasks += [asyncio.create_task(self._fault(at, first=(k == 0))) for k, at in enumerate(fault_at)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
        self.digests = await self._digests_equal()
        self.views_after = self._views()
        self.members_check = await self._members_at() if self.committees else None
        await self.api.aclose()
        self.chain = await asyncio.to_thread(self._chain_checks)
        return self.report()

    def _chain_checks(self) -> dict[str, Any]:
        """What the chain says, not the committee: every tracked order settled exactly once (one
        OrderSettled each, paying exactly its reward), token conservation (each contract holds
        exactly what it owes: open escrow, every staker's stake, unresolved challenge stakes), and
        the settlement gas."""
        from pot.chain.clients import Contracts
        from pot.chain.deployment import Deployment

        c = Contracts(self.w3, Deployment.load(self.net.deployment_file))
        start = c.deployment.block
        settled: dict[int, list[int]] = {}
        for ev in c.orders.contract.events.OrderSettled.get_logs(from_block=start):
            settled.setdefault(int(ev["args"]["orderId"]), []).append(int(ev["args"]["total"]))
        tracked = [o.order_id for o in self.orders]
        rewards = {oid: c.orders.get_order(oid) for oid in range(1, c.orders.order_count() + 1)}
        once = all(len(settled.get(oid, [])) == 1 and rewards[oid]["status"] == 2
                   and settled[oid][0] == rewards[oid]["reward"] for oid in tracked)
        escrow = sum(o["reward"] for o in rewards.values() if o["status"] == 1)
        stakes = sum(c.stakes.staker(a["address"])["stake"] for a in self.net.state["accounts"].values())
        challenged = sum(int(ev["args"]["stake"])
                         for ev in c.challenges.contract.events.ChallengeCommitted.get_logs(from_block=start))
        released = sum(int(ev["args"]["amount"])
                       for ev in c.challenges.contract.events.ChallengeStakeReclaimed.get_logs(from_block=start))
        resolved = {(int(ev["args"]["orderId"]), ev["args"]["challenger"])
                    for ev in c.challenges.contract.events.ChallengeResolved.get_logs(from_block=start)}
        open_challenges = challenged - released if not resolved else None
        held = {"OrderBook": c.token.balance_of(c.orders.address), "StakeRegistry": c.token.balance_of(c.stakes.address),
                "ChallengeManager": c.token.balance_of(c.challenges.address)}
        conservation = (held["OrderBook"] == escrow and held["StakeRegistry"] == stakes
                        and (open_challenges is None or held["ChallengeManager"] == open_challenges))
        executed = c.multisig.contract.events.SettlementExecuted.get_logs(from_block=start)
        txs = {ev["transactionHash"] for ev in executed}
        gas = sum(self.w3.eth.get_transaction_receipt(h)["gasUsed"] for h in txs)
        paid = sum(len(v) for v in settled.values())
        return {"settled_once": once, "conservation": conservation, "held": held, "escrow_open": escrow,
                "stakes": stakes, "settlement_txs": len(txs), "settlement_gas": gas,
                "gas_per_order": round(gas / paid) if paid else None,
                "not_settled_once": [oid for oid in tracked if len(settled.get(oid, [])) != 1]}

    async def _members_at(self) -> dict[str, Any]:
        """At every executed settlement: the chain's members and epoch at its block, against the
        committee the ledger had for the epoch the settlement names."""
        from pot.chain.clients import Contracts
        from pot.chain.deployment import Deployment

        c = Contracts(self.w3, Deployment.load(self.net.deployment_file))
        fn = c.multisig.contract.functions
        executed = await asyncio.to_thread(c.multisig.contract.events.SettlementExecuted.get_logs,
                                           from_block=c.deployment.block)
        rows, bad = [], []
        for ev in executed:
            b, nonce = ev["blockNumber"], int(ev["args"]["nonce"])
            # read from the committee as it is now: the members who joined by state transfer
            # copied the archive from before they joined (pot.roles.backfill), so f+1 agree
            doc = await self.api.settlement(nonce)
            chain = sorted(await asyncio.to_thread(fn.members().call, block_identifier=b))
            epoch = int(await asyncio.to_thread(fn.epoch().call, block_identifier=b))
            named = doc["settlement"]["epoch"] if doc else None
            row = {"nonce": nonce, "block": b, "chain_epoch": epoch, "settlement_epoch": named,
                   "equal": named == epoch and chain == self.committees.get(named)
                   and set(doc["signers"]) <= set(chain)}
            rows.append(row)
            if not row["equal"]:
                bad.append(row)
        # and every live member, the joined ones too, serves the first settlement byte for byte alike
        first = {}
        for url in self.net.state["api_urls"]:
            async with ApiClient(url, timeout=5.0) as one:
                try:
                    first[url] = await one.get_raw("/v1/settlements/1")
                except ApiError as exc:
                    first[url] = (None, str(exc).encode())
        alike = len({body for _, body in first.values()}) == 1 and all(st == 200 for st, _ in first.values())
        return {"equal": bool(rows) and not bad, "settlements": len(rows),
                "epochs": sorted({r["chain_epoch"] for r in rows}), "unequal": bad, "first_settlement_everywhere": alike,
                "first_settlement": {u: st for u, (st, _) in first.items()}}

    async def _note_committee(self) -> dict[str, Any]:
        from pot.roles.epoch_admin import fetch_status

        for url in self.net.state["api_urls"]:
            try:
                status = await fetch_status(url)
            except Exception:  # noqa: BLE001 - a replaced or restarting replica: the next one
                continue
            self.committees[status["epoch"]] = sorted(m["account"] for m in status["members"])
            return status
        raise RuntimeError("no aggregator answered /v1/epoch")

    def _worker_pids(self) -> dict[str, int]:
        from pot.devnet.network import WORKER_ROLES

        return {e["name"]: e["pid"] for e in self.net.load()["processes"]
                if e.get("role") in (*WORKER_ROLES, "client") and _alive(e)}

    def _workers_restarted(self) -> list[str]:
        """Workers and clients that are not the processes the soak started with (restarted or gone)."""
        now = self._worker_pids()
        return sorted(n for n, pid in self.worker_pids.items() if now.get(n) != pid)

    async def _committee_changes(self, at: float) -> None:
        """The issue-15 sequence while orders run: aggregator-3 is killed for good and replaced by
        a new key, the committee grows 4 -> 7, aggregator-1's key is rotated."""
        from pot.devnet.committee import change_committee

        await asyncio.sleep(max(0.0, at - self.now()))
        victim = next(e for e in self.net.state["processes"] if e["name"] == "aggregator-3")
        _signal(victim, signal.SIGKILL)
        self.faults.append({"at": round(self.now(), 1), "what": "kill -9 for good", "node": "aggregator-3"})
        self.say(f"[{self.now():6.1f}s] aggregator-3 killed for good")
        for what, kw in (("replaced", {"remove": "aggregator-3"}), ("grown by 3", {"add": 3}),
                         ("rotated", {"remove": "aggregator-1"})):
            t = self.now()
            status = await asyncio.to_thread(change_committee, self.net, progress=lambda m: self.say(f"  {m}"), **kw)
            self.committees[status["epoch"]] = sorted(m["account"] for m in status["members"])
            node = kw.get("remove", "committee")
            self.faults.append({"at": round(self.now(), 1), "what": what, "node": node, "epoch": status["epoch"],
                                "seconds": round(self.now() - t, 1)})
            self.say(f"[{self.now():6.1f}s] {node} {what}: epoch {status['epoch']}, {len(status['members'])} members "
                     f"({self.now() - t:.0f}s)")

    async def _warm_up(self, tries: int = 3) -> None:
        """Orders through the whole cycle before the clock starts, until one had every worker in it:
        each has then loaded PyTorch, trained and scored once (a first scoring takes seconds), so the
        fault-free phase measures the network, not the start-up."""
        self.warm_up = {"orders": []}
        for _ in range(tries):
            self.t0 = time.monotonic()
            oid = await self.client.place_order()
            self.say(f"warm-up: order {oid} placed")
            warm = Tracked(oid, 0.0, "warm-up")
            await self._follow(self._cycle_s() + 120.0, only=[warm])
            self.warm_up["orders"].append({"order": oid, "latency_s": warm.latency, "missing": warm.missing})
            if warm.participants_ok:
                return

    def _cycle_s(self) -> float:
        c = self.cfg
        return c.train_s + 3 * c.reveal_s + c.validate_s + c.reveal_s + c.challenge_s + c.reveal_s

    async def _place(self, end: float) -> None:
        k = 0
        while True:
            at = k * self.cfg.order_every_s
            if at >= end:
                return
            await asyncio.sleep(max(0.0, at - self.now()))
            placed = self.now()
            try:
                oid = await self.client.place_order()
            except Exception as exc:  # noqa: BLE001 - a failed placement is reported, the soak goes on
                self.say(f"[{placed:6.1f}s] place-order failed: {type(exc).__name__}: {exc}")
                k += 1
                continue
            # provisional: report() moves an order that was still open when the faults began
            phase = "baseline" if placed < self.cfg.baseline_s else "faulted"
            self.orders.append(Tracked(oid, placed, phase))
            self.say(f"[{placed:6.1f}s] order {oid} placed ({phase})")
            k += 1

    async def _fault(self, at: float, *, first: bool) -> None:
        await asyncio.sleep(max(0.0, at - self.now()))
        infos = [i for i in (self._info(u) for u in self.net.state["api_urls"]) if i]
        primary = max(infos, key=lambda i: i["view"])["primary"] if infos else 0
        target = primary if first else (primary + 1) % 4
        name = f"aggregator-{target}"
        entry = next(e for e in self.net.state["processes"] if e["name"] == name)
        self.say(f"[{self.now():6.1f}s] fault: SIGSTOP {name} ({'primary' if first else 'backup'}) for "
                 f"{self.cfg.stop_s:g}s")
        _signal(entry, signal.SIGSTOP)
        self.faults.append({"at": round(self.now(), 1), "what": "SIGSTOP", "node": name,
                            "primary": target == primary})
        await asyncio.sleep(self.cfg.stop_s)
        _signal(entry, signal.SIGKILL)
        self.faults.append({"at": round(self.now(), 1), "what": "kill -9", "node": name})
        while _alive(entry):
            await asyncio.sleep(0.1)
        t = self.now()
        await asyncio.to_thread(self.net.restart, name)
        self.faults.append({"at": round(self.now(), 1), "what": "restarted", "node": name,
                            "seconds": round(self.now() - t, 1)})
        self.say(f"[{self.now():6.1f}s] fault: {name} killed and restarted ({self.now() - t:.1f}s)")

    async def _follow(self, until: float, only: list[Tracked] | None = None) -> None:
        """Watch every order (or ``only`` these) until it settled (block time of the executed settlement)."""
        while True:
            pending = [o for o in (self.orders if only is None else only) if o.executed_block_time is None]
            placing_done = only is not None or self.now() >= until - self.cfg.drain_s
            if placing_done and not pending:
                return
            if self.now() >= until:
                return
            for o in pending:
                try:
                    cyc = await self.api.order(o.order_id)
                except (NoQuorum, ApiError):
                    continue
                if cyc is None:
                    continue
                if o.t0 is None:
                    order = codec.from_json(cyc["order"])
                    o.t0 = order.t0
                if cyc.get("t3") is not None and o.final is None:
                    o.final = timeline(codec.from_json(cyc["order"]), cyc["t3"]).final
                if cyc["status"] != "settled":
                    continue
                try:
                    st = await self.api.settlement(cyc["nonce"])
                except (NoQuorum, ApiError):
                    continue
                if not st or not st.get("executed"):
                    continue
                receipt = await asyncio.to_thread(self.w3.eth.get_transaction_receipt, st["txHash"])
                block = await asyncio.to_thread(self.w3.eth.get_block, receipt["blockNumber"])
                o.executed_block_time = int(block["timestamp"])
                if o.final is None:  # no test release: the order finalized at releaseEnd
                    o.final = timeline(codec.from_json(cyc["order"]), None).final
                o.settled_at = self.now()
                o.missing = self._missing(cyc)
                o.participants_ok = not o.missing
                self.say(f"[{self.now():6.1f}s] order {o.order_id} settled: {o.latency:.0f}s after placement, "
                         f"{o.committee_latency:.0f}s after its last window"
                         + (f"; MISSING {', '.join(o.missing)}" if o.missing else ""))
            await asyncio.sleep(1.0)

    def _missing(self, cyc: dict[str, Any]) -> list[str]:
        """Honest workers absent from a settled order: every miner claims and reveals, every validator
        validates every model."""
        accounts = self.net.state["accounts"]
        miners = {a["address"]: n for n, a in accounts.items() if a["role"] == "miner"}
        validators = {a["address"]: n for n, a in accounts.items() if a["role"] == "validator"}
        out = []
        claimed = {c["miner"] for c in cyc["claims"]}
        revealed = {m["miner"] for m in cyc["models"]}
        for addr, name in miners.items():
            if addr not in claimed:
                out.append(f"{name} (no claim)")
            elif addr not in revealed:
                out.append(f"{name} (no reveal)")
        for m in cyc["models"]:
            seen = {v["validator"] for v in m["validations"]}
            for addr, name in validators.items():
                if addr not in seen:
                    out.append(f"{name} (no validation of {m['mid'][:10]})")
        return out

    def _info(self, url: str) -> dict[str, Any] | None:
        try:
            return _http_json(url + "/v1/info", timeout=2.0)
        except Exception:  # noqa: BLE001 - stopped or restarting
            return None

    def _views(self) -> list[int | None]:
        return [(i or {}).get("view") for i in (self._info(u) for u in self.net.state["api_urls"])]

    async def _digests_equal(self, tries: int = 60) -> dict[str, Any]:
        """Sample every replica until all report the same ledger sequence number, then compare digests
        (Ticks move the sequence every second: a sample is taken in well under one)."""
        urls = self.net.state["api_urls"]
        last = None
        for _ in range(tries):
            infos = await asyncio.gather(*(asyncio.to_thread(self._info, u) for u in urls))
            if all(infos):
                last = [(i["ledgerSeq"], i["ledgerDigest"], i["lastExecuted"], i["pbftDigest"]) for i in infos]
                if len({x[0] for x in last}) == 1:
                    return {"equal": len({x[1] for x in last}) == 1, "seq": last[0][0],
                            "digests": sorted({x[1] for x in last})}
            await asyncio.sleep(0.3)
        return {"equal": False, "seq": None, "samples": last}

    # -- the report ---------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        cfg = self.cfg
        # an order belongs to the fault-free phase only if it settled before the first fault
        first_fault = min((f["at"] for f in self.faults), default=None)
        for o in self.orders:
            if o.phase == "baseline" and first_fault is not None and (o.settled_at is None
                                                                       or o.settled_at >= first_fault):
                o.phase = "faulted"

        def phase_stats(phase: str) -> dict[str, Any]:
            orders = [o for o in self.orders if o.phase == phase]
            lat = [o.latency for o in orders if o.latency is not None]
            com = [o.committee_latency for o in orders if o.committee_latency is not None]
            return {"orders": len(orders), "settled": len(lat),
                    "latency_p50_s": _pct(lat, 50), "latency_p95_s": _pct(lat, 95),
                    "committee_latency_p50_s": _pct(com, 50), "committee_latency_p95_s": _pct(com, 95)}

        base, faulted = phase_stats("baseline"), phase_stats("faulted")
        ratio = (faulted["latency_p95_s"] / base["latency_p95_s"]
                 if faulted["latency_p95_s"] and base["latency_p95_s"] else None)
        views = [v for v in self.views_after if v is not None]
        view_changes = (max(views) - max(v for v in self.views_before if v is not None)) if views else None
        all_settled = all(o.executed_block_time is not None for o in self.orders)
        honest = all(o.participants_ok for o in self.orders)
        out = {
            "config": asdict(cfg),
            "warm_up": self.warm_up,
            "orders": len(self.orders),
            "settled": sum(o.executed_block_time is not None for o in self.orders),
            "all_settled": all_settled,
            "every_honest_worker_in_every_order": honest,
            "baseline": base,
            "faulted": faulted,
            "p95_ratio": ratio,
            "view_changes": view_changes,
            "views_before": self.views_before,
            "views_after": self.views_after,
            "digests": self.digests,
            "chain": self.chain,
            "faults": self.faults,
            "members_at_settlements": self.members_check,
            "per_order": [{**asdict(o), "latency_s": o.latency, "committee_latency_s": o.committee_latency}
                          for o in self.orders],
        }
        if cfg.committee_changes:
            # the workers follow the committee's APIs on their own, never restarted: every order
            # settled exactly once with every worker in it, conserving tokens, signed by the
            # committee the chain had
            chain = self.chain
            out["workers_restarted"] = self._workers_restarted()
            out["ok"] = bool(all_settled and honest and self.digests.get("equal") and len(self.orders) > 0
                             and chain.get("settled_once") and chain.get("conservation")
                             and (self.members_check or {}).get("equal") and not out["workers_restarted"])
        else:
            out["ok"] = bool(all_settled and honest and self.digests.get("equal") and ratio is not None
                             and ratio <= cfg.target_ratio and len(self.orders) > 0)
        return out


def print_report(r: dict[str, Any], echo=click.echo) -> None:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    echo("")
    echo(f"{'phase':<10} {'orders':>6} {'settled':>7} {'p50 s':>7} {'p95 s':>7} {'committee p50':>14} "
         f"{'committee p95':>14}")
    for phase in ("baseline", "faulted"):
        s = r[phase]
        echo(f"{phase:<10} {s['orders']:>6} {s['settled']:>7} {f(s['latency_p50_s']):>7} {f(s['latency_p95_s']):>7} "
             f"{f(s['committee_latency_p50_s']):>14} {f(s['committee_latency_p95_s']):>14}")
    echo("")
    echo(f"orders {r['orders']}, settled {r['settled']}; every honest worker in every order: "
         f"{r['every_honest_worker_in_every_order']}")
    echo(f"p95 faulted / fault-free: {f(r['p95_ratio'])} (target <= {r['config']['target_ratio']:g})")
    echo(f"view changes: {r['view_changes']} (views {r['views_before']} -> {r['views_after']}); digests equal: "
         f"{r['digests'].get('equal')} at ledger seq {r['digests'].get('seq')}")
    for fault in r["faults"]:
        echo(f"  {fault['at']:7.1f}s {fault['what']:<10} {fault['node']}")
    m = r.get("members_at_settlements")
    if m is not None:
        chain = r["chain"]
        echo(f"settled exactly once: {chain['settled_once']}; conservation: {chain['conservation']}; chain members = "
             f"the ledger's at all {m['settlements']} settlements (epochs {m['epochs']}): {m['equal']}")
    echo("OK" if r["ok"] else "NOT OK")


def run_soak(cfg: SoakConfig, root: str | os.PathLike | None = None, say=print) -> dict[str, Any]:
    own = root is None
    path = Path(tempfile.mkdtemp(prefix="pot-soak-")) if own else Path(root).resolve()
    soak = Soak(path, cfg, say=say)
    try:
        report = asyncio.run(soak.run())
        report["dir"] = str(path)
        return report
    finally:
        soak.net.down(timeout=10)


@click.command("soak")
@click.option("--duration", type=float, default=600.0, show_default=True, help="Seconds of the faulted phase.")
@click.option("--baseline", type=float, default=240.0, show_default=True,
              help="Seconds of the fault-free phase before it (the p95 reference).")
@click.option("--order-every", type=float, default=16.0, show_default=True, help="Seconds between two orders.")
@click.option("--stop", "stop_s", type=float, default=30.0, show_default=True,
              help="Seconds a replica stays stopped (SIGSTOP) before it is killed and restarted.")
@click.option("--dir", "root", type=click.Path(file_okay=False), default=None,
              help="Devnet directory (default: a new temporary one).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the report here.")
@click.option("--committee-changes", is_flag=True,
              help="Instead of stopping replicas: kill aggregator-3 for good and replace it, grow the committee "
                   "4 -> 7 and rotate aggregator-1's key while orders run; checks the chain's members against "
                   "the ledger's at every settlement.")
def command(duration, baseline, order_every, stop_s, root, json_path, committee_changes) -> None:
    """Keep a devnet busy for DURATION seconds with one replica stopped and restarted twice; settle
    latency against a fault-free phase, view changes, digests."""
    cfg = SoakConfig(duration_s=duration, baseline_s=baseline, order_every_s=order_every, stop_s=stop_s,
                     committee_changes=committee_changes)
    report = run_soak(cfg, root, say=lambda m: click.echo(m, err=True))
    print_report(report)
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    if not report["ok"]:
        raise SystemExit(1)


# --- pot bench cycle ----------------------------------------------------------------------------

def cycle_config(orders: int, order_every_s: float) -> SoakConfig:
    """A fault-free soak of exactly ``orders`` orders: 4 miners, 3 validators, a verifier."""
    return SoakConfig(duration_s=0.0, baseline_s=orders * order_every_s, order_every_s=order_every_s, drain_s=240.0,
                      miners=4, validators=3, verifiers=1, faults=False)


def cycle_report(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's JSON, from the soak's report."""
    lat = [o["latency_s"] for o in r["per_order"] if o["latency_s"] is not None]
    chain = r["chain"]
    return {"orders": r["orders"], "settled": r["settled"], "settled_once": chain["settled_once"],
            "conservation": chain["conservation"],
            "settle_latency_s": {"p50": _pct(lat, 50), "p95": _pct(lat, 95)},
            "gas_per_order": chain["gas_per_order"], "view_changes": r["view_changes"],
            "every_honest_worker_in_every_order": r["every_honest_worker_in_every_order"],
            "digests_equal": r["digests"].get("equal"), "chain": chain, "soak": r}


@click.command("cycle")
@click.option("--orders", type=int, default=100, show_default=True, help="Orders to place.")
@click.option("--order-every", type=float, default=8.0, show_default=True, help="Seconds between two orders.")
@click.option("--dir", "root", type=click.Path(file_okay=False), default=None,
              help="Devnet directory (default: a new temporary one).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the report here.")
def cycle_command(orders, order_every, root, json_path) -> None:
    """A devnet (Anvil, 4 aggregators, 4 miners, 3 validators, a verifier) takes ORDERS orders at a
    steady rate with short windows; checks on-chain that each settled exactly once and that
    tokens are conserved; settle latency, gas per order, view changes."""
    report = cycle_report(run_soak(cycle_config(orders, order_every), root, say=lambda m: click.echo(m, err=True)))
    lat = report["settle_latency_s"]
    f = (lambda x: "-" if x is None else f"{x:.1f}")
    click.echo(f"orders {report['orders']}, settled {report['settled']}, settled exactly once: {report['settled_once']}, "
               f"conservation: {report['conservation']}")
    click.echo(f"settle latency p50 {f(lat['p50'])} s, p95 {f(lat['p95'])} s; gas per order {report['gas_per_order']}; "
               f"view changes {report['view_changes']}")
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    ok = (report["settled"] == report["orders"] == orders and report["settled_once"] and report["conservation"])
    click.echo("OK" if ok else "NOT OK")
    if not ok:
        raise SystemExit(1)
