"""Scoring one revealed model for its order: the entry point of validators, verifiers and
PoT.Verify, and the process it runs in.

:func:`score_model` turns (model file, test set, task spec, the order's modelType) into an
:data:`~pot.protocol.scoring.Outcome`. Every check that a hostile file could fail is a
deterministic :class:`Invalid` (scores 0 with the reason), made in order of cost: the header
alone (bounded JSON, canonical shape), the spec's architecture against it, and only then the
weights and the validation function. Anything else that goes wrong is this machine's problem
and gives :class:`Abstain`, never 0.

The workers never run this in their own process: ``python -m pot.ml.scoring`` is a child
(``pot.roles.scoring.ScoringProcess``) that imports PyTorch once, at the worker's start, runs
under an address-space limit (``RLIMIT_AS``) and is killed by its parent past a wall-clock
limit. So a model that needs too much memory or time costs an Abstain and a restarted child,
not the worker, and no event loop ever waits on an import or an evaluation.

Wire format on stdin/stdout: frames of an 8-byte little-endian length and a payload. A request
is a JSON frame, then one frame per name in its ``"blobs"``; the answer is one JSON frame. The
child speaks first, once, with the limits it applies (:func:`hello`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

import numpy as np

from pot.ml.archs import build_model
from pot.ml.datasets import MAX_DATASET_BYTES, Dataset, DatasetError
from pot.ml.modelfile import MAX_MODEL_BYTES, ModelFileError, read_header, save_model
from pot.ml.spec import MAX_SPEC_BYTES, SpecError, TaskSpec
from pot.ml.validation import ValidationError, score
from pot.protocol.scoring import Abstain, Invalid, Outcome, Scored
from pot.protocol.scoring import to_json as outcome_json

log = logging.getLogger("pot.ml.scoring")

#: Largest frame the child reads: a model, a test set, or a request.
MAX_FRAME = max(MAX_MODEL_BYTES, MAX_DATASET_BYTES) + 1024


def parse_spec(spec_bytes: bytes, model_type: str) -> TaskSpec | Invalid:
    """The order's spec, or why every model of the order is Invalid."""
    try:
        spec = TaskSpec.from_json(spec_bytes)
    except SpecError as exc:
        return Invalid(f"the order's task spec is malformed: {exc}")
    if spec.metric != model_type:
        return Invalid(f"the task spec's metric {spec.metric!r} is not the order's modelType {model_type!r}")
    return spec


def score_model(model_bytes: bytes, test_bytes: bytes, spec: TaskSpec) -> Outcome:
    """Score one model file (already checked against its mid) for an order with this spec."""
    limit = spec.max_model_bytes
    try:
        header = read_header(model_bytes, max_bytes=limit)
        spec.check_model(header)
        return Scored(score(model_bytes, test_bytes, spec.metric, max_model_bytes=limit))
    except (ModelFileError, SpecError) as exc:
        return Invalid(f"not an acceptable model for this order: {exc}")
    except DatasetError as exc:
        return Invalid(f"the order's test data is not acceptable: {exc}")
    except ValidationError as exc:
        return Invalid(f"not scorable: {exc}")
    except MemoryError:
        return Abstain("out of memory while scoring")
    except Exception as exc:  # noqa: BLE001 - not a verdict on the model: PyTorch's own OOM is a RuntimeError
        log.error("scoring failed:\n%s", traceback.format_exc())
        return Abstain(f"scoring failed on this machine: {type(exc).__name__}: {str(exc)[:200]}")


def warm_up() -> float:
    """Score a tiny model once; seconds it took. The first evaluation imports more of PyTorch
    lazily (``torch.use_deterministic_algorithms`` pulls in ``torch._inductor``: seconds on a busy
    machine), which belongs to the start of the worker, not to its first validation window."""
    t = time.monotonic()
    tiny = {"arch": "mlp", "in_shape": [4], "num_classes": 2, "hidden": [2]}
    data = Dataset(np.zeros((2, 4), np.float32), np.array([0, 1], np.int64)).to_bytes()
    score(save_model(build_model(tiny, seed=0)), data)
    return time.monotonic() - t


def hello() -> dict[str, Any]:
    return {"ready": True, "pid": os.getpid(), "max_spec_bytes": MAX_SPEC_BYTES,
            "max_test_bytes": MAX_DATASET_BYTES, "max_model_bytes": MAX_MODEL_BYTES}


# --------------------------------------------------------------------------- the child process


def read_frame(inp: BinaryIO) -> bytes | None:
    head = inp.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes is over {MAX_FRAME}")
    body = inp.read(n)
    if len(body) != n:
        return None
    return body


def write_frame(out: BinaryIO, payload: bytes) -> None:
    out.write(struct.pack("<Q", len(payload)) + payload)
    out.flush()


class Session:
    """The child's side: the last test set (sent once per child) and the requests."""

    def __init__(self) -> None:
        self.test_digest: str | None = None
        self.test_bytes = b""

    def handle(self, req: dict[str, Any], blobs: dict[str, bytes]) -> dict[str, Any]:
        if "test" in blobs:
            self.test_bytes, self.test_digest = blobs["test"], hashlib.sha256(blobs["test"]).hexdigest()
        spec = parse_spec(blobs.get("spec", b""), req.get("model_type", ""))
        if req.get("op") == "limits":
            if isinstance(spec, Invalid):
                return outcome_json(spec)
            return {"max_model_bytes": spec.max_model_bytes, "max_test_bytes": MAX_DATASET_BYTES}
        if req.get("op") == "score":
            if isinstance(spec, Invalid):
                return outcome_json(spec)
            if req.get("test_digest") != self.test_digest:
                return outcome_json(Abstain("scorer lost the test set", retry=True))
            return outcome_json(score_model(blobs.get("model", b""), self.test_bytes, spec))
        return outcome_json(Abstain(f"unknown scorer request {str(req.get('op'))[:40]!r}"))


def limit_memory(budget_bytes: int) -> None:
    """Address-space limit: what the process maps now (PyTorch and Python) plus the budget."""
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return  # not Linux: the parent's time limit is the only bound
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = vm + budget_bytes
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pot.ml.scoring", description=__doc__.splitlines()[0])
    ap.add_argument("--memory-mb", type=int, default=0, help="address space allowed beyond the start (0: none)")
    ap.add_argument("--nice", type=int, default=0, help="lower this process's priority by so much")
    args = ap.parse_args(argv)
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    if args.nice:
        os.nice(args.nice)
    log.debug("warm-up took %.2fs", warm_up())
    if args.memory_mb > 0:
        limit_memory(args.memory_mb * 1024 * 1024)
    write_frame(out, json.dumps(hello()).encode())
    session = Session()
    while True:
        raw = read_frame(inp)
        if raw is None:
            return 0  # the parent went away
        req = json.loads(raw)
        blobs = {}
        for name in req.get("blobs", []):
            blob = read_frame(inp)
            if blob is None:
                return 0
            blobs[name] = blob
        try:
            answer = session.handle(req, blobs)
        except MemoryError:
            answer = outcome_json(Abstain("out of memory while scoring"))
        write_frame(out, json.dumps(answer).encode())


if __name__ == "__main__":
    sys.exit(main())
