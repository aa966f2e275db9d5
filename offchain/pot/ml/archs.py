"""Architectures a task spec can name, built from a JSON-able config dict.

A config is the whole description of a model's shape: it travels in the task spec and in the
metadata of every model file, and a validator rebuilds the model from it. Configs from the network
are hostile input, so :func:`check_config` bounds every field and :func:`param_shapes` computes the
parameter shapes on the ``meta`` device (no memory) before anything is allocated.

Examples::

    {"arch": "mlp",  "in_shape": [64],      "num_classes": 10, "hidden": [128, 64]}
    {"arch": "cnn",  "in_shape": [1, 8, 8], "num_classes": 10, "channels": [16, 32], "hidden": 64}
    {"arch": "lstm", "in_shape": [8, 8],    "num_classes": 10, "hidden": 64, "layers": 1}
    {"arch": "resnet", "in_shape": [3, 32, 32], "num_classes": 10, "widths": [16, 32, 64], "blocks": 1}
    {"arch": "gpt",  "in_shape": [64],      "num_classes": 256, "dim": 64, "heads": 4, "layers": 2, "mlp": 256}

Image and tabular models take float inputs (uint8 images are scaled by 1/255 first, see
:func:`pot.ml.datasets.model_input`); ``gpt`` takes byte tokens ``[N, T]`` (``in_shape`` is
``[T]``, the context length; ``num_classes`` is the vocabulary, 256 for bytes) and returns
next-token logits ``[N, T, vocab]``. Every architecture here has a reference forward pass in
fixed-order arithmetic (:mod:`pot.ml.reference`) that the validation functions score with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: Refuse models above this many parameters (float32: 4 bytes each). A validator must be able to
#: hold and score every revealed model; a task that wants bigger ones raises it knowingly.
MAX_PARAMS = 64 * 1024 * 1024
#: Bounds on the individual fields, so a config cannot ask for absurd tensors or loops.
MAX_DIM = 1 << 16
MAX_LAYERS = 16
#: longest context of a language model (tokens)
MAX_CONTEXT = 8192


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
    #: inputs are token ids (a language model), not features
    tokens: bool = False


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


class BatchNorm2d(nn.Module):
    """torch's BatchNorm2d (batch statistics in training, running ones in eval) without the
    int64 batch counter, so a model file holds float tensors only: weight, bias, running_mean,
    running_var."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                            self.momentum, self.eps)


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (a strided conv1x1-BN when the shape
    changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(cout)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), BatchNorm2d(cout))
                         if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """A residual CNN for images: a conv3x3-BN-ReLU stem, ``blocks`` residual blocks per width
    (the first of every stage after the first halves the side), global average pooling, Linear."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        c = cfg["in_shape"][0]
        widths = cfg["widths"]
        self.stem = nn.Sequential(nn.Conv2d(c, widths[0], 3, 1, 1, bias=False), BatchNorm2d(widths[0]), nn.ReLU())
        blocks: list[nn.Module] = []
        cin = widths[0]
        for s, width in enumerate(widths):
            for b in range(cfg["blocks"]):
                blocks.append(ResidualBlock(cin, width, 2 if s > 0 and b == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in self.qkv(x).split(d, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(approximate="tanh"), nn.Linear(mlp, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A decoder-only transformer language model (GPT-2 style, pre-norm): token and learned
    position embeddings, ``layers`` blocks of causal self-attention and a GELU MLP, a final
    layer norm and a Linear head to next-token logits. Bytes are the tokens: no tokenizer."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        dim, vocab = cfg["dim"], cfg["num_classes"]
        self.tok_emb = nn.Embedding(vocab, dim)
        self.pos_emb = nn.Parameter(torch.zeros(cfg["in_shape"][0], dim))
        self.blocks = nn.Sequential(*(TransformerBlock(dim, cfg["heads"], cfg["mlp"]) for _ in range(cfg["layers"])))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2 or name == "pos_emb":
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok_emb(idx.long()) + self.pos_emb[:t]
        return self.head(self.ln_f(self.blocks(x)))


register(Architecture("mlp", {"hidden": [128, 64]}, 0, MLP, MLP.__doc__ or ""))
register(Architecture("cnn", {"channels": [16, 32], "kernel": 3, "hidden": 64}, 3, CNN, CNN.__doc__ or ""))
register(Architecture("lstm", {"hidden": 64, "layers": 1}, 2, LSTMClassifier, LSTMClassifier.__doc__ or ""))
register(Architecture("resnet", {"widths": [16, 32, 64], "blocks": 1}, 3, ResNet, ResNet.__doc__ or ""))
register(Architecture("gpt", {"dim": 64, "heads": 4, "layers": 2, "mlp": 256}, 1, GPT, GPT.__doc__ or "",
                      tokens=True))


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
    elif name == "resnet":
        cfg["widths"] = _int_list(cfg, "widths", 1, 4096, 1, MAX_LAYERS)
        cfg["blocks"] = _int(cfg, "blocks", 1, MAX_LAYERS)
    elif name == "gpt":
        if cfg["in_shape"][0] > MAX_CONTEXT:
            raise ArchitectureError(f"context (in_shape) {cfg['in_shape'][0]} is over {MAX_CONTEXT}")
        cfg["dim"] = _int(cfg, "dim", 1, MAX_DIM)
        cfg["heads"] = _int(cfg, "heads", 1, 256)
        cfg["layers"] = _int(cfg, "layers", 1, MAX_LAYERS * 4)
        cfg["mlp"] = _int(cfg, "mlp", 1, MAX_DIM)
        if cfg["dim"] % cfg["heads"]:
            raise ArchitectureError(f"dim {cfg['dim']} must be a multiple of heads {cfg['heads']}")
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
