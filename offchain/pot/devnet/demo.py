"""``pot demo``: one whole task cycle, with adversaries, on a devnet of its own.

The chain, the contracts and the committee of 4 aggregators are separate processes talking over
loopback sockets (``pot.devnet``); the participants run here as asyncio tasks and reach the
committee only through its HTTP API (BFT reads from f+1 replicas), exactly as remote nodes would:

- a client orders a digits classifier (sklearn's 8x8 digits, a real if small data set);
- two miners train competing models (miner-1 by the spec's hints, miner-2 with a batch size and
  learning rate of its own; different seeds);
- a thief commits a placeholder during training and, once a miner revealed, tries to claim that
  model as its own (ClaimReveal), then to commit to it (ClaimCommit): the ledger refuses both;
- an honest validator and a dishonest one (it adds ``LIE_PPM`` to every score it reports);
- a verifier recomputes the scores, challenges the dishonest validator on-chain and reveals;
- the committee re-scores the disputed models (PoT.Verify), finalizes, multisigns and settles
  with ``executeSigned``; the client fetches the winning model and checks its score itself.

The live display is one timestamped line per thing that happened; the summary (and ``--json``)
comes from the settlement the committee executed and from the chain, not from the workers' word.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from web3 import Web3

from pot.api.client import ApiClient, NoQuorum
from pot.chain.clients import Contracts
from pot.chain.compile import load_artifact
from pot.chain.deployment import Deployment
from pot.chain.errors import ChainRevert
from pot.chain.sender import connect
from pot.devnet.network import TREASURY, Devnet, DevnetConfig, Participant, dev_account
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.eip712 import Domain
from pot.protocol.ids import claim_commitment
from pot.protocol.settlement import settlement_from_json
from pot.protocol.timeline import Phase
from pot.roles.base import ChainAccess, Worker
from pot.roles.client import Client
from pot.roles.config import TOKEN, ClientConfig, MinerConfig, ValidatorConfig, VerifierConfig
from pot.roles.events import Event, Kind
from pot.roles.gateway import HttpGateway
from pot.roles.miner import Miner
from pot.roles.validator import Validator
from pot.roles.verifier import Verifier
from pot.storage import EmbeddedStore

LIE_PPM = 50_000
PPM = 1_000_000

#: the demo's network and order: short windows, so a cycle takes about a minute and a half
DEMO_CONFIG = dict(
    aggregators=4, miners=2, validators=2, verifiers=1, clients=1, workers=False, poll_interval=0.5,
    fund=1_000 * TOKEN, min_stake=10 * TOKEN, challenge_stake=5 * TOKEN, min_reveal_duration=3,
    unbonding_period=3600, settlement_grace=600, max_order_lifetime=1800, startup_timeout=120.0)
ORDER = dict(dataset="digits", arch="mlp", model={"hidden": [64]}, epochs=20, batch_size=64, lr=3e-3,
             reward=100 * TOKEN, train_duration=20, validate_duration=10, challenge_duration=10,
             reveal_duration=8)
#: the cycle's phases in order (the watcher shows each, however short)
PHASES = [p.value for p in Phase if p is not Phase.NOT_STARTED]
#: ``--task``: the order's data and model; lm and images use the client's own-files path on data
#: generated into the work directory (pot.ml.demo_data: pinned by its code, not by a library)
TASKS: dict[str, dict[str, Any]] = {
    "digits": {},
    "lm": dict(data="corpus.txt", arch="gpt", model={"dim": 48, "heads": 4, "layers": 2, "mlp": 128}, context=32,
               test_fraction=0.03, epochs=100, batch_size=32, lr=3e-3, train_duration=60, validate_duration=40),
    "images": dict(data="shapes", arch="resnet", model={"widths": [8, 16], "blocks": 1}, image_size=16,
                   epochs=100, batch_size=32, lr=3e-3, train_duration=40, validate_duration=15),
}
SEEDS = {"miner-1": 1, "miner-2": 2}
#: miner-2 trains with hyperparameters of its own; miner-1 follows the spec's hints
OWN_HINTS = {"miner-2": {"batch_size": 32, "lr": 5e-3}}


class DemoFailed(RuntimeError):
    """The cycle did not complete as it should (the message says where it stopped)."""


# --- display ------------------------------------------------------------------------------------

class Display:
    """Timestamped lines (rich colours on a terminal, plain text otherwise), names for addresses."""

    STYLE = {"phase": "bold cyan", "rejected": "bold red", "error": "yellow", "committee": "magenta",
             "chain": "green", "setup": "dim", "retry": "dim"}

    def __init__(self, quiet: bool = False, console=None) -> None:

        self.console = console or Console(highlight=False, soft_wrap=True)
        if not self.console.is_terminal:
            self.console.width = 120  # a log or a pipe: no terminal to fit, keep the tables readable
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.names: dict[str, str] = {}

    def name(self, address: str | None) -> str:
        if not address:
            return "-"
        return self.names.get(address.lower(), address[:10] + "...")

    def line(self, category: str, text: str) -> None:
        if self.quiet:
            return

        style = self.STYLE.get(category, "")
        stamp = f"[dim][{time.monotonic() - self.t0:6.1f}s][/dim]"
        body = f"[{style}]{escape(text)}[/{style}]" if style else escape(text)
        self.console.print(f"{stamp} {category:<10} {body}")


def _short(b: bytes | str | None, n: int = 10) -> str:
    if b is None:
        return "-"
    h = b if isinstance(b, str) else "0x" + bytes(b).hex()
    return h[:n] + "..."


def _pot(wei: int) -> str:
    return f"{wei / TOKEN:,.4f}".rstrip("0").rstrip(".")


# --- what each event looks like ---------------------------------------------------------------------

#: events the display leaves out (the phases come from the ledger, see Demo._watch)
_QUIET = frozenset({Kind.PHASE, Kind.STARTED, Kind.STOPPED, Kind.STAKED})


def _chain_clock_behind(exc: BaseException | None) -> bool:
    """A transaction refused because the chain's head block is still before the window the
    worker's clock already sees open (the next block fixes it)."""
    return isinstance(exc, ChainRevert) and exc.error == "OutsideWindow"


