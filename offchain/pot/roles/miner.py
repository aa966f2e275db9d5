"""The miner: stake, pick an order, train, commit every better model, reveal the best.

Per order (ARCHITECTURE.md §3): during training ``[t0, trainEnd)`` every improvement on the miner's
holdout is committed at once (``ClaimCommit``, a later one replaces the earlier), because the
miner may be cut off at any moment and only a committed model can win. Training stops
``commit_margin_s`` before trainEnd so the last commit still lands. In the reveal window the
miner uploads the model whose commitment the ledger holds and sends ``ClaimReveal``; the model
stays pinned in its store so validators, verifiers and the client can fetch it.

Every claim is written to ``<state_dir>/miner/<address>/`` before its ClaimCommit is sent (the
model file and ``order-<id>.json`` with its mid and salt), so a miner restarted before the reveal
window still reveals the exact model the ledger holds; the state goes once the order settled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pot.protocol import types as T
from pot.protocol.ids import claim_commitment
from pot.protocol.timeline import Phase, timeline
from pot.roles.base import Worker, key_order, order_key, run_worker
from pot.roles.config import MinerConfig
from pot.roles.console import ProgressBar
from pot.roles.events import Kind
from pot.roles.outcome import miner_outcome
from pot.storage.errors import NotFound

#: how long a stopping miner waits for its training thread to finish the batch under way
STOP_TRAINING_S = 60.0


@dataclass
class Claim:
    """The model whose commitment the ledger holds for one order, and how to open it."""
    model_bytes: bytes
    mid: bytes
    salt: bytes
    holdout_accuracy: float
    revealed: bool = False
    model_cid: str | None = None
    finished: bool = False     # settled, cancelled or missed: nothing more to do, state removed

    def commitment(self, order_id: int, miner: str) -> bytes:
        return claim_commitment(order_id, miner, self.mid, self.salt)

    @property
    def model_file(self) -> str:
        return f"model-{self.mid.hex()}.safetensors"


@dataclass
class Job:
    order: T.Order
    task: asyncio.Task | None = None
    commits: list[asyncio.Future] = field(default_factory=list)


class Miner(Worker):
    role = "miner"
    config_class = MinerConfig
    stake_role = T.MINER

    def __init__(self, config: MinerConfig | None = None, **kw) -> None:
        super().__init__(config, **kw)
        self.claims: dict[int, Claim] = {}
        self.job: Job | None = None
        self.skipped: set[int] = set()
        self._spec_wait: set[int] = set()
        self._commit_lock = asyncio.Lock()
        self.model_dir = Path(os.path.expanduser(self.config.state_dir)) / "miner" / "models"
        #: claims whose ClaimCommit was sent but not answered (a crash, a network error): the
        #: ledger may hold any of them; the reveal opens the one matching its commitment
        self.maybe: dict[int, list[Claim]] = {}
        #: set by close(): training ends at the next batch
        self._stop_training = threading.Event()
        self._load_state()

    # -- state (salts and models must survive a restart until the reveal) --------------------

    def _claim_doc(self, claim: Claim, status: str) -> dict:
        return {"mid": "0x" + claim.mid.hex(), "salt": "0x" + claim.salt.hex(), "status": status,
                "holdoutAccuracy": claim.holdout_accuracy, "modelFile": claim.model_file}

    def _live_files(self) -> set[str]:
        return ({c.model_file for c in self.claims.values() if not c.finished}
                | {c.model_file for cs in self.maybe.values() for c in cs})

    async def _persist(self, order_id: int) -> None:
        """Write the order's claims: the one the ledger holds and any unanswered ones (the model
        files first, then the document naming them), and drop model files no claim names."""
        if not self.state.enabled:
            return
        held = self.claims.get(order_id)
        entries = [(c, "pending") for c in self.maybe.get(order_id, [])]
        if held is not None:
            entries.insert(0, (held, "committed"))
        doc = {"orderId": order_id, "claims": [self._claim_doc(c, st) for c, st in entries],
               "revealed": bool(held and held.revealed), "modelCid": held.model_cid if held else None}
        files = [(c.model_file, c.model_bytes) for c, _ in entries]
        keep = self._live_files()  # taken here, on the loop; the writing goes to a thread

        def write() -> None:
            for name, data in files:
                # named by its sha256 and written atomically: a file under that name holds these bytes
                if not self.state.files(name):
                    self.state.write_file(name, data)
            self.state.save(order_key(order_id), doc)
            self._gc_models(keep)

        await asyncio.to_thread(write)

    def _gc_models(self, keep: set[str]) -> None:
        for name in self.state.files("model-*.safetensors"):
            if name not in keep:
                self.state.remove_file(name)

    def _forget(self, order_id: int) -> None:
        """The order is over for this miner: its salts and models are no longer needed."""
        claim = self.claims.get(order_id)
        if claim is not None:
            claim.finished = True
        self.maybe.pop(order_id, None)
        if self.state.enabled:
            self.state.remove(order_key(order_id))
            self._gc_models(self._live_files())

    def _load_state(self) -> None:
        for key, doc in self.state.load_all().items():
            oid = key_order(key)
            claims: list[tuple[Claim, str]] = []
            for d in doc.get("claims", []):
                try:
                    mid, salt = bytes.fromhex(d["mid"][2:]), bytes.fromhex(d["salt"][2:])
                    model = self.state.read_file(d.get("modelFile") or f"model-{mid.hex()}.safetensors")
                except (KeyError, TypeError, ValueError) as exc:
                    self.emit(Kind.ERROR, oid, error=f"state {key}: bad claim entry: {exc}")
                    continue
                if model is None or hashlib.sha256(model).digest() != mid:
                    self.emit(Kind.ERROR, oid, error=f"state {key}: the model file of 0x{mid.hex()} is "
                                                  "missing or does not hash to its mid")
                    continue
                claims.append((Claim(model, mid, salt, float(d.get("holdoutAccuracy", 0.0))), d.get("status")))
            if oid is None or not claims:
                continue
            committed = [c for c, st in claims if st == "committed"]
            held = committed[-1] if committed else claims[-1][0]
            held.revealed = bool(doc.get("revealed"))
            held.model_cid = doc.get("modelCid")
            self.claims[oid] = held
            self.watch(oid)
            others = [c for c, _ in claims if c is not held]
            if others:
                self.maybe[oid] = others
            self.emit(Kind.RESUMED, oid, mid=held.mid, candidates=len(claims), revealed=held.revealed)

    # -- choosing an order ------------------------------------------------------------------

    async def _load_spec(self, order: T.Order):
        from pot.ml import SpecError, TaskSpec

        raw = await asyncio.to_thread(self.store.get, order.spec_cid, max_size=1 << 20)
        try:
            spec = TaskSpec.from_json(raw)
        except SpecError as exc:
            raise ValueError(f"task spec {order.spec_cid}: {exc}") from None
        if spec.metric != order.model_type_name:
            raise ValueError(f"spec metric {spec.metric!r} differs from the order's modelType "
                             f"{order.model_type_name!r}")
        if self.config.hints:
            # the spec's hints are only hints: a miner may train as it likes, only the score counts
            spec = dataclasses.replace(spec, hints=dataclasses.replace(spec.hints, **self.config.hints))
        return spec

    def _fits(self, spec) -> str | None:
        """Why this hardware passes on the spec (None: it fits)."""
        from pot.ml.archs import param_shapes

        cfg = self.config
        if cfg.archs and spec.model.get("arch") not in cfg.archs:
            return f"architecture {spec.model.get('arch')} not in {cfg.archs}"
        if cfg.max_params is not None:
            n = sum(int(_prod(s)) for s in param_shapes(spec.model).values())
            if n > cfg.max_params:
                return f"{n} parameters > max_params {cfg.max_params}"
        return None

    async def pick_order(self):
        """The best order this miner can take: FetchOrders is sorted by reward per second of
        training; skip what does not fit the hardware or leaves too little time."""
        now = self.clock()
        for view in await self.gateway.fetch_orders():
            o = view.order
            if o.order_id in self.claims or o.order_id in self.skipped:
                continue
            left = o.t0 + o.train_duration - now - self.config.commit_margin_s
            if left < self.config.min_train_s or o.reward_per_second < self.config.min_reward_per_second:
                continue
            try:
                spec = await self._load_spec(o)
                why = self._fits(spec)
            except NotFound as exc:
                # the client publishes the spec once the committee knows its order: look again
                if o.order_id not in self._spec_wait:
                    self._spec_wait.add(o.order_id)
                    self.emit(Kind.UNAVAILABLE, o.order_id, what="task spec", why=str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a bad spec: never retry it
                why = f"{type(exc).__name__}: {exc}"
            if why:
                self.skipped.add(o.order_id)
                self.emit(Kind.ORDER_SKIPPED, o.order_id, why=why)
                continue
            return o, spec
        return None

    # -- training and commits ---------------------------------------------------------------

    async def _train(self, order: T.Order, spec) -> None:
        from pot.ml import Dataset, build_model, load_model, train

        train_bytes = await asyncio.to_thread(self.store.get, spec.train_data_cid)
        data = Dataset.from_bytes(train_bytes)
        if spec.init_weights_cid is not None:
            # fine-tuning: every miner starts from the client's weights, which must be the spec's model
            model = load_model(await asyncio.to_thread(self.store.get, spec.init_weights_cid))
            if model.pot_config != spec.model:
                raise ValueError(f"initial weights {spec.init_weights_cid} are a {model.pot_config} model, "
                                 f"not the spec's {spec.model}")
            model.train()
        else:
            model = build_model(spec.model, seed=spec.init_seed)
        train_end = timeline(order, None).train_end
        # the ledger decides by its clock; translate "trainEnd minus margin" into wall time
        deadline = time.time() + (train_end - self.config.commit_margin_s - self.clock())
        loop = asyncio.get_running_loop()
        job = self.job
        oid = order.order_id

        def on_improve(ckpt) -> None:  # training thread
            if loop.is_closed():  # never create a coroutine nobody will await
                return
            fut = asyncio.run_coroutine_threadsafe(self.commit(oid, ckpt.model_bytes, ckpt.mid,
                                                               ckpt.holdout_accuracy), loop)
            if job is not None:
                job.commits.append(asyncio.wrap_future(fut, loop=loop))

        device = None if self.config.device == "auto" else self.config.device
        seed = self.config.train_seed if self.config.train_seed is not None else int.from_bytes(os.urandom(4), "big")
        self.emit(Kind.TRAINING, oid, arch=spec.model.get("arch"), samples=len(data.y),
                  seconds=round(deadline - time.time(), 1))
        progress = ProgressBar if self.config.progress else False
        result = await _in_daemon_thread(lambda: train(model, data, spec.hints, device=device, deadline=deadline,
                                                       on_improve=on_improve, progress=progress,
                                                       seed=seed, metric=spec.metric, stop=self._stop_training,
                                                       commit_interval_s=self.config.commit_interval_s))
        if job is not None and job.commits:
            await asyncio.gather(*job.commits, return_exceptions=True)
        best = result.best
        self.emit(Kind.TRAINED, oid, epochs=result.epochs, stopped_by=result.stopped_by, device=result.device,
                  holdout_accuracy=None if best is None else round(best.holdout_accuracy, 4),
                  holdout_score=None if best is None else best.holdout_score)

    async def commit(self, order_id: int, model_bytes: bytes, mid: bytes, holdout_accuracy: float = 0.0) -> T.Result:
        """ClaimCommit for a better model; the claim is kept only once the ledger took it."""
        async with self._commit_lock:  # commits reach the ledger in the order they were made
            salt = os.urandom(32)
            claim = Claim(model_bytes, mid, salt, holdout_accuracy)
            # on disk before it is sent: a crash between the two must not lose the salt or the model
            self.maybe.setdefault(order_id, []).append(claim)
            await self._persist(order_id)
            msg = T.ClaimCommit(order_id, self.address, claim.commitment(order_id, self.address))
            # an exception leaves it in ``maybe``: unanswered, the ledger may or may not hold it
            res = await self.send(Kind.COMMIT, msg, order_id, mid=mid, holdout_accuracy=round(holdout_accuracy, 4))
            if res.ok:
                self.watch(order_id)
                self.claims[order_id] = claim
                self.maybe.pop(order_id, None)  # the ledger replaced whatever it held
            else:
                pending = [c for c in self.maybe.get(order_id, []) if c is not claim]
                if pending:
                    self.maybe[order_id] = pending
                else:
                    self.maybe.pop(order_id, None)
            await self._persist(order_id)
            return res

    # -- reveal -----------------------------------------------------------------------------

    def _held(self, order_id: int, cyc) -> Claim:
        """The claim whose commitment the ledger holds for this miner (after a crash between
        saving a claim and hearing back, it may be an unanswered one)."""
        claim = self.claims[order_id]
        candidates = [claim, *self.maybe.get(order_id, [])]
        if len(candidates) > 1 and cyc is not None:
            held = next((c["commitment"] for c in cyc.raw.get("claims", [])
                         if str(c.get("miner", "")).lower() == self.address.lower()), None)
            match = next((c for c in candidates
                          if held is not None and "0x" + c.commitment(order_id, self.address).hex() == held), None)
            if match is not None and match is not claim:
                match.revealed, match.model_cid = claim.revealed, claim.model_cid
                self.claims[order_id] = claim = match
            if match is not None:
                self.maybe.pop(order_id, None)
        return claim

    async def reveal(self, order_id: int, cyc=None) -> T.Result | None:
        """Upload the committed model, keep it pinned, and send ClaimReveal."""
        claim = self._held(order_id, cyc)
        cid = await asyncio.to_thread(self.store.add_bytes, claim.model_bytes)
        await asyncio.to_thread(self.store.pin, cid)
        # before the reveal: a model the validators cannot fetch would be scored by nobody
        await self.publish(order_id, cid, "model", claim.model_bytes)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        (self.model_dir / f"order-{order_id}-{claim.mid.hex()[:16]}.safetensors").write_bytes(claim.model_bytes)
        claim.model_cid = cid
        res = await self.send(Kind.REVEAL, T.ClaimReveal(order_id, self.address, claim.mid, claim.salt, cid),
                              order_id, mid=claim.mid, cid=cid)
        claim.revealed = res.ok or res.reason_enum in (T.Reason.DUPLICATE, T.Reason.REPLAY)
        if claim.revealed:
            await self._persist(order_id)
        return res

    # -- the tick ---------------------------------------------------------------------------

    async def _step(self) -> None:
        if not await self.ensure_staked():
            return
        for oid, claim in list(self.claims.items()):
            if claim.finished:
                continue
            cyc = await self.gateway.cycle(oid)
            if cyc is None:
                continue
            if cyc.cancelled or cyc.status not in ("open", "verifying", "settling"):
                self._forget(oid)  # settled (or cancelled): the salts and models are spent
                continue
            if claim.revealed:
                continue
            ph = self.track_phase(cyc.order, cyc.t3)
            if ph is Phase.MODEL_REVEAL:
                await self.reveal(oid, cyc)
            elif ph not in (Phase.TRAINING, Phase.NOT_STARTED):
                claim.revealed = True  # too late: nothing to do any more
                self.emit(Kind.MISSED, oid, what="reveal", phase=ph.value)
                self._forget(oid)
        if self.job is not None:
            if not self.job.task.done():
                return
            exc = self.job.task.exception()
            if exc is not None:
                self.emit(Kind.ERROR, self.job.order.order_id, error=f"training failed: {type(exc).__name__}: {exc}")
                self.skipped.add(self.job.order.order_id)
            self.job = None
        picked = await self.pick_order()
        if picked is None:
            return
        order, spec = picked
        self.emit(Kind.ORDER_PICKED, order.order_id, reward=order.reward, train_duration=order.train_duration,
                  reward_per_second=round(order.reward_per_second))
        self.job = Job(order)
        self.job.task = asyncio.get_running_loop().create_task(self._train(order, spec))

    async def wait_training(self) -> None:
        """Until the current training job (and its commits) finished: for tests and the demo."""
        if self.job is not None:
            await asyncio.gather(self.job.task, return_exceptions=True)

    def outcome_of(self, order_id: int, outcome: dict) -> list:
        return miner_outcome(outcome, self.address)

    async def close(self) -> None:
        """Stop training at the next batch and wait for it (and its last commits): a thread left
        inside PyTorch when the interpreter exits aborts the process ("terminate called without
        an active exception"), and a commit scheduled on a closed loop is never sent."""
        self._stop_training.set()
        if self.job is not None and not self.job.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.job.task), STOP_TRAINING_S)
            except TimeoutError:
                self.emit(Kind.ERROR, self.job.order.order_id,
                          error=f"training did not stop within {STOP_TRAINING_S:g} s; leaving it")
                self.job.task.cancel()
            except Exception:  # noqa: BLE001 - reported by the step that collects the job
                pass
        await super().close()


async def _in_daemon_thread(fn):
    """Run ``fn`` in a daemon thread: a stopping miner asks training to end (``stop``) and waits a
    bounded time for it; asyncio.to_thread's pool would join it on exit however long it takes."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def target() -> None:
        try:
            res = fn()
            deliver = lambda: fut.done() or fut.set_result(res)  # noqa: E731
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            deliver = lambda e=exc: fut.done() or fut.set_exception(e)  # noqa: E731
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:
            pass  # the worker stopped and its loop closed while this thread trained

    threading.Thread(target=target, name="pot-train", daemon=True).start()
    return await fut


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


async def run(config: MinerConfig) -> int | None:
    """``pot miner run``: the miner against the committee's API, until SIGINT/SIGTERM."""
    return await run_worker(Miner, config)
