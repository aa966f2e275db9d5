"""Validation functions (the paper's VRF_Model): the same integer score on every honest machine.

An order names its validation function by ``modelType`` (docs/CONVENTIONS.md); clients never
supply code. Honest validators that disagree get slashed, so a function here is a pure function
of (model bytes, test bytes) for *every* model, adversarial ones included. That is why no float
result of a library kernel decides anything here: the model runs through its reference forward
pass (:mod:`pot.ml.reference`), a fixed sequence of IEEE-754 basic operations
(:mod:`pot.ml.exact`) whose bits do not depend on the CPU, the BLAS, the thread count, the batch
size, the order of the test samples or FTZ/DAZ flags; the metric turns those bits into integers
with exact rules, and only integers are summed. docs/VALIDATION.md has the argument.

Registered functions (each names the architectures it scores; a new rule gets a new version):

``classification-accuracy-v2``
    mlp, cnn, lstm, resnet. A sample is correct when all its logits are finite and the first
    index holding the largest logit is its label (ties go to the lowest index). Score:
    ``floor(1_000_000 * correct / n)`` (ppm).

``lm-bits-per-byte-v1``
    gpt, vocabulary 256 (bytes). Per predicted byte, the cross-entropy in bits,
    ``log2(sum_j exp(z_j - m)) + (m - z_y) / ln 2`` with ``m = max_j z_j``; a position with a
    non-finite logit, or a loss above 64 bits, costs 64 bits. Each loss is rounded to a
    multiple of 2**-32 bits (an integer) before anything is summed. Score:
    ``max(0, 8_000_000 - ceil(1_000_000 * total / bytes))``: 8 bits per byte (what a uniform
    guess costs) minus the model's bits per byte, in millionths, so that higher is better like
    every score.

A test set must also fit the validation budget: its reference cost (:func:`pot.ml.reference.sample_cost`
times the number of samples) at most :data:`MAX_EVAL_OPS`, so that any revealed model can be
scored inside the validation window on a reference validator (2 CPU cores, no GPU).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pot.ml.archs import check_config
from pot.ml.datasets import MAX_DATASET_BYTES, Dataset
from pot.ml.exact import INV_LN2, Backend, backend
from pot.ml.modelfile import MAX_MODEL_BYTES, decode
from pot.ml.reference import forward, prepare, sample_bytes, sample_cost

PPM = 1_000_000
DEFAULT = "classification-accuracy-v2"
#: Largest reference cost (basic operations, pot.ml.reference.sample_cost) of scoring one model
#: on one test set. The reference implementation does 0.5 to 1.4e9 of them per second on one
#: core of the reference validator (2 CPU cores, no GPU; docs/VALIDATION.md), so this is at
#: most two minutes per model.
MAX_EVAL_OPS = 60 * 10**9
#: What the budget assumes the reference validator does per second (the slow end of the range).
REFERENCE_OPS_PER_S = 5 * 10**8
#: Samples per chunk of the forward pass (memory only: samples never interact), and the memory
#: a chunk's intermediates may take: well inside a scoring process's limit (4 GiB by default).
EVAL_CHUNK = 256
EVAL_MEMORY_BYTES = 512 * 1024**2
#: lm-bits-per-byte: a position costs at most this many bits; losses are counted in 2**-32 bits.
MAX_BITS = 64
LOSS_SCALE = 2.0**32
UNIFORM_MICROBITS = 8 * PPM


class ValidationError(ValueError):
    """Unknown validation function, or inputs it cannot score."""


@dataclass(frozen=True)
class ValidationFunction:
    name: str
    #: architectures (pot.ml.archs) this function scores
    archs: frozenset[str]
    #: (backend, config, prepared params, data, chunk) -> score
    evaluate: Callable[[Backend, dict, Mapping[str, Any], Dataset, int], int]
    max_score: int
    doc: str
    #: what each sample's label is: "class" (y [N]) or "tokens" (y [N, T], next tokens)
    labels: str = "class"


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


def for_arch(arch: str) -> str:
    """The current validation function for an architecture (what a client orders by default)."""
    for name, fn in REGISTRY.items():
        if arch in fn.archs:
            return name
    raise ValidationError(f"no validation function scores architecture {arch!r}")


# --------------------------------------------------------------------------- metrics


def _chunks(data: Dataset, chunk: int):
    for i in range(0, len(data.y), chunk):
        yield data.x[i : i + chunk], data.y[i : i + chunk]


def correct_mask(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per sample: all logits finite and the first index of the largest one equals the label."""
    z = np.asarray(logits, dtype=np.float64)
    finite = np.isfinite(z).all(axis=1)
    z = np.where(finite[:, None], z, 0.0)
    pred = np.argmax(z == z.max(axis=1, keepdims=True), axis=1)  # first True: ties -> lowest index
    return finite & (pred == y)


def _accuracy(B: Backend, cfg: dict, params: Mapping[str, Any], data: Dataset, chunk: int) -> int:
    correct = 0
    for x, y in _chunks(data, chunk):
        correct += int(correct_mask(B.to_numpy(forward(B, cfg, params, x)), y).sum())
    return correct * PPM // len(data.y)


def loss_units(B: Backend, logits: Any, targets: np.ndarray) -> np.ndarray:
    """Cross-entropy in units of 2**-32 bits per position (int64), by the rule in the module doc."""
    m = B.tree_max(logits)
    s = B.tree_sum(B.exp(B.sub(logits, m[..., None])))
    z = B.to_numpy(logits)
    zy = np.take_along_axis(z, targets[..., None].astype(np.int64), axis=-1)[..., 0]
    zy = B.asarray(zy)
    loss = B.to_numpy(B.add(B.log2(s), B.mul(B.sub(m, zy), INV_LN2)))
    valid = np.isfinite(z).all(axis=-1) & np.isfinite(loss) & (loss <= MAX_BITS)
    loss = np.where(valid, loss, float(MAX_BITS))
    return np.floor(loss * LOSS_SCALE + 0.5).astype(np.int64)