def _commit_line(display: Display, name: str, ev: Event) -> tuple[str, str]:
    d = ev.data
    extra = f", holdout acc {d['holdout_accuracy']}" if "holdout_accuracy" in d else " (placeholder)"
    return name.split("-")[0], f"{name} ClaimCommit for model {_short(d['mid'])}{extra}"


def _score_line(display: Display, name: str, ev: Event) -> tuple[str, str]:
    d = ev.data
    lie = "  <- LIES" if d["reported"] != d["score"] else ""
    return "validator", f"{name} scored {_short(d['mid'])}: {d['score']}, reports {d['reported']}{lie}"


def _checked_line(display: Display, name: str, ev: Event) -> tuple[str, str]:
    d = ev.data
    ok = "ok" if d["reported"] == d["recomputed"] else "WRONG"
    return "verifier", (f"{name} re-scored {display.name(d['validator'])} on {_short(d['mid'])}: reported "
                        f"{d['reported']}, recomputed {d['recomputed']} {ok}")


_LINES: dict[Kind, Callable[[Display, str, Event], tuple[str, str]]] = {
    Kind.ERROR: lambda _dp, n, ev: ("error", f"{n}: {ev.data.get('error')}"),
    Kind.REJECTED: lambda _dp, n, ev: ("rejected", f"{n}: {ev.data.get('message', ev.data.get('what'))} REFUSED by "
                                                   f"the ledger: {ev.data.get('reason')} — {ev.data.get('text')}"),
    Kind.ORDER_PLACED: lambda _dp, n, ev: (
        "client", f"{n} placed order {ev.order_id}: reward {_pot(ev.data['reward'])} POT escrowed, spec "
                  f"{ev.data['spec_cid'][:16]}..., test set committed (hidden until release)"),
    Kind.ORDER_PICKED: lambda _dp, n, ev: (
        "miner", f"{n} picked order {ev.order_id} (reward/s {_pot(ev.data['reward_per_second'])})"),
    Kind.TRAINING: lambda _dp, n, ev: (
        "miner", f"{n} training {ev.data['arch']} on {ev.data['samples']} samples, {ev.data['seconds']}s left"),
    Kind.COMMIT: _commit_line,
    Kind.TRAINED: lambda _dp, n, ev: (
        "miner", f"{n} trained {ev.data['epochs']} epochs ({ev.data['stopped_by']}) best holdout "
                 f"{ev.data['holdout_accuracy']}"),
    Kind.REVEAL: lambda _dp, n, ev: (
        "miner", f"{n} ClaimReveal model {_short(ev.data['mid'])}" + (f" cid {ev.data['cid'][:16]}..."
                                                                      if "cid" in ev.data else "")),
    Kind.STEAL: lambda dp, n, ev: (
        "thief", f"{n} copies {dp.name(ev.data['victim'])}'s revealed model {_short(ev.data['mid'])}"),
    Kind.TEST_RELEASED: lambda _dp, n, ev: (
        "client", f"{n} released the test set {ev.data['test_cid'][:16]}... on-chain: t3 = {ev.data['t3']}"),
    Kind.SCORE: _score_line,
    Kind.VALIDATION_COMMIT: lambda _dp, n, ev: ("validator", f"{n} ValidationCommit {_short(ev.data['mid'])} "
                                                             "(score hidden)"),
    Kind.VALIDATION_REVEAL: lambda _dp, n, ev: (
        "validator", f"{n} ValidationReveal {_short(ev.data['mid'])}: {ev.data['score']}, vStake "
                     f"{_pot(ev.data['v_stake'])} POT"),
    Kind.CHECKED: _checked_line,
    Kind.CHALLENGE_COMMIT: lambda dp, n, ev: (
        "chain", f"{n} commitChallenge against {dp.name(ev.data['validator'])} (reported {ev.data['reported']} vs "
                 f"{ev.data['recomputed']}), cStake {_pot(ev.data['c_stake'])} POT, tx {_short(ev.data['tx'])}"),
    Kind.CHALLENGE_REVEAL: lambda _dp, n, ev: (
        "chain", f"{n} revealChallenge vid {_short(ev.data['vid'])}, tx {_short(ev.data['tx'])}"),
    Kind.MODEL_FETCHED: lambda _dp, n, ev: (
        "client", f"{n} fetched the winner {_short(ev.data['mid'])} from storage: its sha256 is the mid; score here "
                  f"{ev.data['local_score']}, network {ev.data['network_score']}"),
}


