"""The task spec: what a client asks miners to train (the file behind an order's ``specCid``).

Canonical JSON (sorted keys, no spaces), so a spec has one CID::

    {
      "version": 1,
      "model": {"arch": "cnn", "in_shape": [1, 8, 8], "num_classes": 10, ...},
      "init": {"seed": 0}            or  {"weights_cid": "bafy..."},
      "train_data_cid": "bafy...",
      "metric": "classification-accuracy-v2",
      "test_samples": 450,           (optional)
      "hints": {"epochs": 30, "batch_size": 64, "lr": 0.001, "optimizer": "adam", "weight_decay": 0.0}
    }

``metric`` must equal the order's ``modelType`` (the workers check that) and must score the
model's architecture. ``test_samples`` is the size of the client's hidden test set: with it,
anyone can check from the spec alone that scoring a model of this architecture fits the
validation budget (:data:`pot.ml.validation.MAX_EVAL_OPS`). ``weights_cid`` names a model file
to start from (fine-tuning); it must be of the spec's architecture. Hints are advice to
miners: they compete, and any training that gives a better model wins.

The spec fixes the architecture (ARCHITECTURE.md §3): a revealed model whose config is not the spec's
``model`` scores 0 with a reason (:meth:`TaskSpec.check_model`), decided from the model file's
header before any weight is read; and the exact size of that architecture's canonical file is
the order's model size limit (:attr:`TaskSpec.max_model_bytes`), which is what a validator
passes to the store when it fetches a model, so a larger file is refused before it is read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pot.ml.archs import check_config
from pot.ml.modelfile import ModelHeader, file_size_for, loads_bounded
from pot.ml.validation import DEFAULT, MAX_EVAL_OPS, eval_ops
from pot.ml.validation import get as get_validation

MAX_SPEC_BYTES = 64 * 1024
#: {"model": {"in_shape": [...]}} is three levels; one to spare for fields to come.
SPEC_DEPTH = 4
OPTIMIZERS = ("adam", "adamw", "sgd")


class SpecError(ValueError):
    """A task spec is malformed."""


class SpecMismatch(SpecError):
    """A model file is not what its order's spec asks for."""


