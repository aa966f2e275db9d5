"""The miner's training loop.

CUDA when present (bfloat16 autocast where the GPU has it, else float16 with a GradScaler;
pinned host batches copied with ``non_blocking=True``; cuDNN autotuning), the CPU otherwise.
A held-out part of the training data picks the best model, scored by the order's own
validation function (:mod:`pot.ml.validation`, the exact path validators use, on the weights as
the model file stores them), so the model a miner commits is the best by the rule that decides
the reward. Each time the model improves, the loop writes its canonical file, computes its
``mid`` and calls ``on_improve`` with it, because a miner must commit every better model before
``trainEnd`` (a later commit replaces an earlier one) and may be cut off at any moment.

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

from pot.ml.archs import REGISTRY as ARCHS
from pot.ml.datasets import Dataset, stratified_split
from pot.ml.modelfile import encode, mid
from pot.ml.spec import TrainHints
from pot.ml.validation import eval_ops, for_arch, score_state
from pot.ml.validation import get as get_validation


#: Under DDP the ranks agree on the deadline every this many steps.
STOP_SYNC_STEPS = 8
#: The holdout a miner scores with the exact validation function at each evaluation is cut to
#: this reference cost (about half a second on one CPU core): enough samples to rank models.
MAX_HOLDOUT_OPS = 3 * 10**8


@dataclass(frozen=True)
class Checkpoint:
    """A better model, as the miner commits it."""

    model_bytes: bytes
    mid: bytes
    #: the validation function's score on the holdout, as a share of its maximum (accuracy for
    #: classification-accuracy; 1 - bits per byte / 8 for lm-bits-per-byte)
    holdout_accuracy: float
    holdout_loss: float
    epoch: int
    step: int
    samples_seen: int
    elapsed_s: float
    #: the validation function's integer score on the holdout
    holdout_score: int = 0


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
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (epoch, score share, loss)
    device: str = "cpu"
    #: tokens per sample (the context of a language model; 1 for a classifier)
    tokens_per_sample: int = 1

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.samples_per_s * self.tokens_per_sample


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


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if world > 1:
        # equal shards, or DDP's all-reduces would wait for a rank that has run out of batches
        per_rank = n // world
        perm = perm[rank * per_rank : (rank + 1) * per_rank]
    return list(torch.split(perm, batch_size))


def model_input(xb: torch.Tensor, tokens: bool) -> torch.Tensor:
    """A batch as the model takes it: uint8 images scaled to [0, 1] (as the validation functions
    do), token ids and float features unchanged."""
    if xb.dtype == torch.uint8 and not tokens:
        return xb.float().div_(255.0)
    return xb


def training_loss(out: torch.Tensor, yb: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over classes, or over every position of a language model's window."""
    if out.dim() == 3:
        return nn.functional.cross_entropy(out.float().flatten(0, 1), yb.flatten(), reduction=reduction)
    return nn.functional.cross_entropy(out.float(), yb, reduction=reduction)


@torch.no_grad()
def _holdout_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, amp, tokens: bool) -> float:
    """Mean float cross-entropy on the holdout: only a tie-break between equal scores."""
    model.eval()
    loss_sum, count = 0.0, 0
    for i in range(0, len(y), 256):
        xb = model_input(x[i : i + 256].to(device, non_blocking=True), tokens)
        yb = y[i : i + 256].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=amp or torch.float16, enabled=amp is not None):
            out = model(xb)
        loss_sum += float(training_loss(out, yb, "sum"))
        count += yb.numel()
    model.train()
    return loss_sum / count


