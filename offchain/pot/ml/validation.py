"""Validation functions (the paper's VRF_Model): the same integer score on every honest machine.

An order names its validation function by ``modelType`` (docs/CONVENTIONS.md); clients never
supply code. Honest validators that disagree get slashed, so a function here must be a pure
function of (model bytes, test bytes):

- evaluation in float64 on the CPU, with ``torch.use_deterministic_algorithms(True)``, a fixed
  thread count and no denormal flushing, all set inside :func:`deterministic_cpu` and restored
  afterwards;
- fixed evaluation batches, so the shapes of every kernel call are the same everywhere;
- an integer score in parts per million, ``floor(1_000_000 * correct / n)``;
- the margin rule below for every decision that compares floats.

The margin rule (``classification-accuracy-v1``). Two honest machines compute logits that may
differ in the last bits (a BLAS that sums in another order, another CPU's FMA). A prediction is
correct only when the true class's logit beats every other logit by more than
``MARGIN_REL * max(1, max_j |z_j|)`` with ``MARGIN_REL = 1e-9``. Float64 rounding moves a logit
by roughly ``depth * width * 1.1e-16`` relative, many orders of magnitude below 1e-9 for the
models this network trains, so honest machines cannot disagree about a sample unless its margin
lies within that rounding of the threshold itself. That makes the common degenerate cases
exact: tied logits (a dead or zero model, duplicated class rows) always count as wrong,
instead of being decided by whichever rounding happens to win. Rows with NaN or infinite logits
count as wrong. A model built to sit exactly on the threshold cannot be ruled out by any float
rule; disputed scores go to the committee's recomputation (PoT.Verify), whose result stands.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pot.ml.datasets import MAX_DATASET_BYTES, Dataset
from pot.ml.modelfile import MAX_MODEL_BYTES, load_model

PPM = 1_000_000
MARGIN_REL = 1e-9
#: Evaluation batch size; fixed so that every machine runs the same kernel shapes.
EVAL_BATCH = 256
#: Threads used inside an evaluation. One thread: no parallel reduction order to vary.
EVAL_THREADS = 1

_eval_lock = threading.Lock()


class ValidationError(ValueError):
    """Unknown validation function, or inputs it cannot score."""


@dataclass(frozen=True)
class ValidationFunction:
    name: str
    #: (float64 eval-mode model, test data) -> score in ppm
    evaluate: Callable[[nn.Module, Dataset], int]
    doc: str


REGISTRY: dict[str, ValidationFunction] = {}


def register(fn: ValidationFunction) -> ValidationFunction:
    if fn.name in REGISTRY:
        raise ValueError(f"validation function {fn.name!r} is already registered")
    if len(fn.name.encode("ascii")) > 32:
        raise ValueError("a validation function's name must fit a bytes32 modelType")
    REGISTRY[fn.name] = fn
    return fn


def get(name: str) -> ValidationFunction:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValidationError(f"unknown validation function {name!r}; known: {sorted(REGISTRY)}") from None


@contextlib.contextmanager
def deterministic_cpu(threads: int = EVAL_THREADS) -> Iterator[None]:
    """Fixed threads, deterministic algorithms, no denormal flushing; all restored on exit.

    These are process-wide torch settings, so evaluations in one process are serialized by a
    lock; do not train in another thread of the same process meanwhile.
    """
    with _eval_lock:
        old_threads = torch.get_num_threads()
        old_det = torch.are_deterministic_algorithms_enabled()
        old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        torch.set_flush_denormal(False)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
            torch.set_num_threads(old_threads)


def logits_float64(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits of ``model`` for ``x`` in float64 on the CPU, in fixed batches (call inside deterministic_cpu)."""
    model = model.to(device="cpu", dtype=torch.float64).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), EVAL_BATCH):
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + EVAL_BATCH], dtype=np.float64))
            out.append(model(xb).numpy())
    return np.concatenate(out)


def correct_by_margin(logits: np.ndarray, y: np.ndarray, margin_rel: float = MARGIN_REL) -> np.ndarray:
    """Boolean per sample: the true class's logit beats every other by the margin (module doc)."""
    z = np.asarray(logits, dtype=np.float64)
    n, k = z.shape
    true = z[np.arange(n), y]
    others = z.copy()
    others[np.arange(n), y] = -np.inf
    best_other = others.max(axis=1)
    scale = np.maximum(1.0, np.abs(z).max(axis=1))
    finite = np.isfinite(z).all(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        return finite & (true - best_other > margin_rel * scale)


def _classification_accuracy_v1(model: nn.Module, data: Dataset) -> int:
    logits = logits_float64(model, data.x)
    correct = int(correct_by_margin(logits, data.y).sum())
    return correct * PPM // len(data.y)


register(
    ValidationFunction(
        "classification-accuracy-v1",
        _classification_accuracy_v1,
        "Share of test samples whose true class wins by the margin rule, in ppm (floor).",
    )
)


def score(
    model_bytes: bytes,
    test_npz_bytes: bytes,
    name: str = "classification-accuracy-v1",
    *,
    max_model_bytes: int = MAX_MODEL_BYTES,
    max_data_bytes: int = MAX_DATASET_BYTES,
) -> int:
    """Score a model file on a test set with a registered validation function (integer, ppm).

    Raises :class:`ValidationError` for an unknown function or test data that does not fit the
    model, and :class:`pot.ml.modelfile.ModelFileError` / :class:`pot.ml.datasets.DatasetError`
    for files that are not acceptable at all.
    """
    fn = get(name)
    model = load_model(model_bytes, max_bytes=max_model_bytes)
    data = Dataset.from_bytes(test_npz_bytes, max_bytes=max_data_bytes)
    try:
        data.check_for(model.pot_config)
    except ValueError as exc:
        raise ValidationError(f"test data does not fit the model: {exc}") from None
    with deterministic_cpu():
        result = fn.evaluate(model, data)
    if not isinstance(result, int) or not 0 <= result <= PPM:
        raise AssertionError(f"validation function {name!r} returned {result!r}, not a ppm integer")
    return result
