"""``pot bench train``: the miner's training loop against a plain PyTorch loop, and PoT's own share.

Both loops train the same architecture from the same initial weights on the same samples
(the digits data set, 90% of the training split: the miner holds the other 10% out to pick its
best model), with the same optimizer, batch size, number of epochs and, on CUDA, the same float16
autocast and GradScaler. The plain loop does nothing else. The miner's loop is
:func:`pot.ml.train.train` with the callback a miner uses: on each better model it writes the
canonical file, computes ``mid = sha256``, the commitment ``keccak256(abi.encode(orderId,
miner, mid, salt))``, and adds the file to an embedded content store in a temporary directory
(the upload). "PoT's own work" is the time spent in that path (snapshot, serialization, hashes,
commitment, store); the holdout evaluation is reported apart, as model selection that any careful
trainer does. Target: PoT's own work at most 2% of the miner's wall time.
"""

from __future__ import annotations

import json
import math
import secrets
import tempfile
import time
from pathlib import Path

import click

MODELS = {"cnn": "digits", "mlp": "digits-flat", "lstm": "digits-seq"}
TARGET_PCT = 2.0


def _plain_loop(model, x, y, epochs: int, batch_size: int, lr: float, device, seed: int) -> tuple[int, float]:
    """The baseline: shuffle, gather, forward, backward, step. Returns (samples, seconds)."""
    import torch

    cuda = device.type == "cuda"
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    loss_fn = torch.nn.CrossEntropyLoss()
    if cuda:
        x, y = x.pin_memory(), y.pin_memory()
    samples = 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + epoch))
        for idx in torch.split(perm, batch_size):
            xb = x[idx].to(device, non_blocking=True)
            yb = y[idx].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=cuda):
                loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            samples += len(idx)
    if cuda:
        torch.cuda.synchronize(device)
    return samples, time.perf_counter() - t0


def run_bench(device: str | None, model_name: str, seconds: float, batch_size: int,
              commit_interval_s: float = 1.0) -> dict:
    import numpy as np
    import torch
    from eth_abi import encode as abi_encode
    from eth_utils import keccak

    from pot.ml.archs import build_model
    from pot.ml.datasets import Dataset, make_dataset, model_config_for, stratified_split
    from pot.ml.spec import TrainHints
    from pot.ml.train import Checkpoint, pick_device, train

    if model_name not in MODELS:
        raise click.BadParameter(f"unknown model {model_name!r}; choose from {sorted(MODELS)}")
    dev = pick_device(device)
    ds_name = MODELS[model_name]
    train_bytes, _ = make_dataset(ds_name, seed=0)
    data = Dataset.from_bytes(train_bytes)
    cfg = model_config_for(ds_name, model_name)
    hints = TrainHints(epochs=1, batch_size=batch_size)
    fit_idx, _ = stratified_split(data.y, hints.holdout_fraction, 0)
    x_fit = torch.from_numpy(np.ascontiguousarray(data.x[fit_idx]))
    y_fit = torch.from_numpy(np.ascontiguousarray(data.y[fit_idx]))

    # warm-up (thread pools, allocator, cuDNN autotuning), then size the run to about `seconds`
    _plain_loop(build_model(cfg, 0), x_fit, y_fit, 1, batch_size, hints.lr, dev, 0)
    _, t_epoch = _plain_loop(build_model(cfg, 0), x_fit, y_fit, 2, batch_size, hints.lr, dev, 0)
    epochs = max(3, math.ceil(seconds / max(t_epoch / 2, 1e-6)))

    plain_samples, plain_s = _plain_loop(build_model(cfg, 0), x_fit, y_fit, epochs, batch_size, hints.lr, dev, 0)

    with tempfile.TemporaryDirectory(prefix="pot-bench-train-") as tmp:
        store = _store(Path(tmp))
        miner = b"\x11" * 20
        commits: list[bytes] = []

        def on_improve(ckpt: Checkpoint) -> None:
            salt = secrets.token_bytes(32)
            commits.append(keccak(abi_encode(["uint256", "address", "bytes32", "bytes32"], [1, miner, ckpt.mid, salt])))
            store(ckpt.model_bytes)

        res = train(
            build_model(cfg, 0),
            data,
            TrainHints(epochs=epochs, batch_size=batch_size),
            device=dev,
            on_improve=on_improve,
            progress=False,
            commit_interval_s=commit_interval_s,
        )
    # the baseline runs again after the miner's loop and keeps its faster run, so that a noisy
    # neighbour on a shared machine does not make PoT look faster than plain PyTorch
    again = _plain_loop(build_model(cfg, 0), x_fit, y_fit, epochs, batch_size, hints.lr, dev, 0)[1]
    plain_s = min(plain_s, again)
    return {
        "device": dev.type,
        "model": model_name,
        "dataset": ds_name,
        "epochs": epochs,
        "batch_size": batch_size,
        "plain_samples": plain_samples,
        "plain_s": plain_s,
        "pot_samples": res.samples,
        "pot_s": res.wall_s,
        "train_s": res.train_s,
        "eval_s": res.eval_s,
        "pot_work_s": res.pot_s,
        "improvements": len(commits),
        "commit_interval_s": commit_interval_s,
        "model_bytes": len(res.best.model_bytes) if res.best else 0,
        "plain_samples_per_s": plain_samples / plain_s,
        "pot_samples_per_s": res.samples_per_s,
        "pot_overhead_pct": 100.0 * res.pot_s / res.wall_s,
    }