def holdout_split(data: Dataset, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, holdout) indices: stratified by class, or random windows for a language model."""
    if not data.tokens:
        return stratified_split(data.y, fraction, seed)
    perm = np.random.default_rng(seed).permutation(len(data.y))
    n = max(1, round(len(perm) * fraction)) if len(perm) > 1 else 0
    return np.sort(perm[n:]), np.sort(perm[:n])


def amp_dtype(dev: torch.device) -> torch.dtype | None:
    """bfloat16 where the GPU has it (no loss scaling needed), else float16; None on the CPU."""
    if dev.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class _Progress:
    """tqdm bar in samples (tokens for a language model) per second, with the time left before
    the deadline (the end of the training window minus the commit margin)."""

    def __init__(self, total: int, unit: str, scale: int, stop_at: float, disable: bool,
                 cls: Callable[..., Any] = tqdm):
        self.scale, self.stop_at = scale, stop_at
        self.bar = cls(total=total * scale, unit=unit, unit_scale=True, disable=disable, leave=False,
                       dynamic_ncols=True)
        self.fields: dict[str, str] = {}
        # tqdm prints its own rate; another bar class (the miner's console) gets it as a field
        self.rate_field = None if cls is tqdm else f"{unit}/s"
        self.t0, self.done = time.perf_counter(), 0

    def update(self, samples: int) -> None:
        if self.bar.disable:
            return
        self.bar.update(samples * self.scale)
        self.done += samples * self.scale
        if self.rate_field is not None:
            self.fields[self.rate_field] = f"{self.done / max(time.perf_counter() - self.t0, 1e-9):,.0f}"
        if math.isfinite(self.stop_at):
            left = max(0, int(self.stop_at - time.time()))
            self.fields["left"] = f"{left // 60}:{left % 60:02d}"
        self.bar.set_postfix(self.fields, refresh=False)

    def close(self) -> None:
        self.bar.close()


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
    eval_interval_s: float | None = None,
    max_eval_share: float = 0.03,
    commit_interval_s: float = 0.0,
    metric: str | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train ``model`` (built by :func:`pot.ml.archs.build_model`) on ``data``; return the best checkpoint.

    ``deadline`` is a ``time.time()`` instant (e.g. the order's trainEnd minus the miner's safety
    margin for the commit to land); ``time_budget_s`` is the same counted from now; the earlier
    one wins. Training stops at the deadline or after ``hints.epochs`` epochs, whichever is first.
    ``on_improve`` runs on rank 0 after each improvement on the holdout (a higher score by the
    validation function ``metric``, default: the one for the architecture; or the same score
    with a clearly lower loss), with the canonical file of the model.
    The holdout is evaluated ``evals_per_epoch`` times per epoch and, whatever the epoch's
    length, at least every ``eval_interval_s`` (default: an eighth of the time left, 5 to 60 s),
    so a miner whose epoch is longer than its window (a language model on a big corpus) still
    commits. A per-epoch evaluation that would take the holdout's share of the time past
    ``max_eval_share`` is skipped (the model is scored again once training ends by its epochs),
    so without a deadline, scoring by the exact validation function costs training at most
    about that much; with one, the timer's evaluations still run.
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
    fn = get_validation(metric or for_arch(cfg["arch"]))
    tokens = ARCHS[cfg["arch"]].tokens
    stop_at = math.inf if deadline is None else deadline
    if time_budget_s is not None:
        stop_at = min(stop_at, time.time() + time_budget_s)

    ddp = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank = dist.get_rank() if ddp else 0
    world = dist.get_world_size() if ddp else 1
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    amp = amp_dtype(dev)
    if cuda:
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # miners want speed; the exact scoring path does not use cuDNN

    fit_idx, hold_idx = holdout_split(data, hints.holdout_fraction, seed)
    if len(hold_idx) == 0 or len(fit_idx) < world:
        raise ValueError(f"{len(data.y)} samples are too few to hold out {hints.holdout_fraction:.0%} and train")
    # the exact scoring of the holdout is bounded in cost; the float loss uses all of it
    n_score = max(1, min(len(hold_idx), MAX_HOLDOUT_OPS // max(1, eval_ops(cfg, 1))))
    holdout = data.subset(hold_idx[:n_score])
    x_all = torch.from_numpy(np.array(data.x, order="C"))  # a writable copy; uint8 stays uint8 until on the device
    y_all = torch.from_numpy(np.ascontiguousarray(data.y, dtype=np.int64))
    x_fit, y_fit = x_all[fit_idx], y_all[fit_idx]
    x_hold, y_hold = x_all[hold_idx], y_all[hold_idx]
    if cuda:
        x_hold, y_hold = x_hold.pin_memory(), y_hold.pin_memory()
    # the exact path on this rank's GPU when there is one: the same bits as the reference
    impl, impl_device = ("torch", str(dev)) if cuda else ("numpy", "cpu")

    model.to(dev)
    model.train()
    net: nn.Module = model
    if ddp:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if cuda else None)
    opt = _make_optimizer(net.parameters(), hints)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)

    n_fit = len(y_fit)
    per_rank = n_fit // world if world > 1 else n_fit
    per_epoch = math.ceil(per_rank / hints.batch_size)
    eval_points = {max(1, round(per_epoch * (k + 1) / evals_per_epoch)) for k in range(evals_per_epoch)}
    if eval_interval_s is None:
        left = stop_at - time.time()
        eval_interval_s = min(60.0, max(5.0, left / 8)) if math.isfinite(left) else 60.0
    last_eval = time.perf_counter()
    tok_per_sample = data.x.shape[1] if tokens else 1
    result = TrainResult(best=None, device=str(dev), tokens_per_sample=tok_per_sample)
    best_key: tuple[int, float] | None = None
    bar = _Progress(hints.epochs * per_rank * world, "tok" if tokens else "sample", tok_per_sample, stop_at,
                    disable=not progress or rank != 0,
                    cls=progress if callable(progress) else tqdm)
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
        state, sc, hl, epoch, steps, samples = pending
        pending = None
        blob = encode(state, cfg)
        ckpt = Checkpoint(model_bytes=blob, mid=mid(blob), holdout_accuracy=sc / fn.max_score, holdout_loss=hl,
                          epoch=epoch, step=steps, samples_seen=samples,
                          elapsed_s=time.perf_counter() - t_start, holdout_score=sc)
        result.best = ckpt
        last_commit = time.perf_counter()
        if on_improve is not None:
            on_improve(ckpt)

    def evaluate(epoch: int) -> None:
        """Score the model on the holdout (rank 0) and hand a better one on; time goes to eval_s/pot_s."""
        nonlocal best_key, pending, last_eval, skipped
        t1 = time.perf_counter()
        state = {k: v.detach().to("cpu", torch.float32, copy=True) for k, v in model.state_dict().items()}
        sc = score_state(state, cfg, holdout, fn.name, impl=impl, device=impl_device)
        hl = _holdout_loss(model, x_hold, y_hold, dev, amp, tokens)
        t2 = last_eval = time.perf_counter()
        skipped = False
        result.eval_s += t2 - t1
        result.history.append((epoch, sc / fn.max_score, hl))
        bar.fields.update(score=str(sc), loss=f"{hl:.4f}")
        if best_key is None or sc > best_key[0] or (sc == best_key[0] and hl < 0.99 * best_key[1]):
            best_key = (sc, hl)
            pending = (state, sc, hl, epoch, result.steps, result.samples)
            if time.perf_counter() - last_commit >= commit_interval_s:
                deliver()
        result.pot_s += time.perf_counter() - t2

    skipped = False  # an evaluation was due but skipped to keep within max_eval_share
    epoch = 0
    try:
        for epoch in range(hints.epochs):
            batches = epoch_batches(n_fit, hints.batch_size, seed, epoch, rank, world)
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
                xb = model_input(xb.to(dev, non_blocking=True), tokens)
                yb = yb.to(dev, non_blocking=True)
                with torch.autocast(device_type=dev.type, dtype=amp or torch.float16, enabled=amp is not None):
                    loss = training_loss(net(xb), yb)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                result.steps += 1
                result.samples += len(yb) * world
                bar.update(len(yb) * world)
                timer_due = time.perf_counter() - last_eval >= eval_interval_s
                if rank == 0 and (i in eval_points or timer_due):
                    if cuda:
                        torch.cuda.synchronize(dev)
                    now = time.perf_counter()
                    # per-epoch model selection gets at most max_eval_share of the time (the first
                    # always); the timer's evaluations do not wait: a miner with a deadline must commit
                    if (not timer_due and best_key is not None
                            and result.eval_s > max_eval_share * (result.train_s + now - t0)):
                        skipped = True
                        continue
                    result.train_s += now - t0
                    evaluate(epoch)
                    t0 = time.perf_counter()
            else:
                if cuda:
                    torch.cuda.synchronize(dev)
                result.train_s += time.perf_counter() - t0
                result.epochs += 1
                continue
            result.train_s += time.perf_counter() - t0
            break
        if skipped and result.stopped_by == "epochs" and rank == 0:
            evaluate(epoch)  # the last model is never left unscored when there is time for it
        if pending is not None:
            t2 = time.perf_counter()
            deliver()
            result.pot_s += time.perf_counter() - t2
    finally:
        bar.close()
    result.wall_s = time.perf_counter() - t_start
    return result