@dataclass(frozen=True)
class TrainHints:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    #: share of the training data a miner keeps aside to pick its best model
    holdout_fraction: float = 0.1

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise SpecError(f"hints: {msg}")

        if type(self.epochs) is not int or not 1 <= self.epochs <= 100_000:
            bad(f"epochs must be an integer in [1, 100000], got {self.epochs!r}")
        if type(self.batch_size) is not int or not 1 <= self.batch_size <= 1 << 20:
            bad(f"batch_size must be an integer in [1, 2**20], got {self.batch_size!r}")
        if not isinstance(self.lr, int | float) or isinstance(self.lr, bool) or not 0 < self.lr < 10:
            bad(f"lr must be a number in (0, 10), got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            bad(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        wd = self.weight_decay
        if not isinstance(wd, int | float) or isinstance(wd, bool) or not 0 <= wd < 1:
            bad(f"weight_decay must be a number in [0, 1), got {wd!r}")
        hf = self.holdout_fraction
        if not isinstance(hf, int | float) or isinstance(hf, bool) or not 0 < hf < 1:
            bad(f"holdout_fraction must be a number in (0, 1), got {hf!r}")


@dataclass(frozen=True)
class TaskSpec:
    model: dict[str, Any]
    train_data_cid: str
    metric: str = DEFAULT
    init_seed: int | None = 0
    init_weights_cid: str | None = None
    hints: TrainHints = field(default_factory=TrainHints)
    test_samples: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, dict) or not isinstance(self.model.get("arch"), str):
            raise SpecError("model must be a JSON object naming its arch as a string")
        try:
            object.__setattr__(self, "model", check_config(self.model))
            fn = get_validation(self.metric)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        if self.model["arch"] not in fn.archs:
            raise SpecError(f"metric {self.metric} scores {sorted(fn.archs)} models, not {self.model['arch']!r}")
        if self.test_samples is not None:
            n = self.test_samples
            if type(n) is not int or not 1 <= n <= 1 << 32:
                raise SpecError(f"test_samples must be a positive integer, got {n!r}")
            if eval_ops(self.model, n) > MAX_EVAL_OPS:
                raise SpecError(f"scoring this model on {n:,} test samples costs {eval_ops(self.model, n):.3g} "
                                f"operations; the validation budget is {MAX_EVAL_OPS:.3g}: use fewer test "
                                "samples or a smaller model")
        if (self.init_seed is None) == (self.init_weights_cid is None):
            raise SpecError("init must give exactly one of seed and weights_cid")
        if self.init_seed is not None and (type(self.init_seed) is not int or not 0 <= self.init_seed < 2**63):
            raise SpecError(f"init seed must be an integer in [0, 2**63), got {self.init_seed!r}")
        for name in ("train_data_cid", "init_weights_cid"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not 1 <= len(v) <= 128 or not v.isascii()):
                raise SpecError(f"{name} must be a CID string, got {v!r}")

    @property
    def max_model_bytes(self) -> int:
        """Size of the canonical file of the spec's architecture: no model of this order is larger."""
        return file_size_for(self.model)

    def check_model(self, header: ModelHeader) -> None:
        """Raise :class:`SpecMismatch` unless the model file's architecture is the spec's one.

        Needs only the header, so a model of the wrong family or size is refused before its
        weights are loaded."""
        got, want = header.config, self.model
        if got["arch"] != want["arch"]:
            raise SpecMismatch(f"model is a {got['arch']!r}; the order's spec asks for a {want['arch']!r}")
        if got != want:
            diffs = [f"{k} is {got.get(k)!r}, the spec says {want.get(k)!r}"
                     for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
            raise SpecMismatch(f"model does not have the spec's architecture: {'; '.join(diffs)[:300]}")

    def to_dict(self) -> dict[str, Any]:
        init: dict[str, Any] = (
            {"seed": self.init_seed} if self.init_seed is not None else {"weights_cid": self.init_weights_cid}
        )
        d = {
            "version": 1,
            "model": self.model,
            "init": init,
            "train_data_cid": self.train_data_cid,
            "metric": self.metric,
            "hints": asdict(self.hints),
        }
        if self.test_samples is not None:
            d["test_samples"] = self.test_samples
        return d

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def from_dict(cls, d: Any) -> TaskSpec:
        if not isinstance(d, dict):
            raise SpecError("a task spec is a JSON object")
        if d.get("version") != 1:
            raise SpecError(f"unsupported task spec version {d.get('version')!r}")
        extra = set(d) - {"version", "model", "init", "train_data_cid", "metric", "hints", "test_samples"}
        if extra:
            raise SpecError(f"unknown task spec fields {sorted(extra)}")
        init = d.get("init")
        if not isinstance(init, dict) or len(init) != 1 or not set(init) <= {"seed", "weights_cid"}:
            raise SpecError('init must be {"seed": N} or {"weights_cid": CID}')
        hints = d.get("hints", {})
        if not isinstance(hints, dict):
            raise SpecError("hints must be a JSON object")
        try:
            th = TrainHints(**hints)
        except TypeError as exc:
            raise SpecError(f"hints: {exc}") from None
        if "model" not in d or "train_data_cid" not in d:
            raise SpecError("a task spec needs model and train_data_cid")
        return cls(
            model=d["model"],
            train_data_cid=d["train_data_cid"],
            metric=d.get("metric", DEFAULT),
            init_seed=init.get("seed"),
            init_weights_cid=init.get("weights_cid"),
            hints=th,
            test_samples=d.get("test_samples"),
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> TaskSpec:
        if len(data) > MAX_SPEC_BYTES:
            raise SpecError(f"task spec is over {MAX_SPEC_BYTES} bytes")
        try:
            text = data.decode() if isinstance(data, bytes | bytearray) else data
        except UnicodeDecodeError as exc:
            raise SpecError(f"task spec is not JSON: {exc}") from None
        # a client's file, as hostile as a miner's model: bounded like a model header
        return cls.from_dict(loads_bounded(text, max_depth=SPEC_DEPTH, what="task spec", error=SpecError,
                                           floats=True))