def _bits_per_byte(B: Backend, cfg: dict, params: Mapping[str, Any], data: Dataset, chunk: int) -> int:
    total, count = 0, 0
    for x, y in _chunks(data, chunk):
        units = loss_units(B, forward(B, cfg, params, x), y)
        total += int(units.sum())  # int64: at most 2**38 per position, 2**24 positions per chunk
        count += units.size
    micro = -(-total * PPM // (count * int(LOSS_SCALE)))  # ceil
    return max(0, UNIFORM_MICROBITS - micro)


register(ValidationFunction(
    "classification-accuracy-v2", frozenset({"mlp", "cnn", "lstm", "resnet"}), _accuracy, PPM,
    "Share of test samples whose label is the first index of the largest (finite) logit, in ppm (floor).",
))
register(ValidationFunction(
    "lm-bits-per-byte-v1", frozenset({"gpt"}), _bits_per_byte, UNIFORM_MICROBITS,
    "8 minus the model's cross-entropy in bits per byte, in millionths (higher is better).",
    labels="tokens",
))


def bits_per_byte(score: int) -> float:
    """The bits per byte an lm-bits-per-byte score stands for."""
    return (UNIFORM_MICROBITS - score) / PPM


def describe_score(metric: str, score: int) -> str:
    """A score as people read it: ``"788,888 (78.89% correct)"``, ``"7,322,403 (0.678 bits per byte)"``."""
    fn = REGISTRY.get(metric)
    if fn is None:
        return f"{score:,}"
    if fn.labels == "tokens":
        return f"{score:,} ({bits_per_byte(score):.3f} bits per byte)"
    return f"{score:,} ({score / PPM:.2%} correct)"


# --------------------------------------------------------------------------- scoring


def eval_ops(config: Mapping[str, Any], samples: int) -> int:
    """Reference cost of scoring a model of ``config`` on ``samples`` test samples."""
    return sample_cost(check_config(config)) * samples


def reference_seconds(config: Mapping[str, Any], samples: int) -> float:
    """About how long the reference validator takes to score one such model (seconds, one core)."""
    return eval_ops(config, samples) / REFERENCE_OPS_PER_S


def check_fits(fn: ValidationFunction, cfg: Mapping[str, Any], data: Dataset) -> None:
    """Refuse (ValidationError) a model the function does not score, data that does not fit it,
    or a test set over the validation budget."""
    if cfg["arch"] not in fn.archs:
        raise ValidationError(f"{fn.name} scores {sorted(fn.archs)} models, not {cfg['arch']!r}")
    if fn.labels == "tokens" and cfg["num_classes"] != 256:
        raise ValidationError(f"{fn.name} needs a byte vocabulary (num_classes 256), not {cfg['num_classes']}")
    try:
        data.check_for(cfg)
    except ValueError as exc:
        raise ValidationError(f"test data does not fit the model: {exc}") from None
    cost = eval_ops(cfg, len(data.y))
    if cost > MAX_EVAL_OPS:
        raise ValidationError(f"scoring this model on {len(data.y):,} test samples costs {cost:.3g} operations; "
                              f"the validation budget is {MAX_EVAL_OPS:.3g}")


def evaluate(fn: ValidationFunction, cfg: dict, arrays: Mapping[str, np.ndarray], data: Dataset, *,
             impl: str = "numpy", device: str = "cpu", chunk: int = EVAL_CHUNK) -> int:
    """Score weights ``arrays`` (name -> float32 array) of architecture ``cfg`` on ``data``."""
    check_fits(fn, cfg, data)
    B = backend(impl, device)
    chunk = max(1, min(chunk, EVAL_MEMORY_BYTES // sample_bytes(cfg)))
    result = fn.evaluate(B, cfg, prepare(B, arrays), data, chunk)
    if not isinstance(result, int) or not 0 <= result <= fn.max_score:
        raise AssertionError(f"validation function {fn.name!r} returned {result!r}")
    return result


def score(
    model_bytes: bytes,
    test_npz_bytes: bytes,
    name: str = DEFAULT,
    *,
    max_model_bytes: int = MAX_MODEL_BYTES,
    max_data_bytes: int = MAX_DATASET_BYTES,
    impl: str = "numpy",
    device: str = "cpu",
    chunk: int = EVAL_CHUNK,
) -> int:
    """Score a model file on a test set with a registered validation function (an integer).

    Raises :class:`ValidationError` for an unknown function, a model it does not score or test
    data that does not fit the model, and :class:`pot.ml.modelfile.ModelFileError` /
    :class:`pot.ml.datasets.DatasetError` for files that are not acceptable at all. ``impl``
    and ``device`` pick the implementation (the same bits whichever); ``chunk`` only bounds memory.
    """
    fn = get(name)
    arrays, cfg = decode(model_bytes, max_bytes=max_model_bytes)
    data = Dataset.from_bytes(test_npz_bytes, max_bytes=max_data_bytes)
    return evaluate(fn, cfg, arrays, data, impl=impl, device=device, chunk=chunk)


def score_state(state: Mapping[str, Any], cfg: dict, data: Dataset, name: str, **kw: Any) -> int:
    """Score a state dict (torch tensors or arrays) as its canonical model file would score:
    the weights rounded to float32 exactly as the file stores them. For a miner's model selection."""
    arrays = {k: (v.detach().to("cpu", copy=False).float().numpy() if hasattr(v, "detach") else
                  np.asarray(v, dtype=np.float32)) for k, v in state.items()}
    return evaluate(get(name), cfg, arrays, data, **kw)
