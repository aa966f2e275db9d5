"""The aggregator: one replica of the committee (DESIGN.md §4), as one asyncio process.

    PBFT replica (pot.pbft.node.ReplicaNode)  -- orders requests, state = the global ledger
    ├─ CommitteeStateMachine                  -- LedgerStateMachine at PBFT's batch time, in seconds
    ├─ HTTP API (pot.api.create_app)          -- uvicorn on the same loop; submits go through PBFT
    ├─ ticker                                 -- a Tick request every second (windows close, orders finalize)
    ├─ chain follower                         -- own RPC, confirmation depth, ChainAttestation per event
    ├─ verifier                               -- PoT.Verify outside the state machine -> VerifyResult
    └─ settler                                -- SettlementSignature; executeSigned (or the paper's
                                                 propose/confirm/execute) by a rotating submitter

Every decision lives in the ledger: this module only feeds it requests and acts on what it
committed. Chain events, for instance, are never trusted from one replica: each replica signs
what its own RPC node shows (``ChainAttestation``) and the ledger applies an event once f+1
members attested it identically.

``python -m pot aggregator run --config agg0.toml`` (see ``aggregator_config`` for the file,
``local_committee_configs`` for an n-replica committee on one machine).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pot.roles.base import quiet_libraries
from pot.roles.aggregator_config import (AggregatorConfig, AggregatorConfigError, committee_keys,
                                         load_aggregator_config, local_committee_configs)

__all__ = ["Aggregator", "AggregatorConfig", "AggregatorConfigError", "CommitteeStateMachine", "committee_keys",
           "event_ref", "load_aggregator_config", "local_committee_configs", "run", "verify_request"]

log = logging.getLogger("pot.aggregator")


class CommitteeStateMachine:
    """PBFT's state machine: the ledger at the batch time (PBFT stamps milliseconds; ledger
    time is in seconds)."""

    def __init__(self, ledger) -> None:
        from pot.ledger import LedgerStateMachine

        self.ledger = ledger
        self._sm = LedgerStateMachine(ledger)

    def execute(self, requests: list[bytes], timestamp: int) -> list[bytes]:
        return self._sm.execute(requests, timestamp // 1000)

    def digest(self) -> bytes:
        return self._sm.digest()

    def snapshot(self) -> bytes:
        return self._sm.snapshot()

    def restore(self, snapshot: bytes) -> None:
        self._sm.restore(snapshot)


def verify_request(payload: bytes) -> bool:
    """PBFT's request check (every replica runs it on every request a primary proposes): a
    canonical ledger op, and not a bare chain event (those only come attested). Signatures are
    checked by the ledger itself, once, when the request executes."""
    from pot.protocol import codec
    from pot.protocol import types as T

    try:
        op = codec.decode(payload)
    except codec.DecodeError:
        return False
    return type(op) not in T.CHAIN_EVENTS and not isinstance(op, (T.Result, T.Order))


def event_ref(block_number: int, index: int) -> bytes:
    """Identity of the ``index``-th ledger op made from block ``block_number``'s logs: every
    replica following the same chain at the same depth numbers them alike."""
    from pot.protocol.ids import keccak

    return keccak(b"pot-chain-event" + block_number.to_bytes(32, "big") + index.to_bytes(32, "big"))


class _ContextFilter(logging.Filter):
    """Puts the replica id and current view on every log line."""

    def __init__(self, agg: Aggregator) -> None:
        super().__init__()
        self.agg = agg

    def filter(self, record: logging.LogRecord) -> bool:
        record.replica = self.agg.cfg.replica_id
        node = self.agg.node
        record.view = node.replica.view if node is not None else "-"
        return True


def setup_logging(cfg: AggregatorConfig, agg: Aggregator) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s replica=%(replica)s view=%(view)s %(name)s %(message)s")
    root = logging.getLogger()
    root.setLevel(cfg.log_level.upper())
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if cfg.log_path is not None:
        cfg.log_path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(cfg.log_path))
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(_ContextFilter(agg))
        root.addHandler(h)
    quiet_libraries()


class _LocalClient:
    """The PBFT client handle of requests this process submits itself (no socket)."""


class Aggregator:
    """One committee replica. ``await start()``, then ``await stop()``; ``run(config)`` does both
    around SIGINT/SIGTERM. Implements ``pot.api.Node`` for the HTTP API."""

    def __init__(self, cfg: AggregatorConfig, *, account=None) -> None:
        self.cfg = cfg
        self.account = account
        self.node = None
        self.ledger = None
        self._futures: dict[bytes, list[asyncio.Future]] = {}
        self._client = _LocalClient()
        self._tasks: list[asyncio.Task] = []
        self._server = None
        self._stopping = False
        # settlement bookkeeping (local, advisory: the chain and the ledger decide)
        self._ready_since: dict[int, float] = {}
        self._sent: set[tuple[int, str, Any]] = set()
        self._verified: set[tuple[int, bytes]] = set()
        self.stats: dict[str, Any] = {"submitted": 0, "attested": 0, "verify_results": 0, "settlements": []}

    # --- setup -----------------------------------------------------------------------------

    def _chain_setup(self) -> None:
        """Blocking: connect, load the deployment and read the ledger configuration from the chain."""
        from eth_utils import to_checksum_address

        from pot.chain.clients import Contracts
        from pot.chain.deployment import Deployment
        from pot.chain.sender import Sender, connect
        from pot.ledger import LedgerConfig
        from pot.pbft.crypto import public_key
        from pot.protocol import types as T
        from pot.protocol.finalize import Params

        cfg = self.cfg
        self.w3 = connect(cfg.rpc_url)
        chain_id = cfg.chain_id if cfg.chain_id is not None else self.w3.eth.chain_id
        self.deployment = Deployment.load(cfg.deployment, chain_id)
        self.contracts = Contracts(self.w3, self.deployment)
        self.sender = Sender(self.w3, self.account)
        ms, ob = self.contracts.multisig, self.contracts.orders
        members = [to_checksum_address(m) for m in ms.members()]
        from eth_keys import keys as eth_keys

        mine = [eth_keys.PublicKey.from_compressed_bytes(pk).to_checksum_address() for pk in cfg.public_keys]
        if sorted(mine) != sorted(members):
            raise AggregatorConfigError(f"[committee] public_keys are {mine}, RewardMultisig's members are "
                                        f"{members}: the committee table and the deployment disagree")
        if public_key(bytes(self.account.key)) != cfg.public_keys[cfg.replica_id]:
            raise AggregatorConfigError(f"this key ({self.account.address}) is not replica "
                                        f"{cfg.replica_id}'s ({mine[cfg.replica_id]})")
        min_stake = {role: int(self.contracts.stakes.call("minStake", role))
                     for role in (T.MINER, T.VALIDATOR, T.VERIFIER, T.AGGREGATOR)}
        params = Params(min_stake=min_stake, treasury=ms.call("treasury"),
                        min_reveal_duration=int(ob.call("minRevealDuration")), **cfg.params)
        self.ledger_config = LedgerConfig(chain_id, self.deployment.order_book, self.deployment.reward_multisig,
                                          tuple(members), params, threshold=int(ms.threshold()),
                                          attested_chain_events=True, epoch=int(ms.epoch()))
        self.members = members

    async def start(self) -> None:
        from pot.ledger import Ledger
        from pot.pbft.node import CommitteeConfig, ReplicaNode
        from pot.pbft.replica import ReplicaConfig
        from pot.pbft.storage import FileStore
        from pot.roles.scoring import Scorer
        from pot.storage import open_store

        cfg = self.cfg
        if self.account is None:
            self.account = await asyncio.to_thread(cfg.load_account)
        self.address = self.account.address
        self.key = bytes(self.account.key)
        await asyncio.to_thread(self._chain_setup)
        self.domain = self.ledger_config.message_domain
        self.multisig_domain = self.ledger_config.multisig_domain
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        # The PBFT log (checkpoint + committed batches) is the replica's durable truth; the
        # SQLite ledger is rebuilt from it at every start, so the two can never disagree.
        for suffix in ("", "-wal", "-shm"):
            Path(str(cfg.ledger_path) + suffix).unlink(missing_ok=True)
        self.ledger = Ledger(self.ledger_config, str(cfg.ledger_path))
        self.sm = CommitteeStateMachine(self.ledger)
        rcfg = ReplicaConfig(cfg.n, **cfg.pbft_options)
        committee = CommitteeConfig(list(cfg.pbft), list(cfg.public_keys), rcfg)
        self.node = ReplicaNode(committee, cfg.replica_id, self.key, self.sm, verifier=verify_request,
                                store=FileStore(cfg.pbft_dir))
        self.node.on_reply.append(self._on_reply)
        self.node.on_executed.append(self._on_executed)
        await self.node.start()
        log.info("listening pbft=%s:%d seq=%d ledger_seq=%d members=%d threshold=%d", *cfg.pbft[cfg.replica_id],
                 self.node.replica.last_exec, self.ledger.seq, cfg.n, self.ledger_config.threshold)
        self.store = open_store(cfg.store)
        self.scorer = Scorer(self.store)
        from pot.chain.events import EventFollower

        # Its position survives restarts and moves only past events this replica attested.
        self.follower = EventFollower(self.w3, self.deployment, confirmations=cfg.confirmations,
                                      state_path=cfg.data_dir / "follower.json")
        self._tasks = [asyncio.create_task(self._loop(name, fn, interval), name=name) for name, fn, interval in (
            ("ticker", self._tick, cfg.tick_interval),
            ("chain", self._follow_chain, cfg.chain_poll_interval),
            ("verify", self._verify, cfg.verify_poll_interval),
            ("settle", self._settle, cfg.settlement_poll_interval))]
        await self._serve_api()

    async def _serve_api(self) -> None:
        import uvicorn

        from pot.api.app import create_app

        config = uvicorn.Config(create_app(self), host=self.cfg.api_host, port=self.cfg.api_port,
                                log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        # the process owns SIGINT/SIGTERM (graceful stop of everything, not just the API)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._tasks.append(asyncio.create_task(self._server.serve(), name="api"))
        for _ in range(200):
            if self._server.started:
                break
            await asyncio.sleep(0.02)
        log.info("api on http://%s:%d", self.cfg.api_host, self.cfg.api_port)

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        for t in self._tasks:
            if t.get_name() != "api":
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for futs in self._futures.values():
            for f in futs:
                if not f.done():
                    f.cancel()
        if self.node is not None:
            r = self.node.replica
            status = {"id": self.cfg.replica_id, "view": r.view, "lastExecuted": r.last_exec,
                      "digest": r.digest().hex(), "ledgerDigest": self.ledger.digest().hex(),
                      "ledgerSeq": self.ledger.seq}
            (self.cfg.data_dir / "status.json").write_text(json.dumps(status))
            await self.node.close()
        if self.ledger is not None:
            self.ledger.close()
        log.info("stopped")

    # --- pot.api.Node ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        r = self.node.replica
        return {"replicaId": self.cfg.replica_id, "view": r.view, "primary": r.primary,
                "lastExecuted": r.last_exec, "pbftDigest": r.digest().hex(), "address": self.address,
                "mode": "pbft", "members": self.cfg.n, "threshold": self.ledger_config.threshold}

    async def submit(self, raw: bytes, *, timeout: float = 30.0):
        """Order ``raw`` through PBFT; the ledger's Result once this replica executed it.
        Retransmits to the current primary until then (a request sent to a primary that
        crashed reaches the next one), as PBFT's clients do (§4.1)."""
        from pot.api.node import NodeUnavailable
        from pot.pbft.messages import request_id
        from pot.protocol import codec

        if self._stopping or self.node is None:
            raise NodeUnavailable("replica is shutting down")
        rid = request_id(raw)
        if self.node.replica.has_executed(rid):
            # A replay: PBFT would answer it with the first result (or, after a restart, not
            # at all); the sender must learn that it changed nothing.
            return self._replayed(rid)
        fut = asyncio.get_running_loop().create_future()
        self._futures.setdefault(rid, []).append(fut)
        self.stats["submitted"] += 1
        deadline = time.monotonic() + timeout
        retry = max(1.0, self.node.replica.cfg.view_timeout)
        try:
            while True:
                self.node.submit(raw, self._client)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NodeUnavailable(f"request not committed within {timeout:.0f}s "
                                          f"(view {self.node.replica.view}, primary {self.node.replica.primary})")
                try:
                    reply = await asyncio.wait_for(asyncio.shield(fut), min(retry, left))
                    return codec.decode(reply)
                except TimeoutError:
                    if self.node.replica.has_executed(rid):
                        # ours executed: its reply, unless it came by state transfer (none)
                        rep = self.node.replica.replies.get(rid)
                        return codec.decode(rep.result) if rep is not None else self._replayed(rid)
                    continue
        finally:
            futs = self._futures.get(rid)
            if futs is not None:
                if fut in futs:
                    futs.remove(fut)
                if not futs:
                    del self._futures[rid]

    def _replayed(self, rid: bytes):
        from pot.protocol import codec
        from pot.protocol import types as T

        rep = self.node.replica.replies.get(rid)
        then = ""
        if rep is not None:
            first = codec.decode(rep.result)
            then = f" (its result then: {first.reason_enum.name} {first.text})"
        return T.Result.rejected(T.Reason.REPLAY, "this exact message was already executed by the committee"
                                 f"{then}; sending it again changes nothing")

    def _on_reply(self, client: Any, reply) -> None:
        if client is not self._client:
            return
        for fut in self._futures.get(reply.request_id, ()):
            if not fut.done():
                fut.set_result(reply.result)

    def _on_executed(self, e) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("executed seq=%d time=%d requests=%d", e.seq, e.timestamp // 1000, len(e.requests))
        from pot.protocol import codec

        for raw, res in zip(e.requests, e.results):
            r = codec.decode(res)
            if r.nonces:
                log.info("seq=%d settlement nonce=%s created: %s", e.seq, list(r.nonces), r.text)

    def _fire(self, raw: bytes, what: str, timeout: float = 30.0) -> asyncio.Task:
        """Submit without waiting; the outcome is logged."""
        async def go():
            try:
                res = await self.submit(raw, timeout=timeout)
                level = logging.DEBUG if what == "tick" or not res.ok else logging.INFO
                log.log(level, "%s: %s %s", what, res.reason_enum.name, res.text)
                return res
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: not committed: %s", what, exc)
                return None
        return asyncio.create_task(go())

    # --- the loops -------------------------------------------------------------------------

    async def _loop(self, name: str, fn, interval: float) -> None:
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - an RPC or store hiccup must not end the replica
                log.exception("%s step failed", name)
            await asyncio.sleep(interval)

    async def _tick(self) -> None:
        from pot.protocol import codec
        from pot.protocol import types as T

        # every replica ticks with the same second: one request per second however many submit,
        # and a backup's pending Tick still drives a view change when the primary is silent
        self._fire(codec.encode(T.Tick(at=int(time.time()))), "tick", timeout=5.0)

    async def _follow_chain(self) -> None:
        from pot.protocol import codec
        from pot.protocol import types as T
        from pot.roles.bridge import ops_from_events

        events, end = await asyncio.to_thread(self.follower.fetch)
        if not events:
            self.follower.advance(end)
            return
        by_block: dict[int, list] = {}
        for ev in events:
            by_block.setdefault(ev.block_number, []).append(ev)
        staker_at = self._staker_at
        waits = []
        for block, evs in sorted(by_block.items()):
            ops = await asyncio.to_thread(ops_from_events, evs, staker_at)
            for i, op in enumerate(ops):
                ref = event_ref(block, i)
                st = self.ledger.chain_event(ref)
                if st["applied"] or self.address in st["attesters"]:
                    continue  # fetched again after a failure (or attested by us): nothing to add
                att = T.ChainAttestation(self.address, ref, codec.encode(op)).sign(self.domain, self.key)
                self.stats["attested"] += 1
                log.info("attest block=%d #%d %s%s", block, i, type(op).__name__, _order_of(op))
                waits.append(self._fire(codec.encode(att), f"attestation block={block} #{i}", timeout=60.0))
        # the next poll starts after these are in: attestations enter the ledger in chain order;
        # one that did not commit (the committee is down or changing views) is sent again from
        # the same block on, never skipped (an error above, e.g. the node no longer serving a
        # block's state, leaves the position where it was too)
        results = await asyncio.gather(*waits)
        if all(r is not None for r in results):
            self.follower.advance(end)

    def _staker_at(self, account: str, block: int) -> tuple[int, int, int]:
        # the registry's state at the event's block: what every replica's node answers alike
        stake, _locked, roles, unbonding_end = self._stakes_contract().functions.stakerOf(account).call(
            block_identifier=block)
        return int(roles), int(stake), int(unbonding_end)

    def _stakes_contract(self):
        if not hasattr(self, "_stakes_c"):
            from pot.chain.compile import load_artifact

            self._stakes_c = self.w3.eth.contract(address=self.deployment.stake_registry,
                                                  abi=load_artifact("StakeRegistry")["abi"])
        return self._stakes_c

    async def _verify(self) -> None:
        from pot.protocol import codec
        from pot.protocol import types as T
        from pot.roles.scoring import Unavailable

        for p in self.ledger.pending_verifications():
            key = (p["orderId"], p["mid"])
            if key in self._verified:
                continue
            if p["modelCid"] is None or p["testCid"] is None:
                continue
            try:
                score, note = await self.scorer.score(p["mid"], p["modelCid"], p["testCid"], p["modelType"])
            except Unavailable as exc:
                log.warning("order=%d PoT.Verify of %s waits: %s", p["orderId"], p["mid"].hex()[:16], exc)
                continue
            log.info("order=%d PoT.Verify mid=%s score=%d%s", p["orderId"], p["mid"].hex()[:16], score,
                     f" ({note})" if note else "")
            msg = T.VerifyResult(p["orderId"], p["mid"], score, self.address).sign(self.domain, self.key)
            self._verified.add(key)
            self.stats["verify_results"] += 1
            self._fire(codec.encode(msg), f"order={p['orderId']} VerifyResult")

    async def _settle(self) -> None:
        from pot.protocol import codec
        from pot.protocol import types as T

        for st in self.ledger.pending_settlements():
            nonce = st["nonce"]
            # keyed by digest: a batch re-issued after its deadline is a new thing to sign
            key = (nonce, "sig", st["digest"])
            if self.address not in st["signers"] and key not in self._sent:
                batch = st["settlement"]
                sig = batch.sign(self.multisig_domain, self.key)
                self._sent.add(key)
                log.info("nonce=%d orders=%s signing settlement (deadline %d)", nonce, st["orderIds"],
                         batch.deadline)

                async def sign_and_forget(raw=codec.encode(T.SettlementSignature(nonce, self.address, sig)),
                                          n=nonce, k=key):
                    res = await self._fire(raw, f"nonce={n} SettlementSignature")
                    if res is None:
                        self._sent.discard(k)  # retry on the next pass
                asyncio.create_task(sign_and_forget())
            if self.cfg.settlement_path == "signed":
                if st["ready"]:
                    await self._submit_signed(st)
            else:
                await self._propose_confirm_execute(st)

    def _turn(self, nonce: int) -> tuple[int, int]:
        """(attempt, replica whose turn it is): nonce mod n first, the next one after every timeout."""
        since = self._ready_since.setdefault(nonce, time.monotonic())
        attempt = int((time.monotonic() - since) // self.cfg.settlement_timeout)
        return attempt, (nonce + attempt) % self.cfg.n

    async def _submit_signed(self, st: dict) -> None:
        nonce = st["nonce"]
        attempt, turn = self._turn(nonce)
        if turn != self.cfg.replica_id or (nonce, "exec", attempt) in self._sent:
            return
        self._sent.add((nonce, "exec", attempt))
        ms = self.contracts.multisig
        if await asyncio.to_thread(ms.nonce_used, nonce):
            return  # landed; SettlementExecuted comes back through the attestations
        sigs = st["signatures"][:self.ledger_config.threshold]
        t0 = time.monotonic()
        log.info("nonce=%d orders=%s executeSigned (attempt %d, %d signatures)", nonce, st["orderIds"],
                 attempt, len(sigs))
        try:
            tx = await asyncio.to_thread(ms.execute_signed, self.sender, st["settlement"], sigs)
        except Exception as exc:  # noqa: BLE001
            if _revert_name(exc) == "NonceUsed":
                log.info("nonce=%d already executed by another replica", nonce)
                return
            log.warning("nonce=%d executeSigned failed: %s", nonce, exc)
            self.sender.resync()
            return
        self._record_tx(nonce, "executeSigned", tx, t0)

    async def _propose_confirm_execute(self, st: dict) -> None:
        """The paper's path: the turn's replica proposes, every replica confirms, the turn's
        replica executes once k confirmations are on-chain. Needs no signatures in the ledger.

        The proposal id is derived from the digest of the batch this replica's own ledger
        computed, so confirming it approves exactly that batch: a member that proposed another
        batch first gets a different id, which no honest replica confirms."""
        nonce = st["nonce"]
        ms = self.contracts.multisig
        batch = st["settlement"]
        pid = batch.proposal_id(self.multisig_domain)
        if await asyncio.to_thread(ms.nonce_used, nonce):
            return
        approvals, exists = await asyncio.to_thread(ms.proposal_state, pid)
        attempt, turn = self._turn(nonce)
        try:
            if not exists:
                if turn == self.cfg.replica_id and (nonce, "propose", (pid, attempt)) not in self._sent:
                    self._sent.add((nonce, "propose", (pid, attempt)))
                    t0 = time.monotonic()
                    self._record_tx(nonce, "proposeReward", await asyncio.to_thread(
                        ms.propose_reward, self.sender, batch), t0)
                return
            if (nonce, "confirm", pid) not in self._sent:
                self._sent.add((nonce, "confirm", pid))
                t0 = time.monotonic()
                self._record_tx(nonce, "confirmReward", await asyncio.to_thread(
                    ms.confirm_reward, self.sender, pid), t0)
                approvals, exists = await asyncio.to_thread(ms.proposal_state, pid)
            if approvals >= self.ledger_config.threshold and turn == self.cfg.replica_id \
                    and (nonce, "execute", (pid, attempt)) not in self._sent:
                self._sent.add((nonce, "execute", (pid, attempt)))
                t0 = time.monotonic()
                self._record_tx(nonce, "executeReward", await asyncio.to_thread(
                    ms.execute_reward, self.sender, pid, batch), t0)
        except Exception as exc:  # noqa: BLE001
            name = _revert_name(exc)
            if name in ("NonceUsed", "AlreadyProposed", "AlreadyConfirmed", "UnknownProposal"):
                log.info("nonce=%d %s (another replica was first)", nonce, name)
                return
            log.warning("nonce=%d settlement step failed: %s", nonce, exc)
            self.sender.resync()

    def _record_tx(self, nonce: int, fn: str, tx, t0: float) -> None:
        gas = getattr(tx, "gas_used", None)
        if gas is None and isinstance(tx, dict):
            gas = tx.get("gasUsed")
        entry = {"nonce": nonce, "fn": fn, "gas": gas, "seconds": round(time.monotonic() - t0, 3)}
        self.stats["settlements"].append(entry)
        log.info("nonce=%d %s landed gas=%s in %.2fs", nonce, fn, gas, entry["seconds"])
        try:
            (self.cfg.data_dir / "settlements.jsonl").open("a").write(json.dumps(entry) + "\n")
        except OSError:
            pass


def _order_of(op) -> str:
    oid = getattr(op, "order_id", None)
    if oid is None and hasattr(op, "order"):
        oid = op.order.order_id
    return f" order={oid}" if oid is not None else ""


def _revert_name(exc: Exception) -> str | None:
    name = getattr(exc, "error", None)
    if isinstance(name, str):
        return name
    text = str(exc)
    for n in ("NonceUsed", "AlreadyProposed", "AlreadyConfirmed", "UnknownProposal", "Expired", "WrongEpoch"):
        if n in text:
            return n
    return None


async def run(cfg: AggregatorConfig) -> None:
    """Serve one replica until SIGINT/SIGTERM, then stop cleanly (status.json in data_dir)."""
    agg = Aggregator(cfg)
    setup_logging(cfg, agg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agg.start()
        (cfg.data_dir / "ready").write_text(str(os.getpid()))
        await stop.wait()
    finally:
        (cfg.data_dir / "ready").unlink(missing_ok=True)
        await agg.stop()