# --- the thief ----------------------------------------------------------------------------------

class Thief(Worker):
    """A staked miner that trains nothing: it commits a placeholder to hold a claim, waits for
    an honest miner's reveal, then tries to pass that model off as its own."""

    role = "thief"
    stake_role = T.MINER

    def __init__(self, order_id: int, **kw) -> None:
        super().__init__(**kw)
        self.order_id = order_id
        self.salt = os.urandom(32)
        self.committed = False
        self.tried = False
        self.victim: str | None = None
        self.victim_mid: bytes | None = None

    async def _step(self) -> None:
        if not await self.ensure_staked():
            return
        cyc = await self.gateway.cycle(self.order_id)
        if cyc is None:
            return
        ph = self.track_phase(cyc.order, cyc.t3)
        oid = self.order_id
        if ph is Phase.TRAINING and not self.committed:
            # nothing trained: the commitment opens to no model the thief could ever reveal
            placeholder = os.urandom(32)
            res = await self.send(Kind.COMMIT, T.ClaimCommit(oid, self.address, claim_commitment(
                oid, self.address, placeholder, self.salt)), oid, mid=placeholder)
            self.committed = res.ok
        elif ph is Phase.MODEL_REVEAL and self.committed and not self.tried:
            victims = [m for m in cyc.models if m.miner != self.address]
            if not victims:
                return
            victim = victims[0]
            self.emit(Kind.STEAL, oid, victim=victim.miner, mid=victim.mid, cid=victim.model_cid)
            self.victim, self.victim_mid = victim.miner, victim.mid
            # 1. reveal the victim's model under the thief's own commitment
            await self.send(Kind.REVEAL, T.ClaimReveal(oid, self.address, victim.mid, self.salt, victim.model_cid),
                            oid, mid=victim.mid)
            # 2. commit to it now that it is public: training is over
            await self.send(Kind.COMMIT, T.ClaimCommit(oid, self.address, claim_commitment(
                oid, self.address, victim.mid, self.salt)), oid, mid=victim.mid)
            self.tried = True


# --- the scenario -------------------------------------------------------------------------------

@dataclass
class DemoResult:
    summary: dict[str, Any]
    balances: list[dict[str, Any]]
    gas: list[dict[str, Any]]
    runtime_s: float
    extra: dict[str, Any] = field(default_factory=dict)


