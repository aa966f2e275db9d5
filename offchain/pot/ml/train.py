"""The miner's training loop.

CUDA when present (float16 autocast with a GradScaler, pinned host batches copied with
``non_blocking=True``, cuDNN autotuning), the CPU otherwise. A held-out part of the training
data picks the best model; each time the model improves, the loop writes its canonical file,
computes its ``mid`` and calls ``on_improve`` with it, because a miner must commit every better
model before ``trainEnd`` (a later commit replaces an earlier one) and may be cut off at any moment.

Under ``torchrun`` (``torch.distributed`` initialised, see :mod:`pot.ml.train_ddp`) the model is
wrapped in DistributedDataParallel, every rank trains on an equal shard of each epoch, and only
rank 0 evaluates, keeps the best model and calls ``on_improve``: the miner stays one identity.
The ranks agree on when to stop (deadline) through an all-reduce, so none waits forever on
another.

Time is accounted in three parts so the benchmark can report PoT's own share: training steps,
holdout evaluation (model selection, which any careful trainer does) and PoT work (snapshot,
canonical serialization, sha256 and the ``on_improve`` callback: commitment, upload).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pot.ml.datasets import Dataset, stratified_split
from pot.ml.modelfile import encode, mid
from pot.ml.spec import TrainHints


#: Under DDP the ranks agree on the deadline every this many steps.
STOP_SYNC_STEPS = 8


@dataclass(frozen=True)
class Checkpoint:
    """A better model, as the miner commits it."""

    model_bytes: bytes
    mid: bytes
    holdout_accuracy: float
    holdout_loss: float
    epoch: int
    step: int
    samples_seen: int
    elapsed_s: float


@dataclass
class TrainResult:
    best: Checkpoint | None  # None on ranks other than 0, or when no evaluation finished in time
    epochs: int = 0
    steps: int = 0
    samples: int = 0
    wall_s: float = 0.0
    train_s: float = 0.0
    eval_s: float = 0.0
    pot_s: float = 0.0
    stopped_by: str = "epochs"
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (epoch, accuracy, loss)
    device: str = "cpu"

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto": this rank's CUDA device when present, else the CPU."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA was asked for but torch sees no CUDA device (CPU build or no GPU)")
        if dev.index is None:
            # torchrun gives each rank its GPU through LOCAL_RANK (train_ddp also sets it as current)
            local = os.environ.get("LOCAL_RANK")
            index = int(local) % torch.cuda.device_count() if local is not None else torch.cuda.current_device()
            dev = torch.device("cuda", index)
    return dev


class _Batches(torch.utils.data.Dataset):
    """Indexed by a whole batch of indices: one gather per batch instead of one call per sample."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]


