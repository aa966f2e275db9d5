"""Architectures a task spec can name, built from a JSON-able config dict.

A config is the whole description of a model's shape: it travels in the task spec and in the
metadata of every model file, and a validator rebuilds the model from it. Configs from the network
are hostile input, so :func:`check_config` bounds every field and :func:`param_shapes` computes the
parameter shapes on the ``meta`` device (no memory) before anything is allocated.

Examples::

    {"arch": "mlp",  "in_shape": [64],      "num_classes": 10, "hidden": [128, 64]}
    {"arch": "cnn",  "in_shape": [1, 8, 8], "num_classes": 10, "channels": [16, 32], "hidden": 64}
    {"arch": "lstm", "in_shape": [8, 8],    "num_classes": 10, "hidden": 64, "layers": 1}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: Refuse models above this many parameters (float32: 4 bytes each). A validator must be able to
#: hold and score every revealed model; a task that wants bigger ones raises it knowingly.
MAX_PARAMS = 64 * 1024 * 1024
#: Bounds on the individual fields, so a config cannot ask for absurd tensors or loops.
MAX_DIM = 1 << 16
MAX_LAYERS = 16


class ArchitectureError(ValueError):
    """A config names an unknown architecture or has a field out of bounds."""


@dataclass(frozen=True)
class Architecture:
    name: str
    #: keys beyond arch/in_shape/num_classes, with their defaults
    defaults: Mapping[str, Any]
    #: number of dimensions of one sample (without the batch dimension)
    in_ndim: int
    build: Callable[[dict[str, Any]], nn.Module]
    doc: str


REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    if arch.name in REGISTRY:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    REGISTRY[arch.name] = arch
    return arch


# --------------------------------------------------------------------------- models


class MLP(nn.Module):
    """Flatten, then Linear+ReLU per hidden width, then a Linear head."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        width = math.prod(cfg["in_shape"])
        layers: list[nn.Module] = [nn.Flatten()]
        for h in cfg["hidden"]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, cfg["num_classes"]))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """Conv3x3+ReLU+MaxPool2 blocks (pooling while the side allows), then an MLP head.

    No batch norm on purpose: its running statistics are buffers that change in eval vs train
    mode and would need their own canonical form; plain conv nets are enough for the tasks here.
    """

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        c, h, w = cfg["in_shape"]
        k = cfg["kernel"]
        blocks: list[nn.Module] = []
        for out in cfg["channels"]:
            blocks += [nn.Conv2d(c, out, k, padding=k // 2), nn.ReLU()]
            if h >= 2 and w >= 2:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, cfg["hidden"]),
            nn.ReLU(),
            nn.Linear(cfg["hidden"], cfg["num_classes"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class LSTMClassifier(nn.Module):
    """An LSTM over a [steps, features] sequence; the last step's hidden state feeds a Linear head."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        _, features = cfg["in_shape"]
        self.lstm = nn.LSTM(features, cfg["hidden"], num_layers=cfg["layers"], batch_first=True)
        self.head = nn.Linear(cfg["hidden"], cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


register(Architecture("mlp", {"hidden": [128, 64]}, 0, MLP, MLP.__doc__ or ""))
register(Architecture("cnn", {"channels": [16, 32], "kernel": 3, "hidden": 64}, 3, CNN, CNN.__doc__ or ""))
register(Architecture("lstm", {"hidden": 64, "layers": 1}, 2, LSTMClassifier, LSTMClassifier.__doc__ or ""))


# --------------------------------------------------------------------------- config checks


def _int(cfg: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    v = cfg[key]
    # bool is an int subclass; `true` in JSON is not a width
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ArchitectureError(f"config field {key!r} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _int_list(cfg: Mapping[str, Any], key: str, lo: int, hi: int, min_len: int, max_len: int) -> list[int]:
    v = cfg[key]
    if not isinstance(v, list | tuple) or not min_len <= len(v) <= max_len:
        raise ArchitectureError(f"config field {key!r} must be a list of {min_len}..{max_len} integers, got {v!r}")
    return [_int({key: x}, key, lo, hi) for x in v]


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a config and return its normal form: defaults filled in, lists as lists.

    The normal form is what goes into model files, so two spellings of the same model
    (defaults given or omitted) give the same bytes.
    """
    if not isinstance(config, Mapping):
        raise ArchitectureError(f"a model config must be a JSON object, got {type(config).__name__}")
    name = config.get("arch")
    if name not in REGISTRY:
        raise ArchitectureError(f"unknown architecture {name!r}; known: {sorted(REGISTRY)}")
    arch = REGISTRY[name]
    allowed = {"arch", "in_shape", "num_classes", *arch.defaults}
    extra = set(config) - allowed
    if extra:
        raise ArchitectureError(f"unknown config fields for {name!r}: {sorted(extra)}; allowed: {sorted(allowed)}")
    missing = {"in_shape", "num_classes"} - set(config)
    if missing:
        raise ArchitectureError(f"config for {name!r} lacks {sorted(missing)}")
    cfg: dict[str, Any] = {**arch.defaults, **config}
    if arch.in_ndim:
        cfg["in_shape"] = _int_list(cfg, "in_shape", 1, MAX_DIM, arch.in_ndim, arch.in_ndim)
    else:
        cfg["in_shape"] = _int_list(cfg, "in_shape", 1, MAX_DIM, 1, 4)
    if math.prod(cfg["in_shape"]) > MAX_PARAMS:
        raise ArchitectureError(f"in_shape {cfg['in_shape']} is too large")
    cfg["num_classes"] = _int(cfg, "num_classes", 2, MAX_DIM)
    if name == "mlp":
        cfg["hidden"] = _int_list(cfg, "hidden", 1, MAX_DIM, 0, MAX_LAYERS)
    elif name == "cnn":
        cfg["channels"] = _int_list(cfg, "channels", 1, 4096, 1, MAX_LAYERS)
        cfg["kernel"] = _int(cfg, "kernel", 1, 15)
        if cfg["kernel"] % 2 == 0:
            raise ArchitectureError("config field 'kernel' must be odd (same padding)")
        cfg["hidden"] = _int(cfg, "hidden", 1, MAX_DIM)
    elif name == "lstm":
        cfg["hidden"] = _int(cfg, "hidden", 1, MAX_DIM)
        cfg["layers"] = _int(cfg, "layers", 1, MAX_LAYERS)
    cfg["arch"] = name
    return dict(sorted(cfg.items()))


def param_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the model a config describes, without allocating it."""
    cfg = check_config(config)
    with torch.device("meta"):
        model = REGISTRY[cfg["arch"]].build(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    total = sum(math.prod(s) for s in shapes.values())
    if total > MAX_PARAMS:
        raise ArchitectureError(f"model has {total:,} parameters; the limit is {MAX_PARAMS:,}")
    return shapes


def build_model(config: Mapping[str, Any], seed: int | None = 0) -> nn.Module:
    """Build a float32 CPU model; ``seed`` fixes the initial weights (None: leave them to the caller).

    The global RNG is forked, so building a model does not disturb the caller's random stream.
    The normal-form config is kept on the module as ``pot_config`` for :func:`pot.ml.modelfile.save_model`.
    """
    cfg = check_config(config)
    param_shapes(cfg)  # the size limit, checked before any allocation
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
                raise ArchitectureError(f"seed must be an integer in [0, 2**63), got {seed!r}")
            torch.manual_seed(seed)
        model = REGISTRY[cfg["arch"]].build(cfg)
    model = model.to(dtype=torch.float32)
    model.pot_config = cfg  # type: ignore[assignment]
    return model
