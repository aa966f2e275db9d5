"""What every worker shares: structured events and logs, the tick loop, graceful shutdown, the
clock, chain access and stake registration.

A worker is driven by ``step()``: one look at the network and whatever is due now (a commit,
a reveal, a challenge). ``run_forever`` calls it every ``poll_interval`` seconds until asked to
stop; tests and the demo call it themselves, tick by tick, and watch the events.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from pot.api.client import MAX_RETRY_AFTER_S, RateLimited, publish_for_order
from pot.protocol import types as T
from pot.protocol.eip712 import Domain
from pot.protocol.timeline import Phase, phase
from pot.roles.events import Event, EventCallback, Kind, describe
from pot.roles.gateway import Gateway

log = logging.getLogger("pot.roles")

#: events an operator should not miss (yellow on a terminal)
WARN_KINDS = frozenset({Kind.REJECTED, Kind.RATE_LIMITED, Kind.MISSED, Kind.ABSTAIN, Kind.UNAVAILABLE, Kind.SLASHED,
                        Kind.CHALLENGE_REJECTED})
#: how a terminal shows the outcome lines
STYLE = {Kind.WON: "bold green", Kind.PAID: "green", Kind.CHALLENGE_UPHELD: "bold green", Kind.LOST: "bold",
         Kind.SETTLED: "bold", Kind.SLASHED: "bold red", Kind.CHALLENGE_REJECTED: "bold red"}

Clock = Callable[[], int]


def system_clock() -> int:
    return int(time.time())


class OffsetClock:
    """Wall time plus an offset: a devnet or test moves it forward together with Anvil's
    ``evm_increaseTime``, so ledger time and block time agree without waiting."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def __call__(self) -> int:
        return int(time.time()) + self.offset

    def advance(self, seconds: int) -> None:
        self.offset += int(seconds)


class ChainAccess:
    """One account's view of a deployment: typed contract clients and its transaction sender.
    web3 blocks, so every use from a worker goes through ``call`` (a thread)."""

    def __init__(self, w3, deployment, account: LocalAccount) -> None:
        from pot.chain.clients import Contracts
        from pot.chain.sender import Sender

        self.w3 = w3
        self.deployment = deployment
        self.contracts = Contracts(w3, deployment)
        self.sender = Sender(w3, account)

    @classmethod
    def for_config(cls, config: Any, account: LocalAccount) -> ChainAccess:
        """The chain and deployment a config names (``load_deployment``)."""
        from pot.chain.sender import connect

        w3 = connect(config.rpc_url)
        return cls(w3, load_deployment(config, w3), account)

    @property
    def domain(self) -> Domain:
        """The EIP-712 domain of participant messages on this deployment."""
        return Domain.messages(self.deployment.chain_id, self.deployment.order_book)

    async def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kw)


def load_deployment(config: Any, w3=None):
    """The deployment a config names: its ``deployment`` file (the entry of ``chain_id``, else of
    the node's chain), or, without one, the committee's ``GET /v1/deployment`` read from f+1
    replicas alike, so that the network's URLs are all a participant needs."""
    from pot.chain.deployment import Deployment

    chain_id = config.chain_id if config.chain_id is not None else (w3.eth.chain_id if w3 is not None else None)
    if config.deployment:
        return Deployment.load(os.path.expanduser(config.deployment), chain_id)
    from pot.api.client import read_quorum_sync

    body = read_quorum_sync(config.api_urls, "/v1/deployment", f=config.f)
    if body is None:
        raise ValueError("the committee serves no deployment: give the deployment file (--deployment)")
    dep = Deployment.from_json(json.loads(body))
    if chain_id is not None and dep.chain_id != chain_id:
        raise ValueError(f"the committee's deployment is on chain {dep.chain_id}, the RPC node's chain is {chain_id}: "
                         "--rpc-url and --api name different networks")
    return dep


def worker_state_path(state_dir: str | os.PathLike, role: str, domain: Domain, address: str) -> Path:
    """Where a worker keeps what must survive a restart. Keyed by the deployment (chain id and
    OrderBook) as well as the account, because order ids restart at 1 on every deployment: the same
    key used on a devnet and on BSC testnet must never mix their salts."""
    deployment = f"{domain.chain_id}-{domain.verifying_contract.lower()[2:10]}"
    return Path(os.path.expanduser(str(state_dir))) / role / deployment / address