def _make_optimizer(params, hints: TrainHints) -> torch.optim.Optimizer:
    if hints.optimizer == "adam":
        return torch.optim.Adam(params, lr=hints.lr, weight_decay=hints.weight_decay)
    if hints.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=hints.lr, weight_decay=hints.weight_decay)
    return torch.optim.SGD(params, lr=hints.lr, momentum=0.9, weight_decay=hints.weight_decay)


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if world > 1:
        # equal shards, or DDP's all-reduces would wait for a rank that has run out of batches
        per_rank = n // world
        perm = perm[rank * per_rank : (rank + 1) * per_rank]
    return list(torch.split(perm, batch_size))


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, amp: bool) -> tuple[float, float]:
    model.eval()
    correct, loss_sum = 0, 0.0
    for i in range(0, len(y), 1024):
        xb = x[i : i + 1024].to(device, non_blocking=True)
        yb = y[i : i + 1024].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            out = model(xb)
        loss_sum += float(nn.functional.cross_entropy(out.float(), yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    model.train()
    return correct / len(y), loss_sum / len(y)


def train(
    model: nn.Module,
    data: Dataset,
    hints: TrainHints | None = None,
    *,
    device: str | torch.device | None = None,
    deadline: float | None = None,
    time_budget_s: float | None = None,
    on_improve: Callable[[Checkpoint], None] | None = None,
    seed: int = 0,
    progress: bool | Callable[..., Any] = True,
    evals_per_epoch: int = 1,
    commit_interval_s: float = 0.0,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train ``model`` (built by :func:`pot.ml.archs.build_model`) on ``data``; return the best checkpoint.

    ``deadline`` is a ``time.time()`` instant (e.g. the order's trainEnd minus the miner's safety
    margin for the commit to land); ``time_budget_s`` is the same counted from now; the earlier
    one wins. Training stops at the deadline or after ``hints.epochs`` epochs, whichever is first.
    ``on_improve`` runs on rank 0 after each improvement on the holdout (higher accuracy, or the
    same accuracy with a clearly lower loss), with the canonical file of the model.
    ``commit_interval_s`` rate-limits those calls: an improvement that comes sooner than that after
    the last one is held back and delivered with the next one due, or when training ends, so a
    miner whose model improves every few milliseconds does not spend its time (and the ledger's)
    on commits that a better model replaces at once. The best model is always delivered.
    ``progress``: a bar on stderr (True), none (False), or a tqdm-like class to draw it with (the
    miner's console, so its log lines and the bar never interleave). ``stop``: set it and training
    ends at the next batch as at the deadline (a miner asked to stop must not leave a thread
    inside PyTorch when the process exits).
    """
    hints = hints or TrainHints()
    t_start = time.perf_counter()
    cfg = getattr(model, "pot_config", None)
    if cfg is None:
        raise ValueError("train() needs a model built by pot.ml.archs.build_model (it carries its config)")
    data.check_for(cfg)
    stop_at = math.inf if deadline is None else deadline
    if time_budget_s is not None:
        stop_at = min(stop_at, time.time() + time_budget_s)

    ddp = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank = dist.get_rank() if ddp else 0
    world = dist.get_world_size() if ddp else 1
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # miners want speed; validators recompute on the CPU anyway

    fit_idx, hold_idx = stratified_split(data.y, hints.holdout_fraction, seed)
    if len(hold_idx) == 0 or len(fit_idx) < world:
        raise ValueError(f"{len(data.y)} samples are too few to hold out {hints.holdout_fraction:.0%} and train")
    x_all = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
    y_all = torch.from_numpy(np.ascontiguousarray(data.y, dtype=np.int64))
    x_fit, y_fit = x_all[fit_idx], y_all[fit_idx]
    x_hold, y_hold = x_all[hold_idx], y_all[hold_idx]
    if cuda:
        x_hold, y_hold = x_hold.pin_memory(), y_hold.pin_memory()

    model.to(dev)
    model.train()
    net: nn.Module = model
    if ddp:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if cuda else None)
    opt = _make_optimizer(net.parameters(), hints)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    loss_fn = nn.CrossEntropyLoss()

    n_fit = len(y_fit)
    per_epoch = math.ceil((n_fit // world if world > 1 else n_fit) / hints.batch_size)
    eval_points = {max(1, round(per_epoch * (k + 1) / evals_per_epoch)) for k in range(evals_per_epoch)}
    result = TrainResult(best=None, device=str(dev))
    best_key: tuple[float, float] | None = None
    bar = (progress if callable(progress) else tqdm)(total=hints.epochs * per_epoch, unit="batch",
                                                     disable=not progress or rank != 0, leave=False)
    stop_flag = torch.zeros(1, dtype=torch.int32)

    def should_stop() -> bool:
        local = time.time() >= stop_at or (stop is not None and stop.is_set())
        if not ddp:
            return local
        # every rank counts the same steps, so they all reach this all-reduce together; not every
        # step, because reading the flag back synchronizes the GPU
        if result.steps % STOP_SYNC_STEPS:
            return False
        stop_flag.fill_(int(local))
        dist.all_reduce(stop_flag, op=dist.ReduceOp.MAX)  # gloo tensor on CPU, nccl needs it on the GPU
        return bool(stop_flag.item())

    if ddp and dist.get_backend() == "nccl":
        stop_flag = stop_flag.to(dev)

    pending: tuple | None = None  # the best model not yet handed to on_improve
    last_commit = -math.inf

    def deliver() -> None:
        nonlocal pending, last_commit
        if pending is None:
            return
        state, acc, hl, epoch, steps, samples = pending
        pending = None
        blob = encode(state, cfg)
        ckpt = Checkpoint(model_bytes=blob, mid=mid(blob), holdout_accuracy=acc, holdout_loss=hl,
                          epoch=epoch, step=steps, samples_seen=samples,
                          elapsed_s=time.perf_counter() - t_start)
        result.best = ckpt
        last_commit = time.perf_counter()
        if on_improve is not None:
            on_improve(ckpt)

    try:
        for epoch in range(hints.epochs):
            batches = _epoch_batches(n_fit, hints.batch_size, seed, epoch, rank, world)
            if cuda:
                # a DataLoader pins each gathered batch in its own thread, so host-to-device copies overlap compute
                loader = DataLoader(_Batches(x_fit, y_fit), sampler=batches, batch_size=None, pin_memory=True)
            else:
                loader = ((x_fit[idx], y_fit[idx]) for idx in batches)
            t0 = time.perf_counter()
            for i, (xb, yb) in enumerate(loader, start=1):
                if should_stop():
                    result.stopped_by = "deadline"
                    break
                xb = xb.to(dev, non_blocking=True)
                yb = yb.to(dev, non_blocking=True)
                with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=cuda):
                    loss = loss_fn(net(xb), yb)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                result.steps += 1
                result.samples += len(yb) * world
                bar.update(1)
                if i in eval_points and rank == 0:
                    if cuda:
                        torch.cuda.synchronize(dev)
                    t1 = time.perf_counter()
                    result.train_s += t1 - t0
                    acc, hl = _evaluate(model, x_hold, y_hold, dev, cuda)
                    t2 = time.perf_counter()
                    result.eval_s += t2 - t1
                    result.history.append((epoch, acc, hl))
                    bar.set_postfix(acc=f"{acc:.4f}", loss=f"{hl:.4f}")
                    if best_key is None or acc > best_key[0] or (acc == best_key[0] and hl < 0.99 * best_key[1]):
                        best_key = (acc, hl)
                        state = {k: v.detach().to("cpu", torch.float32, copy=True) for k, v in model.state_dict().items()}
                        pending = (state, acc, hl, epoch, result.steps, result.samples)
                        if time.perf_counter() - last_commit >= commit_interval_s:
                            deliver()
                    t0 = time.perf_counter()
                    result.pot_s += t0 - t2
            else:
                if cuda:
                    torch.cuda.synchronize(dev)
                result.train_s += time.perf_counter() - t0
                result.epochs += 1
                continue
            result.train_s += time.perf_counter() - t0
            break
        if pending is not None:
            t2 = time.perf_counter()
            deliver()
            result.pot_s += time.perf_counter() - t2
    finally:
        bar.close()
    result.wall_s = time.perf_counter() - t_start
    return result
