"""``pot bench train``: the miner's training loop against a plain PyTorch loop, measured fairly.

Both loops train the same architecture from the same initial weights on the same samples (the
miner's 90%: it holds the rest out to pick its best model), in the same batches, with the same
optimizer and, on CUDA, the same autocast. The plain loop does nothing else. The miner's loop is
:func:`pot.ml.train.train` with the callback a miner uses: on each better model it writes the
canonical file, computes ``mid = sha256``, the commitment ``keccak256(abi.encode(orderId, miner,
mid, salt))`` and adds the file to an embedded content store (the upload); it picks models by the
order's exact validation function on its holdout.

The method, so that a shared or noisy machine does not decide the result:

- rounds of a few seconds, interleaved ABBA (plain, miner, miner, plain, ...), so a slow spell
  hits both loops alike; one warm-up round of each is discarded;
- on the CPU, one torch thread and the process's CPU time, so time the scheduler gives to other
  processes does not count (and no thread spins in a barrier on the clock); on CUDA, wall time
  after a device synchronize;
- per round, samples (tokens for a language model) per second; the **median** over rounds;
  ``ratio`` = miner median / plain median, target at least 0.95.

It also reports PoT's own work (snapshot, serialization, hashes, commitment, store) and model
selection as shares of the miner's wall time, and how long the reference validator takes to
score the trained model on the test split (:func:`pot.ml.validation.score`, the exact path).
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

TARGET_RATIO = 0.95


@dataclass(frozen=True)
class BenchModel:
    data: str  # a built-in data set, or "shapes" / "grammar" (pot.ml.demo_data)
    fields: dict
    batch_size: int = 64
    lr: float = 1e-3
    #: grammar: bytes of text and context; shapes: images per class and side
    size: int = 0
    context: int = 0


MODELS: dict[str, BenchModel] = {
    "mlp": BenchModel("digits-flat", {}),
    "cnn": BenchModel("digits", {}),
    "lstm": BenchModel("digits-seq", {}),
    "resnet": BenchModel("shapes", {"widths": [16, 32], "blocks": 1}, batch_size=32, size=100, context=16),
    "gpt": BenchModel("grammar", {"dim": 64, "heads": 4, "layers": 2, "mlp": 256}, batch_size=16, lr=3e-3,
                      size=24_000, context=64),
    # for a GPU: about 50M parameters (14 blocks of width 512, 256-byte context)
    "gpt-50m": BenchModel("grammar", {"dim": 512, "heads": 8, "layers": 14, "mlp": 2048}, batch_size=32, lr=3e-4,
                          size=4_000_000, context=256),
}
CPU_MODELS = ("mlp", "cnn", "lstm", "resnet", "gpt")


def bench_data(name: str):
    """(config, training Dataset, test Dataset) of a bench model."""
    import numpy as np

    from pot.ml.datasets import Dataset, make_dataset, model_config_for
    from pot.ml.demo_data import SHAPES, SplitMix64, grammar_text, shape_image

    m = MODELS[name]
    arch = name.split("-")[0]
    if m.data == "shapes":
        rng = SplitMix64(1)
        x = np.array([[shape_image(kind, m.context, rng)] for kind in SHAPES for _ in range(m.size)], dtype=np.uint8)
        y = np.repeat(np.arange(len(SHAPES)), m.size)
        perm = np.random.default_rng(0).permutation(len(y))
        cut = len(y) // 4
        cfg = {"arch": arch, "in_shape": [1, m.context, m.context], "num_classes": len(SHAPES), **m.fields}
        return cfg, Dataset(x[perm[cut:]], y[perm[cut:]]), Dataset(x[perm[:cut]], y[perm[:cut]])
    if m.data == "grammar":
        buf = np.frombuffer(grammar_text(m.size, seed=1), dtype=np.uint8)
        n = (len(buf) - 1) // m.context
        w = buf[np.arange(n)[:, None] * m.context + np.arange(m.context + 1)[None, :]]
        cut = max(1, n // 20)
        cfg = {"arch": arch, "in_shape": [m.context], "num_classes": 256, **m.fields}
        return (cfg, Dataset(w[cut:, :-1].copy(), w[cut:, 1:].astype(np.int64)),
                Dataset(w[:cut, :-1].copy(), w[:cut, 1:].astype(np.int64)))
    train_b, test_b = make_dataset(m.data, seed=0)
    return model_config_for(m.data, arch, **m.fields), Dataset.from_bytes(train_b), Dataset.from_bytes(test_b)


class _Clock:
    """CPU time of the process on the CPU, synchronized wall time on CUDA."""

    def __init__(self, device) -> None:
        self.device = device

    def __call__(self) -> float:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
            return time.perf_counter()
        return time.process_time()


def _plain_loop(model, x, y, epochs: int, batch_size: int, lr: float, device, seed: int, tokens: bool) -> int:
    """The baseline: the miner's batches, forward, backward, step; nothing else. Returns samples."""
    import torch

    from pot.ml.train import amp_dtype, epoch_batches, model_input, training_loss

    amp = amp_dtype(device)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    if device.type == "cuda":
        x, y = x.pin_memory(), y.pin_memory()
    samples = 0
    for epoch in range(epochs):
        for idx in epoch_batches(len(y), batch_size, seed, epoch, 0, 1):
            xb = model_input(x[idx].to(device, non_blocking=True), tokens)
            yb = y[idx].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=amp or torch.float16, enabled=amp is not None):
                loss = training_loss(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            samples += len(idx)
    return samples


def run_bench(device: str | None, model_name: str, seconds: float = 8.0, rounds: int = 5,
              commit_interval_s: float = 1.0) -> dict[str, Any]:
    import torch

    from pot.ml.train import pick_device

    if model_name not in MODELS:
        raise click.BadParameter(f"unknown model {model_name!r}; choose from {sorted(MODELS)}")
    dev = pick_device(device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _run(dev, model_name, seconds, rounds, commit_interval_s)
    finally:
        torch.set_num_threads(threads)


def _run(dev, model_name: str, seconds: float, rounds: int, commit_interval_s: float) -> dict[str, Any]:
    import numpy as np
    import torch
    from eth_abi import encode as abi_encode
    from eth_utils import keccak

    from pot.ml.archs import REGISTRY, build_model, param_shapes
    from pot.ml.spec import TrainHints
    from pot.ml.train import Checkpoint, holdout_split, train
    from pot.ml.validation import eval_ops, for_arch, score

    m = MODELS[model_name]
    cfg, data, test = bench_data(model_name)
    tokens = REGISTRY[cfg["arch"]].tokens
    per_sample = data.x.shape[1] if tokens else 1
    metric = for_arch(cfg["arch"])
    fit_idx, _ = holdout_split(data, TrainHints().holdout_fraction, 0)
    x_fit = torch.from_numpy(np.array(data.x[fit_idx]))
    y_fit = torch.from_numpy(np.array(data.y[fit_idx], dtype=np.int64))
    clock = _Clock(dev)

    def plain(epochs: int) -> tuple[int, float, float]:
        model = build_model(cfg, 0)
        c0, w0 = clock(), time.perf_counter()
        n = _plain_loop(model, x_fit, y_fit, epochs, m.batch_size, m.lr, dev, 0, tokens)
        return n, clock() - c0, time.perf_counter() - w0

    with tempfile.TemporaryDirectory(prefix="pot-bench-train-") as tmp:
        store = _store(Path(tmp))
        commits: list[bytes] = []
        results = []

        def on_improve(ckpt: Checkpoint) -> None:
            salt = secrets.token_bytes(32)
            commits.append(keccak(abi_encode(["uint256", "address", "bytes32", "bytes32"],
                                             [1, b"\x11" * 20, ckpt.mid, salt])))
            store(ckpt.model_bytes)

        def miner(epochs: int) -> tuple[int, float, float]:
            model = build_model(cfg, 0)
            c0, w0 = clock(), time.perf_counter()
            res = train(model, data, TrainHints(epochs=epochs, batch_size=m.batch_size, lr=m.lr), device=dev,
                        on_improve=on_improve, progress=False, metric=metric, commit_interval_s=commit_interval_s)
            cpu, wall = clock() - c0, time.perf_counter() - w0
            results.append(res)
            return res.samples, cpu, wall

        # warm-up (thread pools, allocator, cuDNN autotuning, imports), then size the rounds
        plain(1)
        miner(1)
        _, t_epoch, _ = plain(1)
        epochs = max(1, round(seconds / max(t_epoch, 1e-6)))
        results.clear()
        plain_rates, pot_rates = [], []
        for r in range(rounds):
            order = (plain, miner) if r % 2 == 0 else (miner, plain)
            for loop in order:
                n, cpu, _wall = loop(epochs)
                (plain_rates if loop is plain else pot_rates).append(n * per_sample / cpu)
        best = max((res.best for res in results if res.best is not None), key=lambda c: c.holdout_score)
        t0 = time.perf_counter()
        test_bytes = test.to_bytes()
        score(best.model_bytes, test_bytes, metric)
        validation_s = time.perf_counter() - t0

    plain_med, pot_med = statistics.median(plain_rates), statistics.median(pot_rates)
    params = sum(int(np.prod(s)) for s in param_shapes(cfg).values())
    return {
        "device": dev.type,
        "model": model_name,
        "params": params,
        "unit": "tokens" if tokens else "samples",
        "clock": "wall (synchronized)" if dev.type == "cuda" else "process CPU time",
        "rounds": rounds,
        "epochs_per_round": epochs,
        "batch_size": m.batch_size,
        "plain_per_s": plain_med,
        "pot_per_s": pot_med,
        "ratio": pot_med / plain_med,
        "plain_rounds": plain_rates,
        "pot_rounds": pot_rates,
        "pot_overhead_pct": statistics.median(100 * r.pot_s / r.wall_s for r in results),
        "eval_pct": statistics.median(100 * r.eval_s / r.wall_s for r in results),
        "improvements": len(commits),
        "validation_s": validation_s,
        "validation_samples": len(test.y),
        "validation_ops": eval_ops(cfg, len(test.y)),
    }


def _store(root: Path):
    """The miner's upload: the embedded content store when pot.storage is there, else a plain file."""
    try:
        from pot.storage import EmbeddedStore
    except ImportError:
        EmbeddedStore = None  # noqa: N806
    if EmbeddedStore is not None:
        return EmbeddedStore(root).add_bytes

    def put(blob: bytes) -> str:
        import hashlib

        name = hashlib.sha256(blob).hexdigest()
        (root / name).write_bytes(blob)
        return name

    return put


def summary_json(r: dict[str, Any]) -> dict[str, Any]:
    """What docs/bench/train-*.json keep (the README table reads it)."""
    keys = ("device", "model", "params", "unit", "clock", "rounds", "epochs_per_round", "plain_per_s", "pot_per_s",
            "ratio", "pot_overhead_pct", "eval_pct", "validation_s", "validation_samples")
    out = {k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in keys}
    # every round's rate, in the order run: the spread says how much to trust the medians
    out["plain_rounds"] = [round(x, 1) for x in r["plain_rounds"]]
    out["pot_rounds"] = [round(x, 1) for x in r["pot_rounds"]]
    return out


@click.command("train")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default=None, help="Default: cuda when present, else cpu.")
@click.option("--model", "models", type=click.Choice([*sorted(MODELS), "all"]), multiple=True,
              help="Architecture(s) to train; repeat, or 'all' (every one but gpt-50m, which is for a GPU). "
                   "Default: all.")
@click.option("--seconds", type=float, default=8.0, show_default=True, help="Approximate length of each round.")
@click.option("--rounds", type=int, default=5, show_default=True, help="Measured rounds of each loop (interleaved).")
@click.option("--commit-interval", "commit_interval_s", type=float, default=1.0, show_default=True,
              help="Seconds between a miner's commits (pot miner's commit_interval_s); 0 commits every improvement.")
@click.option("--json", "json_path", type=click.Path(writable=True),
              help="Write the result as JSON: a file for one model, a directory (train-MODEL[-cuda].json) for several.")
def command(device: str | None, models: tuple[str, ...], seconds: float, rounds: int, commit_interval_s: float,
            json_path: str | None) -> None:
    """Samples (tokens) per second of the miner's training loop vs a plain PyTorch loop: interleaved
    rounds, CPU time, medians; PoT's own work and the reference validator's scoring time."""
    from rich.console import Console
    from rich.table import Table

    names = list(CPU_MODELS) if not models or "all" in models else list(dict.fromkeys(models))
    if rounds < 1:
        raise click.BadParameter("at least one round", param_hint="--rounds")
    console = Console()
    if not console.is_terminal:
        console.width = 140  # a log or a pipe: keep the table on one line per model
    table = Table(title="pot bench train: miner vs plain PyTorch (median of interleaved rounds)")
    for col in ("model", "params", "device", "plain /s", "miner /s", "miner/plain", "PoT work", "model selection",
                "scoring (reference)"):
        table.add_column(col, justify="left" if col in ("model", "device") else "right")
    out: list[dict[str, Any]] = []
    for name in names:
        try:
            r = run_bench(device, name, seconds, rounds, commit_interval_s)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
        out.append(r)
        ok = r["ratio"] >= TARGET_RATIO
        table.add_row(name, f"{r['params']:,}", r["device"], f"{r['plain_per_s']:,.0f} {r['unit'][:3]}",
                      f"{r['pot_per_s']:,.0f} {r['unit'][:3]}", f"[{'green' if ok else 'red'}]{r['ratio']:.3f}[/]",
                      f"{r['pot_overhead_pct']:.2f}%", f"{r['eval_pct']:.2f}%",
                      f"{r['validation_s']:.2f} s / {r['validation_samples']}")
    console.print(table)
    console.print(f"rates per second of {out[0]['clock']}; target miner/plain >= {TARGET_RATIO}")
    if json_path:
        path = Path(json_path)
        if len(out) == 1 and path.suffix == ".json":
            path.write_text(json.dumps(summary_json(out[0])) + "\n")
        else:
            path.mkdir(parents=True, exist_ok=True)
            for r in out:
                suffix = "" if r["device"] == "cpu" else f"-{r['device']}"
                (path / f"train-{r['model']}{suffix}.json").write_text(json.dumps(summary_json(r)) + "\n")