def _store(root: Path):
    """The miner's upload: the embedded content store when pot.storage is there, else a plain file."""
    try:
        from pot.storage import EmbeddedStore
    except ImportError:
        EmbeddedStore = None  # noqa: N806
    if EmbeddedStore is not None:
        store = EmbeddedStore(root)
        return store.add_bytes

    def put(blob: bytes) -> str:
        import hashlib

        name = hashlib.sha256(blob).hexdigest()
        (root / name).write_bytes(blob)
        return name

    return put


@click.command("train")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default=None, help="Default: cuda when present, else cpu.")
@click.option("--model", "model_name", type=click.Choice(sorted(MODELS)), default="cnn", show_default=True,
              help="Architecture to train (on digits, digits-flat or digits-seq).")
@click.option("--seconds", type=float, default=6.0, show_default=True, help="Approximate duration of each loop.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Training batch size.")
@click.option("--commit-interval", "commit_interval_s", type=float, default=1.0, show_default=True,
              help="Seconds between a miner's commits (pot miner's commit_interval_s); 0 commits every improvement.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), help="Write the result as JSON here.")
def command(device: str | None, model_name: str, seconds: float, batch_size: int, commit_interval_s: float,
            json_path: str | None) -> None:
    """Samples/s of the miner's training loop vs a plain PyTorch loop, and PoT's own overhead."""
    from rich.console import Console
    from rich.table import Table

    try:
        r = run_bench(device, model_name, seconds, batch_size, commit_interval_s)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title=f"pot bench train: {r['model']} on {r['dataset']}, {r['device']}, "
                        f"{r['epochs']} epochs of batch {r['batch_size']}")
    table.add_column("loop")
    table.add_column("samples", justify="right")
    table.add_column("wall s", justify="right")
    table.add_column("samples/s", justify="right")
    table.add_row("plain PyTorch", f"{r['plain_samples']:,}", f"{r['plain_s']:.2f}", f"{r['plain_samples_per_s']:,.0f}")
    table.add_row("PoT miner", f"{r['pot_samples']:,}", f"{r['pot_s']:.2f}", f"{r['pot_samples_per_s']:,.0f}")
    Console().print(table)
    ok = r["pot_overhead_pct"] <= TARGET_PCT
    parts = Table(title="miner's wall time")
    parts.add_column("part")
    parts.add_column("s", justify="right")
    parts.add_column("share", justify="right")
    for label, key in (("training steps", "train_s"), ("holdout evaluation", "eval_s"),
                       (f"PoT work ({r['improvements']} commits of {r['model_bytes']:,} B files)", "pot_work_s")):
        parts.add_row(label, f"{r[key]:.3f}", f"{100 * r[key] / r['pot_s']:.2f}%")
    Console().print(parts)
    Console().print(
        f"PoT's own work: {r['pot_overhead_pct']:.2f}% of the miner's wall time "
        f"(target <= {TARGET_PCT}%): [{'green' if ok else 'red'}]{'met' if ok else 'NOT met'}[/]"
    )
    if json_path:
        out = {
            "device": r["device"],
            "model": r["model"],
            "plain_samples_per_s": round(r["plain_samples_per_s"], 1),
            "pot_samples_per_s": round(r["pot_samples_per_s"], 1),
            "pot_overhead_pct": round(r["pot_overhead_pct"], 3),
        }
        Path(json_path).write_text(json.dumps(out) + "\n")
