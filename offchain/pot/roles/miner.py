"""The miner: stake, pick an order, train, commit every better model, reveal the best.

Per order (DESIGN.md §3): during training ``[t0, trainEnd)`` every improvement on the miner's
holdout is committed at once (``ClaimCommit``, a later one replaces the earlier), because the
miner may be cut off at any moment and only a committed model can win. Training stops
``commit_margin_s`` before trainEnd so the last commit still lands. In the reveal window the
miner uploads the model whose commitment the ledger holds and sends ``ClaimReveal``; the model
stays pinned in its store so validators, verifiers and the client can fetch it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pot.protocol import types as T
from pot.protocol.ids import claim_commitment
from pot.protocol.timeline import Phase, timeline
from pot.roles.base import Worker, run_worker
from pot.roles.config import MinerConfig


@dataclass
class Claim:
    """The model whose commitment the ledger holds for one order, and how to open it."""
    model_bytes: bytes
    mid: bytes
    salt: bytes
    holdout_accuracy: float
    revealed: bool = False
    model_cid: str | None = None


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
        self._commit_lock = asyncio.Lock()
        self.model_dir = Path(os.path.expanduser(self.config.state_dir)) / "miner" / "models"

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
            except Exception as exc:  # noqa: BLE001 - a bad spec or missing file: never retry it
                why = f"{type(exc).__name__}: {exc}"
            if why:
                self.skipped.add(o.order_id)
                self.emit("order-skipped", o.order_id, why=why)
                continue
            return o, spec
        return None

    # -- training and commits ---------------------------------------------------------------

    async def _train(self, order: T.Order, spec) -> None:
        from pot.ml import Dataset, build_model, load_model, train

        train_bytes = await asyncio.to_thread(self.store.get, spec.train_data_cid)
        data = Dataset.from_bytes(train_bytes)
        if spec.init_weights_cid is not None:
            model = load_model(await asyncio.to_thread(self.store.get, spec.init_weights_cid))
        else:
            model = build_model(spec.model, seed=spec.init_seed)
        train_end = timeline(order, None).train_end
        # the ledger decides by its clock; translate "trainEnd minus margin" into wall time
        deadline = time.time() + (train_end - self.config.commit_margin_s - self.clock())
        loop = asyncio.get_running_loop()
        job = self.job
        oid = order.order_id

        def on_improve(ckpt) -> None:  # training thread
            fut = asyncio.run_coroutine_threadsafe(self.commit(oid, ckpt.model_bytes, ckpt.mid,
                                                               ckpt.holdout_accuracy), loop)
            if job is not None:
                job.commits.append(asyncio.wrap_future(fut, loop=loop))

        device = None if self.config.device == "auto" else self.config.device
        seed = self.config.train_seed if self.config.train_seed is not None else int.from_bytes(os.urandom(4), "big")
        self.emit("training", oid, arch=spec.model.get("arch"), samples=len(data.y),
                  seconds=round(deadline - time.time(), 1))
        result = await _in_daemon_thread(lambda: train(model, data, spec.hints, device=device, deadline=deadline,
                                                       on_improve=on_improve, progress=self.config.progress,
                                                       seed=seed,
                                                       commit_interval_s=self.config.commit_interval_s))
        if job is not None and job.commits:
            await asyncio.gather(*job.commits, return_exceptions=True)
        best = result.best
        self.emit("trained", oid, epochs=result.epochs, stopped_by=result.stopped_by, device=result.device,
                  holdout_accuracy=None if best is None else round(best.holdout_accuracy, 4))

    async def commit(self, order_id: int, model_bytes: bytes, mid: bytes, holdout_accuracy: float = 0.0) -> T.Result:
        """ClaimCommit for a better model; the claim is kept only once the ledger took it."""
        async with self._commit_lock:  # commits reach the ledger in the order they were made
            salt = os.urandom(32)
            msg = T.ClaimCommit(order_id, self.address, claim_commitment(order_id, self.address, mid, salt))
            res = await self.send("commit", msg, order_id, mid=mid, holdout_accuracy=round(holdout_accuracy, 4))
            if res.ok:
                self.claims[order_id] = Claim(model_bytes, mid, salt, holdout_accuracy)
            return res

    # -- reveal -----------------------------------------------------------------------------

    async def reveal(self, order_id: int) -> T.Result | None:
        """Upload the committed model, keep it pinned, and send ClaimReveal."""
        claim = self.claims[order_id]
        cid = await asyncio.to_thread(self.store.add_bytes, claim.model_bytes)
        await asyncio.to_thread(self.store.pin, cid)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        (self.model_dir / f"order-{order_id}-{claim.mid.hex()[:16]}.safetensors").write_bytes(claim.model_bytes)
        claim.model_cid = cid
        res = await self.send("reveal", T.ClaimReveal(order_id, self.address, claim.mid, claim.salt, cid),
                              order_id, mid=claim.mid, cid=cid)
        claim.revealed = res.ok or res.reason_enum in (T.Reason.DUPLICATE, T.Reason.REPLAY)
        return res

    # -- the tick ---------------------------------------------------------------------------

    async def _step(self) -> None:
        if not await self.ensure_staked():
            return
        for oid, claim in list(self.claims.items()):
            if claim.revealed:
                continue
            cyc = await self.gateway.cycle(oid)
            if cyc is None:
                continue
            ph = self.track_phase(cyc.order, cyc.t3)
            if ph is Phase.MODEL_REVEAL:
                await self.reveal(oid)
            elif ph not in (Phase.TRAINING, Phase.NOT_STARTED):
                claim.revealed = True  # too late: nothing to do any more
                self.emit("missed", oid, what="reveal", phase=ph.value)
        if self.job is not None:
            if not self.job.task.done():
                return
            exc = self.job.task.exception()
            if exc is not None:
                self.emit("error", self.job.order.order_id, error=f"training failed: {type(exc).__name__}: {exc}")
                self.skipped.add(self.job.order.order_id)
            self.job = None
        picked = await self.pick_order()
        if picked is None:
            return
        order, spec = picked
        self.emit("order-picked", order.order_id, reward=order.reward, train_duration=order.train_duration,
                  reward_per_second=round(order.reward_per_second))
        self.job = Job(order)
        self.job.task = asyncio.get_running_loop().create_task(self._train(order, spec))

    async def wait_training(self) -> None:
        """Until the current training job (and its commits) finished: for tests and the demo."""
        if self.job is not None:
            await asyncio.gather(self.job.task, return_exceptions=True)

    async def close(self) -> None:
        if self.job is not None and not self.job.task.done():
            self.job.task.cancel()
        await super().close()


async def _in_daemon_thread(fn):
    """Run ``fn`` in a daemon thread: training cannot be interrupted before its deadline, and a
    worker asked to stop must not wait for it (asyncio.to_thread's pool joins on exit)."""
    import threading

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


async def run(config: MinerConfig) -> None:
    """``pot miner run``: the miner against the committee's API, until SIGINT/SIGTERM."""
    await run_worker(Miner, config)
