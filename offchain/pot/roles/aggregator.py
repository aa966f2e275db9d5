"""The aggregator: one replica of the committee (ARCHITECTURE.md §4), as one asyncio process.

This module only wires the pieces together; each lives in a module of its own::

    CommitteeNode (roles.committee)   -- the PBFT replica over the ledger; orders this process's
    │                                    requests (pot.api.Node) and ticks the ledger's clock
    ├─ HTTP API (pot.api.create_app)  -- uvicorn on the same loop; admission, then PBFT
    ├─ Attester (roles.attester)      -- own RPC, confirmation depth, a ChainAttestation per event
    ├─ PotVerify (roles.pot_verify)   -- PoT.Verify outside the state machine -> VerifyResult
    ├─ ArchiveBackfill (roles.backfill) -- after a state transfer: the archive copied from peers,
    │                                    verified against the ledger digest
    └─ Settler (roles.settler)        -- SettlementSignature; executeSigned (or the paper's
                                         propose/confirm/execute) by a rotating submitter

Every decision lives in the ledger: the pieces only feed it requests and act on what it
committed.

``python -m pot aggregator run --config agg0.toml`` (see ``aggregator_config`` for the file,
``local_committee_configs`` for an n-replica committee on one machine).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from typing import Any

import uvicorn
from eth_keys import keys as eth_keys
from eth_utils import to_checksum_address

from pot.api.admission import AdmissionLimits
from pot.api.app import create_app
from pot.api.content import ContentIndex, ContentLimits, ContentService
from pot.chain.clients import Contracts
from pot.chain.deployment import Deployment
from pot.chain.sender import Sender, connect
from pot.ledger import LedgerConfig
from pot.pbft.crypto import public_key
from pot.ports import listen
from pot.protocol import types as T
from pot.protocol.finalize import Params
from pot.roles.aggregator_config import (AggregatorConfig, AggregatorConfigError, committee_keys,
                                         load_aggregator_config, local_committee_configs)
from pot.roles.attester import Attester, event_ref
from pot.roles.backfill import BACKFILL_POLL_S, ArchiveBackfill
from pot.roles.base import quiet_libraries
from pot.roles.binding import bind_data_dir, deployment_identity
from pot.roles.committee import CommitteeNode, CommitteeStateMachine, verify_request
from pot.roles.pot_verify import PotVerify
from pot.roles.scoring import Scorer, ScoringLimits
from pot.roles.settler import Settler
from pot.storage import HttpGatewayStore, MirroredStore, open_store
from pot.storage.mirror import STALL_S

__all__ = ["Aggregator", "AggregatorConfig", "AggregatorConfigError", "CommitteeStateMachine", "committee_keys",
           "event_ref", "load_aggregator_config", "local_committee_configs", "run", "verify_request"]

log = logging.getLogger("pot.aggregator")

#: seconds between two sweeps of the content kept past its retention
CONTENT_SWEEP_S = 60.0


class _ContextFilter(logging.Filter):
    """Puts the replica id and current view on every log line."""

    def __init__(self, agg: Aggregator) -> None:
        super().__init__()
        self.agg = agg

    def filter(self, record: logging.LogRecord) -> bool:
        record.replica = self.agg.cfg.replica_id
        node = self.agg.node
        record.view = node.view if node is not None else "-"
        return True


def setup_logging(cfg: AggregatorConfig, agg: Aggregator) -> None:
    """``time level replica=<id> view=<v> logger message`` on stderr (and the log file): view changes
    are INFO lines of their own, and the view on every line shows who was primary."""
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


class Aggregator:
    """One committee replica. ``await start()``, then ``await stop()``; ``run(config)`` does both
    around SIGINT/SIGTERM."""

    def __init__(self, cfg: AggregatorConfig, *, account=None) -> None:
        self.cfg = cfg
        self.account = account
        self.node: CommitteeNode | None = None
        self.ledger = None
        self.settler: Settler | None = None
        self.scorer: Scorer | None = None
        self.content: ContentService | None = None
        self._tasks: list[asyncio.Task] = []
        self._server: uvicorn.Server | None = None
        self._api_socket: socket.socket | None = None
        self.stats: dict[str, Any] = {"attested": 0, "verify_results": 0, "settlements": []}

    # --- setup -----------------------------------------------------------------------------

    def _chain_setup(self) -> None:
        """Blocking: connect, load the deployment and read the ledger configuration from the chain."""
        cfg = self.cfg
        self.w3 = connect(cfg.rpc_url)
        chain_id = cfg.chain_id if cfg.chain_id is not None else self.w3.eth.chain_id
        self.deployment = Deployment.load(cfg.deployment, chain_id)
        self.contracts = Contracts(self.w3, self.deployment)
        self.sender = Sender(self.w3, self.account)
        ms, ob = self.contracts.multisig, self.contracts.orders
        members = [to_checksum_address(m) for m in ms.members()]
        mine = [eth_keys.PublicKey.from_compressed_bytes(pk).to_checksum_address() for pk in cfg.public_keys]
        seed = self._committee_seed(mine, members, int(ms.epoch()), int(ms.threshold()))
        if public_key(bytes(self.account.key)) != cfg.public_keys[cfg.replica_id]:
            raise AggregatorConfigError(f"this key ({self.account.address}) is not replica "
                                        f"{cfg.replica_id}'s ({mine[cfg.replica_id]})")
        min_stake = {role: int(self.contracts.stakes.call("minStake", role))
                     for role in (T.MINER, T.VALIDATOR, T.VERIFIER, T.AGGREGATOR)}
        params = Params(min_stake=min_stake, treasury=ms.call("treasury"),
                        min_reveal_duration=int(ob.call("minRevealDuration")), **cfg.params)
        # the committee in PBFT order (replica i is the i-th of the committee table), with each
        # member's key and endpoint: what a committee change hands PBFT (docs/COMMITTEE.md)
        self.ledger_config = LedgerConfig(chain_id, self.deployment.order_book, self.deployment.reward_multisig,
                                          tuple(seed["members"]), params, threshold=seed["threshold"],
                                          attested_chain_events=True, epoch=seed["epoch"],
                                          member_keys=tuple(bytes.fromhex(k) for k in seed["keys"]),
                                          member_endpoints=tuple(seed["endpoints"]),
                                          member_api_urls=tuple(seed.get("apiUrls", ())))
        self.members = members
        self.identity = deployment_identity(self.w3, self.deployment)

    @property
    def _seed_path(self):
        return self.cfg.data_dir / "committee.json"

    def _committee_seed(self, mine: list[str], chain_members: list[str], chain_epoch: int,
                        chain_threshold: int) -> dict[str, Any]:
        """The committee this data directory's ledger starts from: the genesis epoch (the
        [committee] table, which must be the chain's committee), or with ``join`` the epoch the
        table names (the chain's, or the next one if the change that adds us has not executed
        yet). Kept in ``committee.json`` at the first start: a restart replays every epoch from
        that one, whatever the chain's committee is by then."""
        cfg = self.cfg
        if self._seed_path.exists():
            return json.loads(self._seed_path.read_text())
        same = sorted(mine) == sorted(chain_members)
        if not cfg.join and not same:
            raise AggregatorConfigError(f"[committee] public_keys are {mine}, RewardMultisig's members are "
                                        f"{chain_members}: the committee table and the deployment disagree "
                                        f"(a new member starts with --join)")
        from pot.protocol.committee import default_threshold

        return {"epoch": chain_epoch if same else chain_epoch + 1, "members": mine,
                "threshold": chain_threshold if same else default_threshold(len(mine)),
                "keys": [k.hex() for k in cfg.public_keys], "endpoints": [f"{h}:{p}" for h, p in cfg.pbft],
                "apiUrls": list(cfg.api_urls)}

    def _fire(self, raw: bytes, what: str, timeout: float = 30.0) -> asyncio.Task:
        return self.node.fire(raw, what, timeout)

    def _api_peers(self, configured: list[str]) -> list[str]:
        """The other members' API URLs as the ledger's committee knows them now (a committee change
        brings new members' URLs), then the configured ones."""
        c = self.ledger.committee()
        me = self.account.address.lower()
        known = [u for m, u in zip(c.members, c.api_urls or ()) if u and m.lower() != me]
        return known + configured

    def _settler(self) -> Settler:
        return Settler(self.cfg, ledger=self.ledger, ledger_config=self.ledger_config, contracts=self.contracts,
                       sender=self.sender, address=self.account.address, key=bytes(self.account.key),
                       fire=self._fire, stats=self.stats)

    async def start(self) -> None:
        cfg = self.cfg
        if self.account is None:
            self.account = await asyncio.to_thread(cfg.load_account)
        address, key = self.account.address, bytes(self.account.key)
        await asyncio.to_thread(self._chain_setup)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        # before the PBFT log is opened: another deployment's log must never be replayed here
        bind_data_dir(cfg.data_dir, self.identity)
        if not self._seed_path.exists():
            c = self.ledger_config
            self._seed_path.write_text(json.dumps({
                "epoch": c.epoch, "members": list(c.committee), "threshold": c.threshold,
                "keys": [k.hex() for k in c.member_keys], "endpoints": list(c.member_endpoints),
                "apiUrls": list(c.member_api_urls)}, indent=1))
        # the API's port first: a port another server holds stops the replica before it joins
        self._api_socket = await listen(cfg.api_host, cfg.api_port, what="this aggregator's API")
        self.node = CommitteeNode(replica_id=cfg.replica_id, pbft=cfg.pbft, public_keys=cfg.public_keys,
                                  pbft_options=cfg.pbft_options, key=key, address=address,
                                  ledger_config=self.ledger_config, ledger_path=cfg.ledger_path,
                                  pbft_dir=cfg.pbft_dir, join=cfg.join)
        await self.node.start()
        self.ledger = self.node.ledger
        domain = self.ledger_config.message_domain
        self.attester = Attester(w3=self.w3, deployment=self.deployment, ledger=self.ledger, domain=domain,
                                 address=address, key=key, fire=self._fire, confirmations=cfg.confirmations,
                                 stats=self.stats, state_path=cfg.data_dir / "follower.json")
        # PoT.Verify scores in a process of its own, started at the first one: PyTorch is never
        # imported here, so neither PBFT nor the API ever waits on it
        # its own store, where participants' uploads land; what it lacks (an upload it missed
        # while down) it reads from its peers, verified
        self.store = open_store(cfg.store_location)
        peers = [u for i, u in enumerate(cfg.api_urls) if i != cfg.replica_id]
        self.scorer = Scorer(MirroredStore(self.store, [HttpGatewayStore(u, timeout=STALL_S) for u in peers]) if peers else self.store,
                             ScoringLimits(nice=10), start=False)
        self.content = ContentService(self.store, self.ledger, ContentLimits.from_dict(cfg.content),
                                      ContentIndex(cfg.data_dir / "content.sqlite"),
                                      upload_dir=cfg.data_dir / "uploads")
        self.verifier = PotVerify(ledger=self.ledger, scorer=self.scorer, domain=domain,
                                  address=address, key=key, fire=self._fire, stats=self.stats)
        self.settler = self._settler()
        # a replica that caught up by state transfer (a member that joined) lacks the archive
        # before that point; it copies it from its peers, verified, beside ordering
        self.backfill = ArchiveBackfill(self.ledger, lambda: self._api_peers(peers))
        self._tasks = [asyncio.create_task(self._loop(name, fn, interval), name=name) for name, fn, interval in (
            ("ticker", self.node.tick, cfg.tick_interval),
            ("chain", self.attester.step, cfg.chain_poll_interval),
            ("verify", self.verifier.step, cfg.verify_poll_interval),
            ("settle", self.settler._settle, cfg.settlement_poll_interval),
            ("content", self._sweep_content, CONTENT_SWEEP_S),
            ("archive", self.backfill.step, BACKFILL_POLL_S))]
        await self._serve_api()

    async def _serve_api(self) -> None:
        app = create_app(self.node, peers=self.cfg.api_urls, rpc_url=self.cfg.rpc_url,
                         limits=AdmissionLimits.from_dict(self.cfg.admission),
                         deployment=self.deployment.to_json(), content=self.content)
        config = uvicorn.Config(app, host=self.cfg.api_host, port=self.cfg.api_port,
                                log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        # the process owns SIGINT/SIGTERM (graceful stop of everything, not just the API)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._tasks.append(asyncio.create_task(self._server.serve(sockets=[self._api_socket]), name="api"))
        for _ in range(200):
            if self._server.started:
                break
            await asyncio.sleep(0.02)
        log.info("api on http://%s:%d", self.cfg.api_host, self.cfg.api_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        elif self._api_socket is not None:
            self._api_socket.close()  # startup failed before the API served on it
        for t in self._tasks:
            if t.get_name() != "api":
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.scorer is not None:
            self.scorer.close()
        if self.content is not None:
            self.content.index.close()
        if self.node is not None:
            status = await self.node.close()
            if status is not None:
                (self.cfg.data_dir / "status.json").write_text(json.dumps(status))
                log.info("stopped")

    async def _sweep_content(self) -> None:
        gone = await asyncio.to_thread(self.content.sweep)
        if gone:
            log.info("content: %d objects past their retention dropped", len(gone))

    async def _loop(self, name: str, fn, interval: float) -> None:
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - an RPC or store hiccup must not end the replica
                log.exception("%s step failed", name)
            await asyncio.sleep(interval)


async def run(cfg: AggregatorConfig) -> int | None:
    """Serve one replica until SIGINT/SIGTERM, then stop cleanly (status.json in data_dir);
    returns the signal that stopped it."""
    agg = Aggregator(cfg)
    setup_logging(cfg, agg)
    stop = asyncio.Event()
    received: list[int] = []
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda s=sig: (received.append(s), stop.set()))
    try:
        await agg.start()
        (cfg.data_dir / "ready").write_text(str(os.getpid()))
        await stop.wait()
    finally:
        (cfg.data_dir / "ready").unlink(missing_ok=True)
        await agg.stop()
    return received[0] if received else None
