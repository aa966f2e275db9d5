"""Train a task on one or several devices: ``python -m pot.ml.train_ddp`` or under ``torchrun``.

    torchrun --standalone --nproc_per_node=4 -m pot.ml.train_ddp \\
        --spec spec.json --data train.npz --out run/ --budget 600

A miner with several GPUs stays one identity on the network: every rank trains (DDP, NCCL on
GPUs, gloo on CPUs), only rank 0 writes files. Each better model is written atomically to
``OUT/best.safetensors`` and announced as one JSON line on stdout and in
``OUT/improvements.jsonl`` (``{"mid": "0x…", "holdout_accuracy": …, "epoch": …, "file": …}``);
the miner worker follows that file and commits each ``mid`` before ``trainEnd``. The spec's
``train_data_cid`` is fetched and verified by the worker; here ``--data`` is that file.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from pot.ml.archs import build_model
from pot.ml.datasets import Dataset
from pot.ml.modelfile import load_model, read_model_file, write_model_file
from pot.ml.spec import TaskSpec
from pot.ml.train import Checkpoint, pick_device, train

MAX_DATA_READ = 1024 * 1024 * 1024


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pot.ml.train_ddp", description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", required=True, help="task spec JSON file")
    p.add_argument("--data", required=True, help="training data npz (the spec's train_data_cid)")
    p.add_argument("--out", required=True, help="output directory (rank 0 writes best.safetensors here)")
    p.add_argument("--init", help="initial weights file (the spec's init weights_cid), when the spec has one")
    p.add_argument("--budget", type=float, help="seconds of training before stopping (the deadline)")
    p.add_argument("--deadline", type=float, help="unix time at which to stop (the earlier of the two wins)")
    p.add_argument("--epochs", type=int, help="override the spec's epochs hint")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="shuffling / holdout seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        return _main(args)
    except (ValueError, OSError) as exc:
        # bad spec, data or weights: one clear line, not a traceback from every rank
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


def _exit_rank(code: int) -> None:
    """Leave a distributed rank without interpreter finalization.

    The DDP reducer keeps the gloo process group alive after ``destroy_process_group``; when
    finalization destroys it, a gloo thread can still be joinable and the rank aborts
    ("terminate called without an active exception", exit -6) after its work is done. Every
    file this rank wrote is already closed and renamed into place.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _main(args: argparse.Namespace) -> int:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        cuda = args.device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    try:
        spec = TaskSpec.from_json(Path(args.spec).read_bytes())
        data_path = Path(args.data)
        if data_path.stat().st_size > MAX_DATA_READ:
            raise SystemExit(f"{data_path} is larger than {MAX_DATA_READ} bytes")
        data = Dataset.from_bytes(data_path.read_bytes())
        if spec.init_weights_cid is not None:
            if not args.init:
                raise SystemExit("the spec starts from given weights: pass them with --init FILE")
            model = load_model(read_model_file(args.init))
            if model.pot_config != spec.model:
                raise ValueError(f"--init weights are a {model.pot_config} model, not the spec's {spec.model}")
            model.train()
        else:
            # every rank builds the same initial weights; DDP also broadcasts rank 0's at wrap time
            model = build_model(spec.model, seed=spec.init_seed)
        hints = spec.hints
        if args.epochs is not None:
            hints = type(hints)(**{**hints.__dict__, "epochs": args.epochs})
        out = Path(args.out)
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)

        def on_improve(ckpt: Checkpoint) -> None:
            path = out / "best.safetensors"
            write_model_file(path, ckpt.model_bytes)
            line = json.dumps(
                {
                    "mid": "0x" + ckpt.mid.hex(),
                    "holdout_accuracy": ckpt.holdout_accuracy,
                    "holdout_score": ckpt.holdout_score,
                    "epoch": ckpt.epoch,
                    "step": ckpt.step,
                    "file": str(path),
                }
            )
            with open(out / "improvements.jsonl", "a") as f:
                f.write(line + "\n")
            print(line, flush=True)

        result = train(
            model,
            data,
            hints,
            device=pick_device(args.device),
            deadline=args.deadline,
            time_budget_s=args.budget,
            on_improve=on_improve,
            seed=args.seed,
            progress=not args.no_progress,
            metric=spec.metric,
        )
        if rank == 0:
            summary = {
                "done": True,
                "world_size": world,
                "device": result.device,
                "epochs": result.epochs,
                "samples": result.samples,
                "samples_per_s": round(result.samples_per_s, 1),
                "tokens_per_s": round(result.tokens_per_s, 1),
                "stopped_by": result.stopped_by,
                "best_mid": "0x" + result.best.mid.hex() if result.best else None,
            }
            print(json.dumps(summary), flush=True)
    finally:
        gc.collect()  # the DDP wrapper and its reducer (reference cycles) release the group here
        if dist.is_initialized():
            # every rank done before any leaves: rank 0 hosts the rendezvous store, and a rank
            # still tearing gloo down when it goes aborts ("terminate called without an active
            # exception", exit -6)
            try:
                dist.barrier()
            except (RuntimeError, ValueError):
                pass  # a rank failed: the launcher reports that one
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _exit_rank(code)
    sys.exit(code)