class Demo:
    def __init__(self, workdir: Path, display: Display, *, order: dict[str, Any] | None = None,
                 config: dict[str, Any] | None = None, deadline_s: float = 600.0) -> None:
        self.workdir = workdir
        self.display = display
        self.order_settings = {**ORDER, **(order or {})}
        self.net = Devnet(workdir / "devnet", DevnetConfig(**{**DEMO_CONFIG, **(config or {})}))
        self.deadline_s = deadline_s
        self.events: list = []
        self.workers: dict[str, Any] = {}
        self.stop = asyncio.Event()
        self.client_stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    # -- plumbing ---------------------------------------------------------------------------

    def _participant(self, name: str) -> Participant:
        return next(p for p in self.net.participants if p.name == name)

    def _on_event(self, name: str) -> Callable:
        def handler(ev) -> None:
            self.events.append((name, ev))
            self._show(name, ev)
            if ev.kind is Kind.TEST_RELEASED:
                # the client's part until the settlement is done; it checks the winner at the end
                self.client_stop.set()
        return handler

    def _show(self, name: str, ev: Event) -> None:
        say = self.display.line
        if ev.kind in _QUIET:
            return
        if ev.kind is Kind.ERROR and isinstance(ev.exc, NoQuorum):
            return  # replicas a sequence number apart for a moment: the worker asks again
        if ev.kind in (Kind.ERROR, Kind.REJECTED) and _chain_clock_behind(ev.exc):
            # the worker's clock opened the window a moment before the chain's head block did
            say("retry", f"{name}: {ev.data.get('what', 'a transaction')} reverted ({ev.exc}): the chain's head is "
                         "a second behind, retrying")
            return
        line = _LINES.get(ev.kind)
        if line is None:
            say(ev.role, f"{name} {ev.kind} {' '.join(f'{a}={b}' for a, b in ev.data.items())}")
            return
        category, text = line(self.display, name, ev)
        say(category, text)

    def _worker(self, cls, name: str, config, store, domain, **kw):

        p = self._participant(name)
        # a connection of its own, as a separate node would have (web3 calls run in threads)
        chain = ChainAccess(connect(self.net.state["rpc_url"]), self.deployment, p.account)
        if config is not None:
            config.state_dir = str(self.workdir / "state" / name)
            config.poll_interval = self.net.config.poll_interval
        w = cls(**({"config": config} if config is not None else {}), account=p.account,
                gateway=HttpGateway.from_urls(self.net.state["api_urls"]), domain=domain, store=store,
                chain=chain, on_event=self._on_event(name), **kw)
        self.workers[name] = w
        return w

    def _balances(self) -> dict[str, tuple[int, int]]:
        c = self.contracts
        out = {}
        for name, addr in self.accounts.items():
            out[name] = (c.token.balance_of(addr), c.stakes.staker(addr)["stake"])
        return out

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> DemoResult:

        t_start = time.monotonic()
        say = self.display.line
        say("setup", f"work directory {self.workdir}")
        await asyncio.to_thread(self.net.up, workers=False, extra={"thief": 1},
                                progress=lambda m: say("setup", m))
        st = self.net.state
        self.w3 = connect(st["rpc_url"])
        self.deployment = Deployment.load(self.net.deployment_file, self.net.config.chain_id)
        self.contracts = Contracts(self.w3, self.deployment)
        domain = Domain.messages(self.deployment.chain_id, self.deployment.order_book)
        store = EmbeddedStore(self.net.store_dir)

        self.accounts = {p.name: p.address for p in self.net.participants}
        self.accounts["treasury"] = dev_account(TREASURY).address
        self.display.names = {a.lower(): n for n, a in self.accounts.items()}
        self.display.names[self.deployment.reward_multisig.lower()] = "RewardMultisig"

        client = self._worker(Client, "client-1", ClientConfig(**self.order_settings), store, domain)
        miners = [self._worker(Miner, name,
                               MinerConfig(commit_margin_s=3, min_train_s=2, train_seed=seed, commit_interval_s=2.0,
                                           hints=OWN_HINTS.get(name, {})),
                               store, domain)
                  for name, seed in SEEDS.items()]
        validators = [self._worker(Validator, "validator-1", ValidatorConfig(v_stake=2 * TOKEN), store, domain),
                      self._worker(Validator, "validator-2", ValidatorConfig(v_stake=3 * TOKEN,
                                                                             dishonest_offset=LIE_PPM),
                                   store, domain)]
        verifier = self._worker(Verifier, "verifier-1", VerifierConfig(), store, domain)
        own = ", ".join(f"{k} {v:g}" for k, v in OWN_HINTS["miner-2"].items())
        say("setup", f"participants: client-1; miner-1 (the spec's hints, seed {SEEDS['miner-1']}), miner-2 ({own}, "
                     f"seed {SEEDS['miner-2']}); thief; validator-1 (honest), validator-2 (adds {LIE_PPM} ppm to "
                     "every score); verifier-1")

        before = await asyncio.to_thread(self._balances)
        first_block = await asyncio.to_thread(lambda: self.w3.eth.block_number + 1)

        oid = await client.place_order()
        thief = self._worker(Thief, "thief", None, store, domain, order_id=oid, poll_interval=0.5)
        for w in (*miners, thief, *validators, verifier):
            self.tasks.append(asyncio.create_task(w.run_forever(self.stop)))
        self.tasks.append(asyncio.create_task(client.run_forever(self.client_stop)))
        try:
            settled = await asyncio.wait_for(self._watch(oid), timeout=self.deadline_s)
        except TimeoutError:
            raise DemoFailed(f"order {oid} did not settle within {self.deadline_s:g}s") from None
        finally:
            self.stop.set()
            self.client_stop.set()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        # the client checks the winner itself, after the settlement executed on-chain (its loop
        # closed its gateway on the way out: a fresh one, BFT reads as before)

        client.gateway = HttpGateway.from_urls(self.net.state["api_urls"])
        try:
            result = await client.fetch_result(oid)
        finally:
            await client.gateway.aclose()
        if result is None or result.mid is None:
            raise DemoFailed(f"order {oid} settled without a winner the client could fetch")
        after = await asyncio.to_thread(self._balances)
        gas = await asyncio.to_thread(self._gas_report, first_block)
        summary = self._summary(oid, settled, result, gas)
        balances = [{"name": n, "address": self.accounts[n], "token_before": before[n][0],
                     "token_after": after[n][0], "stake_before": before[n][1], "stake_after": after[n][1]}
                    for n in self.accounts]
        return DemoResult(summary, balances, gas["by_function"], time.monotonic() - t_start,
                          {"total_gas": gas["total"], "thief": thief.address})

    async def _watch(self, oid: int) -> dict[str, Any]:
        """Follow the order in the committee's ledger until its settlement executed on-chain;
        prints the ledger's phases and the committee's steps. Returns the settlement view."""

        say = self.display.line
        apis = [ApiClient(u, timeout=5.0) for u in self.net.state["api_urls"]]
        last_phase = None
        seen: set[str] = set()
        try:
            while True:
                if any(t.done() and t.exception() for t in self.tasks):
                    bad = next(t for t in self.tasks if t.done() and t.exception())
                    raise DemoFailed(f"a worker stopped: {bad.exception()!r}")
                cyc = st = None
                for api in apis:  # display only: any replica that answers will do
                    try:
                        cyc = await api.order(oid)
                        if cyc is not None and cyc.get("nonce") is not None:
                            st = await api.settlement(cyc["nonce"])
                        break
                    except Exception:  # noqa: BLE001 - that replica is busy or down: ask the next
                        continue
                if cyc is not None:
                    if cyc["phase"] != last_phase:
                        # a phase shorter than a poll (the test release, when the client is quick)
                        # is still shown, in its place
                        i = PHASES.index(cyc["phase"]) if cyc["phase"] in PHASES else -1
                        j = PHASES.index(last_phase) if last_phase in PHASES else i - 1
                        for ph in PHASES[j + 1:i]:
                            say("phase", f"── order {oid}: {ph} (passed) ──")
                        last_phase = cyc["phase"]
                        tl = cyc["timeline"]
                        ends = {"training": "train_end", "model-reveal": "reveal_end",
                                "test-release": "release_end", "validation": "validate_end",
                                "validation-reveal": "validation_reveal_end", "challenge": "challenge_end",
                                "challenge-reveal": "challenge_reveal_end"}
                        end = tl.get(ends.get(last_phase, ""), None)
                        left = f" (ends in {end - cyc['time']}s)" if end and cyc.get("time") else ""
                        say("phase", f"── order {oid}: {last_phase}{left} ──")
                    pend = cyc.get("pendingVerification") or []
                    if pend and "verify" not in seen:
                        seen.add("verify")
                        say("committee", f"PoT.Verify: every replica re-scores {len(pend)} disputed model(s) "
                                         "outside the state machine; 2f+1 equal results stand")
                    for m in cyc.get("models", []):
                        key = f"verified-{m['mid']}"
                        if m.get("verifiedScore") is not None and key not in seen:
                            seen.add(key)
                            say("committee", f"verified score of {_short(m['mid'])} "
                                             f"({self.display.name(m['miner'])}): {m['verifiedScore']}")
                if st is not None:
                    if "proposed" not in seen:
                        seen.add("proposed")
                        s = st["settlement"]
                        say("committee", f"finalized: settlement {st['nonce']} digest {_short(st['digest'])} "
                                         f"({len(s['orders'])} order, {len(s['slashes'])} slashes, "
                                         f"{len(s['verdicts'])} verdicts); replicas sign it (EIP-712)")
                    n_sig = len(st.get("signers", []))
                    if n_sig and f"sig-{n_sig}" not in seen:
                        seen.add(f"sig-{n_sig}")
                        say("committee", f"settlement {st['nonce']}: {n_sig} of "
                                         f"{self.net.config.aggregators} signatures "
                                         f"(threshold {self.net.config.threshold})")
                    if st.get("executed"):
                        receipt = await asyncio.to_thread(self.w3.eth.get_transaction_receipt, st["txHash"])
                        say("chain", f"executeSigned landed: tx {_short(st['txHash'], 18)} block "
                                     f"{receipt['blockNumber']}, gas {receipt['gasUsed']:,}")
                        return st
                await asyncio.sleep(0.5)
        finally:
            await asyncio.gather(*(a.aclose() for a in apis))

    def _gas_report(self, first_block: int) -> dict[str, Any]:
        """Gas of every transaction of the cycle, by contract function (from the blocks)."""


        by_addr = {a.lower(): name for name, a in self.deployment.addresses.items()}
        selectors: dict[tuple[str, bytes], str] = {}
        for name in by_addr.values():
            for item in load_artifact(name)["abi"]:
                if item.get("type") == "function":
                    sig = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
                    selectors[(name, Web3.keccak(text=sig)[:4])] = item["name"]
        rows: dict[str, dict[str, Any]] = {}
        total = 0
        for n in range(first_block, self.w3.eth.block_number + 1):
            block = self.w3.eth.get_block(n, full_transactions=True)
            for tx in block["transactions"]:
                contract = by_addr.get((tx["to"] or "").lower(), "?")
                fn = selectors.get((contract, bytes(tx["input"][:4])), "?")
                gas = int(self.w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"])
                total += gas
                key = f"{contract}.{fn}"
                row = rows.setdefault(key, {"function": key, "count": 0, "gas": 0})
                row["count"] += 1
                row["gas"] += gas
        return {"total": total, "by_function": sorted(rows.values(), key=lambda r: -r["gas"])}

    def _summary(self, oid: int, st: dict[str, Any], result, gas: dict[str, Any]) -> dict[str, Any]:

        batch = settlement_from_json(st["settlement"])
        os_ = next(o for o in batch.orders if o.order_id == oid)
        receipt = self.w3.eth.get_transaction_receipt(st["txHash"])
        cyc = self._cycle_json(oid)
        # why each staker lost stake: its revealed scores that differ from the verified ones
        wrong: dict[str, list[tuple[str, int, int]]] = {}
        for m in cyc["models"]:
            v_score = m.get("verifiedScore")
            for v in m["validations"]:
                if v_score is not None and v["score"] != v_score:
                    wrong.setdefault(v["validator"].lower(), []).append((m["mid"], v["score"], v_score))
        slashes: dict[str, dict[str, Any]] = {}
        for s in batch.slashes:
            e = slashes.setdefault(s.staker, {"from": s.staker, "amount": 0, "to": {}})
            e["amount"] += s.amount
            e["to"][s.to] = e["to"].get(s.to, 0) + s.amount
        out_slashes = []
        for staker, e in slashes.items():
            bad = wrong.get(staker.lower(), [])
            what = "; ".join(f"reported {r} for {_short(m, 18)}, PoT.Verify says {v}" for m, r, v in bad)
            upheld = [v for v in batch.verdicts if v.validator == staker and v.upheld]
            reason = (f"{len(bad)} wrong validation score(s) ({what})" if bad else "wrong validation")
            if upheld:
                reason += f"; challenge by {self.display.name(upheld[0].challenger)} upheld"
            reason += "; to " + ", ".join(f"{self.display.name(to)} {_pot(a)} POT" for to, a in e["to"].items())
            out_slashes.append({"from": staker, "amount": str(e["amount"]), "reason": reason})
        thief = self.workers["thief"]
        victim = f"{self.display.name(thief.victim)}'s model {_short(thief.victim_mid, 18)}"
        rejected = [{"actor": "thief", "reason": f"{ev.data['message']} of {victim} refused: {ev.data['reason']} "
                                                 f"({ev.data['text']})"}
                    for name, ev in self.events if name == "thief" and ev.kind is Kind.REJECTED]
        return {
            "order_id": oid,
            "winner": os_.winner,
            "winning_mid": "0x" + os_.winning_mid.hex(),
            "metric": codec.from_json(cyc["order"]).model_type_name,
            "winning_score": result.ledger_score,
            "client_checked_score": result.local_score,
            "escrow": str(codec.from_json(cyc["order"]).reward),
            "payouts": [{"to": p.to, "amount": str(p.amount)} for p in os_.paid(batch.members)],
            "slashes": out_slashes,
            "challenges": [{"validator": v.validator, "upheld": v.upheld} for v in batch.verdicts],
            "rejected": rejected,
            "settlement_tx": st["txHash"],
            "gas_used": int(receipt["gasUsed"]),
        }

    def _cycle_json(self, oid: int) -> dict[str, Any]:
        """The order's cycle data from the first replica that answers (after the settlement every
        replica holds the same)."""

        errors = []
        for url in self.net.state["api_urls"]:
            try:
                with urllib.request.urlopen(f"{url}/v1/orders/{oid}", timeout=5) as resp:
                    return json.loads(resp.read())
            except OSError as exc:
                errors.append(f"{url}: {exc}")
        raise DemoFailed(f"no replica serves order {oid}: {errors}")


def _abi_type(item: dict[str, Any]) -> str:
    t = item["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + t[len("tuple"):]
    return t


# --- the summary --------------------------------------------------------------------------------

def print_summary(res: DemoResult, display: Display) -> None:
    from pot.ml.validation import describe_score  # torch: only once there is a summary

    s, name, console = res.summary, display.name, display.console
    console.print()
    t = Table(title=f"order {s['order_id']} settled on-chain (the whole demo took {res.runtime_s:.0f}s)",
              show_header=False,
              title_style="bold")
    t.add_row("winner", f"{name(s['winner'])} {s['winner']}")
    t.add_row("winning model", s["winning_mid"])
    t.add_row("score", f"{s['metric']}: {describe_score(s['metric'], s['winning_score'])} (network) / "
                       f"{s['client_checked_score']:,} (client's own check) "
                       + ("✔" if s["winning_score"] == s["client_checked_score"]
                                                   else "✘ MISMATCH"))
    t.add_row("escrow", f"{_pot(int(s['escrow']))} POT")
    for p in s["payouts"]:
        t.add_row("payout", f"{_pot(int(p['amount'])):>10} POT -> {name(p['to'])}")
    for sl in s["slashes"]:
        t.add_row("slash", f"{_pot(int(sl['amount'])):>10} POT from {name(sl['from'])}: {sl['reason']}")
    for c in s["challenges"]:
        t.add_row("challenge", f"against {name(c['validator'])}: {'upheld' if c['upheld'] else 'rejected'}")
    for r in s["rejected"]:
        t.add_row("rejected", f"{r['actor']}: {r['reason']}")
    t.add_row("settlement", f"executeSigned tx {s['settlement_tx']}, gas {s['gas_used']:,}")
    t.add_row("total gas", f"{res.extra['total_gas']:,} for every transaction of the cycle")
    console.print(t)

    b = Table(title="balances (POT): wallet and stake, before and after the cycle", title_style="bold")
    for col in ("participant", "wallet before", "wallet after", "Δ wallet", "stake before", "stake after", "Δ stake"):
        b.add_column(col, justify="left" if col == "participant" else "right")
    for r in res.balances:
        dw, ds = r["token_after"] - r["token_before"], r["stake_after"] - r["stake_before"]
        if not (dw or ds or r["stake_before"]):
            continue
        b.add_row(r["name"], _pot(r["token_before"]), _pot(r["token_after"]), _signed(dw),
                  _pot(r["stake_before"]), _pot(r["stake_after"]), _signed(ds))
    console.print(b)

    g = Table(title="gas of the cycle's transactions", title_style="bold")
    for col in ("function", "count", "gas"):
        g.add_column(col, justify="left" if col == "function" else "right")
    for r in res.gas:
        g.add_row(r["function"], str(r["count"]), f"{r['gas']:,}")
    g.add_row("total", "", f"{res.extra['total_gas']:,}")
    console.print(g)


def _signed(wei: int) -> str:
    if wei == 0:
        return "0"
    return ("+" if wei > 0 else "-") + _pot(abs(wei))


def check(summary: dict[str, Any], honest_miners: list[str]) -> list[str]:
    """What is wrong with the outcome (empty: the cycle did what the protocol promises)."""
    problems = []
    if summary["winner"] not in honest_miners:
        problems.append(f"winner {summary['winner']} is not an honest miner")
    if summary["winning_score"] != summary["client_checked_score"]:
        problems.append("the client's own score differs from the network's")
    if sum(int(p["amount"]) for p in summary["payouts"]) != int(summary["escrow"]):
        problems.append("payouts do not sum to the escrow")
    if not any(c["upheld"] for c in summary["challenges"]):
        problems.append("no challenge upheld")
    if not summary["slashes"]:
        problems.append("nobody slashed")
    if not summary["rejected"]:
        problems.append("the thief was not refused")
    return problems


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def task_order(task: str, data_dir: Path) -> dict[str, Any]:
    """The order settings of a ``--task``, its data written under ``data_dir``."""
    from pot.ml.demo_data import write_corpus, write_shape_images

    if task not in TASKS:
        raise DemoFailed(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    order = dict(TASKS[task])
    if task == "lm":
        order["data"] = str(write_corpus(data_dir / order["data"], n_bytes=60_000))
    elif task == "images":
        order["data"] = str(write_shape_images(data_dir / order["data"], per_class=60, size=16))
    return order


def run_demo(workdir: str | os.PathLike | None = None, *, json_path: str | os.PathLike | None = None,
             quiet: bool = False, keep: bool = False, console=None, order: dict[str, Any] | None = None,
             deadline_s: float = 600.0, task: str = "digits") -> DemoResult:
    """Run the demo on a devnet of its own under ``workdir`` (default: a new temp dir, removed
    afterwards unless ``keep``); the devnet is stopped whatever happens."""

    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="pot-demo-")) if own_dir else Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    order = {**task_order(task, root / "data"), **(order or {})}
    (root / "logs").mkdir(exist_ok=True)
    handler = logging.FileHandler(root / "logs" / "demo.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    pot_log = logging.getLogger("pot")
    pot_log.addHandler(handler)
    pot_log.setLevel(logging.INFO)
    pot_log.propagate = False  # the workers' lines go to the log file; the display shows them once
    display = Display(quiet=quiet, console=console)
    demo = Demo(root, display, order=order, deadline_s=deadline_s)
    # the devnet's processes live in sessions of their own: a SIGTERM to the demo must still
    # reach the `finally` below that stops them, or they would outlive it
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # both miners train at once in this process: a thread each, not a pool each
    try:
        res = asyncio.run(demo.run())
        if json_path:
            Path(json_path).write_text(json.dumps(res.summary, indent=2) + "\n")
        res.extra["workdir"] = str(root)
        res.extra["names"] = dict(display.names)
        res.extra["honest_miners"] = [demo.accounts[m] for m in SEEDS]
        return res
    finally:
        torch.set_num_threads(threads)
        demo.net.down(timeout=10)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        pot_log.removeHandler(handler)
        handler.close()
        pot_log.propagate = True
        if own_dir and not keep:
            shutil.rmtree(root, ignore_errors=True)