class StateDir:
    """A worker's secrets and progress on disk, so that a restart does not lose what it committed
    to: one JSON document per key (``order-<id>``) and opaque files beside them (model bytes).

    Every write goes to ``<name>.tmp`` (mode 0600: salts are secret until revealed), is fsynced,
    then ``os.replace``d over the old file, and the directory is fsynced: a crash leaves either the
    previous document or the new one. A document carries a sequence number and the sha256 of its
    content, so a half-written file (a ``.tmp`` left by a crash, a truncated file) is recognised,
    ignored with a warning, and the last complete state wins (a complete ``.tmp`` newer than the
    document, written just before the crash, is promoted).

    ``path=None``: nothing is persisted (a worker without a state directory keeps state in memory).
    """

    FORMAT = 1

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = None if path is None else Path(path)
        self._seq: dict[str, int] = {}

    @classmethod
    def for_worker(cls, config: Any, role: str, address: str, domain: Domain) -> StateDir:
        """``<config.state_dir>/<role>/<deployment>/<address>``, or an in-memory one without a state_dir."""
        state_dir = getattr(config, "state_dir", None)
        if not isinstance(state_dir, (str, os.PathLike)) or not str(state_dir):
            return cls(None)
        return cls(worker_state_path(state_dir, role, domain, address))

    @property
    def enabled(self) -> bool:
        return self.path is not None

    # -- files ------------------------------------------------------------------------------

    def _write_atomic(self, name: str, data: bytes) -> Path:
        assert self.path is not None
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self.path / name
        tmp = self.path / (name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an older tmp may have had other bits
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.path)
        return final

    def write_file(self, name: str, data: bytes) -> Path | None:
        """Store opaque bytes (atomically, 0600); None when not persisting."""
        if self.path is None:
            return None
        return self._write_atomic(name, data)

    def read_file(self, name: str) -> bytes | None:
        if self.path is None:
            return None
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def remove_file(self, name: str) -> None:
        if self.path is not None:
            (self.path / name).unlink(missing_ok=True)
            (self.path / (name + ".tmp")).unlink(missing_ok=True)

    def files(self, pattern: str) -> list[str]:
        if self.path is None or not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.glob(pattern) if not p.name.endswith(".tmp"))

    # -- documents --------------------------------------------------------------------------

    @staticmethod
    def _digest(data: Any) -> str:
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def save(self, key: str, data: dict[str, Any]) -> None:
        if self.path is None:
            return
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        doc = {"format": self.FORMAT, "seq": seq, "sha256": self._digest(data), "data": data}
        self._write_atomic(key + ".json", json.dumps(doc, indent=1, sort_keys=True).encode())

    def _parse(self, file: Path) -> tuple[int, dict[str, Any]] | str:
        """(seq, data) of a complete document, else why not."""
        try:
            doc = json.loads(file.read_bytes())
        except (OSError, ValueError) as exc:
            return f"unreadable ({type(exc).__name__}: {exc})"
        if not isinstance(doc, dict) or doc.get("format") != self.FORMAT or not isinstance(doc.get("data"), dict):
            return "not a state document"
        if doc.get("sha256") != self._digest(doc["data"]):
            return "checksum mismatch"
        return int(doc.get("seq", 0)), doc["data"]

    def load(self, key: str) -> dict[str, Any] | None:
        """The last complete document under ``key`` (None: there is none)."""
        if self.path is None:
            return None
        best: tuple[int, dict[str, Any], Path] | None = None
        for file in (self.path / (key + ".json"), self.path / (key + ".json.tmp")):
            if not file.exists():
                continue
            got = self._parse(file)
            if isinstance(got, str):
                log.warning("state %s: ignoring %s: %s (a write cut short?)", self.path, file.name, got)
                continue
            if best is None or got[0] > best[0]:
                best = (got[0], got[1], file)
        tmp = self.path / (key + ".json.tmp")
        if best is not None and best[2] == tmp:
            log.warning("state %s: %s is complete and newer than %s.json: promoting it", self.path,
                        tmp.name, key)
            os.replace(tmp, self.path / (key + ".json"))
            _fsync_dir(self.path)
        else:
            tmp.unlink(missing_ok=True)
        if best is None:
            return None
        self._seq[key] = max(self._seq.get(key, 0), best[0])
        return best[1]

    def keys(self, prefix: str = "") -> list[str]:
        """Keys with a document (complete or not) under ``prefix``."""
        if self.path is None or not self.path.is_dir():
            return []
        out = set()
        for p in self.path.iterdir():
            for suffix in (".json", ".json.tmp"):
                if p.name.startswith(prefix) and p.name.endswith(suffix):
                    out.add(p.name[: -len(suffix)])
        return sorted(out)

    def load_all(self, prefix: str = "order-") -> dict[str, dict[str, Any]]:
        """Every complete document under ``prefix``; broken ones are skipped with a warning."""
        out = {}
        for key in self.keys(prefix):
            try:
                data = self.load(key)
            except OSError as exc:
                log.warning("state %s: cannot load %s: %s", self.path, key, exc)
                continue
            if data is not None:
                out[key] = data
        return out

    def remove(self, key: str) -> None:
        if self.path is None:
            return
        (self.path / (key + ".json")).unlink(missing_ok=True)
        (self.path / (key + ".json.tmp")).unlink(missing_ok=True)
        self._seq.pop(key, None)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def order_key(order_id: int) -> str:
    return f"order-{order_id}"


def key_order(key: str) -> int | None:
    try:
        return int(key.split("-", 1)[1])
    except (IndexError, ValueError):
        return None


#: Refusals that waiting a few seconds does not change (the signer's stake, a closed or unknown
#: order, a message the ledger can never take): the same message is not sent again for a while,
#: 5 s doubling to a minute. A slashed validator used to resend its reveal every second.
HOLD_OFF_REASONS = frozenset({T.Reason.NOT_ENOUGH_STAKE, T.Reason.NOT_AUTHORIZED, T.Reason.BAD_SIGNATURE,
                              T.Reason.ORDER_CLOSED, T.Reason.UNKNOWN_ORDER, T.Reason.INVALID,
                              T.Reason.MALFORMED, T.Reason.TOO_LARGE})
HOLD_FIRST_S, HOLD_MAX_S = 5.0, 60.0
#: the longest a worker honours a replica's Retry-After
MAX_QUIET_S = MAX_RETRY_AFTER_S
#: how long ``publish`` waits for the committee's ledger to learn a fresh order
PUBLISH_WAIT_S = 90.0


class Worker:
    """Base of the role workers. Subclasses implement ``_step``."""

    role = "worker"
    #: the StakeRegistry role bit this worker needs (0: none)
    stake_role = 0

    #: the worker's config dataclass (pot.roles.config); its poll_interval and stake are the defaults
    config_class: type | None = None

    def __init__(self, config: Any = None, *, account: LocalAccount, gateway: Gateway, domain: Domain,
                 store=None, chain: ChainAccess | None = None, clock: Clock | None = None,
                 on_event: EventCallback | None = None, poll_interval: float | None = None,
                 stake: int | None = None) -> None:
        if config is None and self.config_class is not None:
            config = self.config_class()
        self.config = config
        if poll_interval is None:
            poll_interval = getattr(config, "poll_interval", 1.0)
        if stake is None:
            stake = getattr(config, "stake", 0)
        self.account = account
        self.key = bytes(account.key)
        self.address = account.address
        self.gateway = gateway
        self.domain = domain
        self.store = store
        self.chain = chain
        self.clock: Clock = clock or system_clock
        self.on_event = on_event
        self.poll_interval = poll_interval
        self.stake = stake
        self.events: list[Event] = []
        self._new: list[Event] = []
        self._phases: dict[int, Phase] = {}
        self._staked = False
        #: message digest -> (not before, refusals so far, the refusal): see HOLD_OFF_REASONS
        self._holds: dict[bytes, tuple[float, int, T.Result]] = {}
        self._quiet_until = 0.0
        #: secrets and progress that must survive a restart (in memory only without a state_dir)
        self.state = StateDir.for_worker(config, self.role, self.address, domain)
        #: orders whose outcome this worker reports once settled (``watch``)
        self._watching: set[int] = set()
        #: set with the second stop signal: the step under way is cancelled rather than finished
        self.hurry = asyncio.Event()

    # -- events ---------------------------------------------------------------------------------

    def emit(self, kind: Kind, order_id: int | None = None, *, exc: BaseException | None = None,
             **data: Any) -> Event:
        ev = Event(self.role, self.address, Kind(kind), order_id, self.clock(), data, exc)
        self.events.append(ev)
        self._new.append(ev)
        extra = {"role": self.role, "node": self.address, "order_id": order_id, "event": kind}
        words = describe(ev)
        if words is None and ev.kind is not Kind.PHASE:
            words = str(ev)
        if words is not None:  # what the operator reads; the fields stay in the DEBUG line below
            level = (logging.ERROR if kind is Kind.ERROR else logging.WARNING if kind in WARN_KINDS
                     else logging.INFO)
            log.log(level, "%s", words, extra={**extra, "style": STYLE.get(Kind(kind))})
        log.log(logging.DEBUG, "%s", ev, extra=extra)  # every field, for a DEBUG log
        if self.on_event is not None:
            res = self.on_event(ev)
            if inspect.isawaitable(res):
                asyncio.ensure_future(res)
        return ev

    # -- outcomes ---------------------------------------------------------------------------------

    def watch(self, order_id: int) -> None:
        """Report what order ``order_id`` meant for this worker once its settlement executed."""
        self._watching.add(order_id)

    def outcome_of(self, order_id: int, outcome: dict[str, Any]) -> list[tuple[Kind, dict[str, Any]]]:
        """The role's reading of a final outcome (``pot.roles.outcome``); none by default."""
        return []

    async def report_outcomes(self) -> None:
        """For each watched order whose settlement executed: emit what it meant for this worker,
        once. A failed read is tried again at the next step."""
        from pot.roles.outcome import final

        for oid in sorted(self._watching):
            try:
                oc = await self.gateway.outcome(oid)
            except Exception as exc:  # noqa: BLE001 - the committee may be between heights: next step
                log.debug("outcome of order %d not read: %s", oid, exc)
                continue
            if not final(oc):
                continue
            self._watching.discard(oid)
            for kind, data in self.outcome_of(oid, oc):
                self.emit(kind, oid, **data)

    def track_phase(self, order: T.Order, t3: int | None) -> Phase:
        """The order's phase by this worker's clock; emits ``phase`` when it changed."""
        ph = phase(order, t3, self.clock())
        if self._phases.get(order.order_id) is not ph:
            self._phases[order.order_id] = ph
            self.emit(Kind.PHASE, order.order_id, phase=ph.value)
        return ph

    async def send(self, kind: Kind, message: T.Message, order_id: int, **data: Any) -> T.Result:
        """Sign, submit, and report the ledger's answer as ``kind`` or ``rejected``.

        A message refused for a reason that time does not change (``HOLD_OFF_REASONS``) is not sent
        again until its hold expires: the last refusal is returned instead, without an event.
        ``RateLimited`` when the committee asked this worker to slow down (nothing is sent until
        its Retry-After has passed)."""
        now = time.monotonic()
        if now < self._quiet_until:
            raise RateLimited("committee", "backing off after HTTP 429", self._quiet_until - now)
        signed = message.sign(self.domain, self.key)
        ident = message.digest(self.domain)
        hold = self._holds.get(ident)
        if hold is not None and now < hold[0]:
            return hold[2]
        try:
            result = await self.gateway.submit(signed)
        except RateLimited as exc:
            self._quiet_until = time.monotonic() + min(exc.retry_after, MAX_QUIET_S)
            self.emit(Kind.RATE_LIMITED, order_id, exc=exc, what=kind, retry_after=exc.retry_after)
            raise
        if result.reason_enum is T.Reason.REPLAY:
            # the committee's quorum answered "already accepted" (a copy reached the ledger first):
            # the message is in the ledger, which is all a sender asks
            result = T.Result.accepted(result.text)
        if result.ok:
            self._holds.pop(ident, None)
            self.emit(kind, order_id, **data)
            return result
        self.emit(Kind.REJECTED, order_id, what=kind, message=type(message).__name__,
                  reason=result.reason_enum.name, text=result.text)
        if result.reason_enum in HOLD_OFF_REASONS:
            tries = 1 if hold is None else hold[1] + 1
            self._holds[ident] = (time.monotonic() + min(HOLD_MAX_S, HOLD_FIRST_S * 2 ** (tries - 1)), tries, result)
            if len(self._holds) > 4096:
                self._holds = {k: v for k, v in self._holds.items() if v[0] > now}
        return result

    # -- content --------------------------------------------------------------------------------

    async def publish(self, order_id: int, cid: str, what: str, data: bytes | None = None) -> int:
        """Upload content order ``order_id`` references (a model, a spec, a data set) to the committee,
        so that participants on other machines can fetch it; returns how many replicas hold it.
        An order the ledger does not know yet (it enters a few blocks after placeOrder) is waited
        for up to ``PUBLISH_WAIT_S``; any other refusal raises ``UploadRefused``."""
        if data is None:
            data = await asyncio.to_thread(self.store.get, cid)
        held = await publish_for_order(self.gateway.publish, self.address, order_id, cid, data, self.domain,
                                       self.key, wait_s=PUBLISH_WAIT_S)
        if held:
            self.emit(Kind.PUBLISHED, order_id, what=what, cid=cid, size=len(data), replicas=held)
        return held

    # -- stake ----------------------------------------------------------------------------------

    async def ensure_staked(self) -> bool:
        """Register the role on-chain if needed; True once the ledger knows the stake."""
        if self._staked or not self.stake_role:
            return True
        if self.chain is not None:
            c = self.chain.contracts
            if not await self.chain.call(c.stakes.has_roles, self.address, self.stake_role):
                info = await self.chain.call(c.stakes.staker, self.address)
                need = await self.chain.call(c.stakes.required_stake, info["roles"] | self.stake_role)
                amount = max(self.stake, need - info["stake"], 0)
                if amount:
                    await self.chain.call(c.token.ensure_allowance, self.chain.sender, c.stakes.address, amount)
                await self.chain.call(c.stakes.register, self.chain.sender, self.stake_role, amount)
                self.emit(Kind.STAKED, None, role=self.stake_role, amount=amount)
        node = await self.gateway.node_info(self.address)
        self._staked = bool(node and node["roles"] & self.stake_role)
        return self._staked

    # -- driving --------------------------------------------------------------------------------

    async def step(self) -> list[Event]:
        """Do whatever is due now; returns the events of this step."""
        self._new = []
        await self._step()
        if self._watching:
            await self.report_outcomes()
        return list(self._new)

    async def _step(self) -> None:
        raise NotImplementedError

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Step every ``poll_interval`` seconds until ``stop`` is set; a failed step is logged and
        retried (the network, the chain and storage all have bad moments). A step under way when
        ``stop`` is set finishes, unless ``hurry`` is set too (a second Ctrl-C): then it is cancelled,
        which loses nothing, because what must survive is on disk before it is sent."""
        self.emit(Kind.STARTED)
        while not stop.is_set():
            step = asyncio.ensure_future(self.step())
            hurry = asyncio.ensure_future(self.hurry.wait())
            try:
                await asyncio.wait({step, hurry}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                step.cancel()
                raise
            finally:
                hurry.cancel()
            if not step.done() or step.cancelled():
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
                break
            exc = step.exception()
            if isinstance(exc, Exception):  # a worker outlives one bad tick
                self.emit(Kind.ERROR, None, exc=exc, error=f"{type(exc).__name__}: {exc}")
            elif exc is not None:
                raise exc
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(self.poll_interval,
                                                                self._quiet_until - time.monotonic()))
            except TimeoutError:
                pass
        await self.close()
        self.emit(Kind.STOPPED)

    async def close(self) -> None:
        await self.gateway.aclose()


def build_worker(cls: type[Worker], config: Any, account: LocalAccount | None = None) -> Worker:
    """A worker wired from its config: key (``account``, else keystore or env), chain, content store,
    committee API."""
    from pot.roles.gateway import HttpGateway
    from pot.storage import open_store

    from pot.storage import follow_mirrors

    account = account or config.load_account()
    chain = ChainAccess.for_config(config, account)
    # what this machine lacks it reads from the committee, which keeps what orders reference
    store = open_store(config.store, mirrors=config.api_urls)
    # the committee it learned (docs/COMMITTEE.md) survives a restart: its configured api_urls
    # may all have left by then
    state_dir = getattr(config, "state_dir", None)
    state_file = (worker_state_path(state_dir, cls.role, chain.domain, account.address) / "committee.json"
                  if isinstance(state_dir, (str, os.PathLike)) and str(state_dir) else None)
    gateway = HttpGateway.from_urls(config.api_urls, f=config.f, state_file=state_file,
                                    on_switch=lambda urls: follow_mirrors(store, urls))
    follow_mirrors(store, gateway.api.urls)
    return cls(config, account=account, gateway=gateway, domain=chain.domain, store=store, chain=chain)


async def run_worker(cls: type[Worker], config: Any) -> int | None:
    """``pot <role> run``: the worker against the committee's API, until SIGINT/SIGTERM; returns
    the signal that stopped it."""
    setup_logging(config.log_level)
    return await serve(await asyncio.to_thread(build_worker, cls, config))


async def serve(worker: Worker, stop: asyncio.Event | None = None) -> int | None:
    """Run ``worker`` until SIGINT/SIGTERM (or ``stop``): the current step finishes, then it closes.
    Returns the signal that stopped it (None: ``stop`` was set)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    received: list[int] = []

    def stopping(sig: int) -> None:
        if received:  # a second Ctrl-C: do not wait for the step under way
            worker.hurry.set()
        else:
            log.warning("stopping: finishing the current step and saving state (Ctrl-C again: at once)")
        received.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stopping, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
    try:
        await worker.run_forever(stop)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return received[0] if received else None


def setup_logging(level: str = "INFO") -> None:
    """Every log line and progress bar through one console (``pot.roles.console``)."""
    from pot.roles.console import setup_logging as console_logging

    console_logging(level)
    quiet_libraries()


#: Libraries that log every request at INFO; a worker polls every second, so their lines would bury ours.
NOISY_LOGGERS = ("uvicorn.access", "web3", "urllib3", "httpx", "httpcore")


def quiet_libraries() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
