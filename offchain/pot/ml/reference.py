"""Reference forward passes: every architecture of :mod:`pot.ml.archs` in fixed-order arithmetic.

Each function here computes what the architecture's torch module computes, but as a fixed
sequence of the primitives of :mod:`pot.ml.exact`, so the logits are the same bits on every
honest machine (docs/VALIDATION.md). The torch modules are what miners train; these are what
validators score. Weights come straight from a model file (float32, converted exactly to
float64); inputs are float32 features, uint8 images (divided by 255, correctly rounded) or byte
tokens.

:func:`sample_cost` counts the basic operations one sample costs, for the validation budget;
:func:`sample_bytes` bounds the memory one sample's intermediates take, so that the number of
samples evaluated at once keeps a scoring process within its memory limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pot.ml.exact import Backend

Params = Mapping[str, Any]

# approximate basic operations per element of the composite functions (for the budget only)
_EXP_OPS, _LOG_OPS = 45, 40
_TANH_OPS, _SIGMOID_OPS, _GELU_OPS = _EXP_OPS + 8, _EXP_OPS + 4, _EXP_OPS + 16


def model_input(B: Backend, x: np.ndarray) -> Any:
    """Features as float64: float inputs exactly, uint8 images divided by 255 (correctly rounded)."""
    if x.dtype == np.uint8:
        return B.div(B.asarray(x), 255.0)
    return B.asarray(x)


def _mlp(B: Backend, cfg: dict, P: Params, x: Any) -> Any:
    h = B.reshape(x, (x.shape[0], math.prod(cfg["in_shape"])))
    idx = 1  # net.0 is the Flatten, then Linear, ReLU pairs
    for _ in cfg["hidden"]:
        h = B.relu(B.linear(h, P[f"net.{idx}.weight"], P[f"net.{idx}.bias"]))
        idx += 2
    return B.linear(h, P[f"net.{idx}.weight"], P[f"net.{idx}.bias"])


def _cnn(B: Backend, cfg: dict, P: Params, x: Any) -> Any:
    _, h, w = cfg["in_shape"]
    k = cfg["kernel"]
    idx = 0
    for _ in cfg["channels"]:
        x = B.relu(B.conv2d(x, P[f"features.{idx}.weight"], P[f"features.{idx}.bias"], pad=k // 2))
        idx += 2
        if h >= 2 and w >= 2:
            x = B.max_pool2(x)
            h, w = h // 2, w // 2
            idx += 1
    x = B.reshape(x, (x.shape[0], -1))
    x = B.relu(B.linear(x, P["head.1.weight"], P["head.1.bias"]))
    return B.linear(x, P["head.3.weight"], P["head.3.bias"])


def _lstm(B: Backend, cfg: dict, P: Params, x: Any) -> Any:
    """torch's LSTM, gates (i, f, g, o): ((x W_ih^T + b_ih) + h W_hh^T) + b_hh;
    c = f*c + i*g; h = o * tanh(c); the last step's h feeds the head."""
    n, steps, _ = x.shape
    hid = cfg["hidden"]
    seq = x
    for layer in range(cfg["layers"]):
        w_ih, w_hh = P[f"lstm.weight_ih_l{layer}"], P[f"lstm.weight_hh_l{layer}"]
        b_ih, b_hh = P[f"lstm.bias_ih_l{layer}"], P[f"lstm.bias_hh_l{layer}"]
        feats = seq.shape[2]
        xw = B.reshape(B.linear(B.reshape(seq, (n * steps, feats)), w_ih, b_ih), (n, steps, 4 * hid))
        h = B.full((n, hid), 0.0)
        c = B.full((n, hid), 0.0)
        outs = []
        for t in range(steps):
            g = B.add(B.add(xw[:, t], B.linear(h, w_hh, None)), b_hh)
            i, f = B.sigmoid(g[:, :hid]), B.sigmoid(g[:, hid : 2 * hid])
            gg, o = B.tanh(g[:, 2 * hid : 3 * hid]), B.sigmoid(g[:, 3 * hid :])
            c = B.add(B.mul(f, c), B.mul(i, gg))
            h = B.mul(o, B.tanh(c))
            outs.append(h)
        seq = B.stack(outs)  # [steps, n, hid]
        seq = B.contiguous(B.permute(seq, (1, 0, 2)))
    return B.linear(h, P["head.weight"], P["head.bias"])


def _bn(B: Backend, P: Params, name: str, x: Any) -> Any:
    return B.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                        P[f"{name}.bias"], 1e-5)


def _resnet(B: Backend, cfg: dict, P: Params, x: Any) -> Any:
    x = B.relu(_bn(B, P, "stem.1", B.conv2d(x, P["stem.0.weight"], None, pad=1)))
    cin, i = cfg["widths"][0], 0
    for s, width in enumerate(cfg["widths"]):
        for b in range(cfg["blocks"]):
            stride = 2 if s > 0 and b == 0 else 1
            pre = f"blocks.{i}"
            out = B.relu(_bn(B, P, f"{pre}.bn1", B.conv2d(x, P[f"{pre}.conv1.weight"], None, stride, 1)))
            out = _bn(B, P, f"{pre}.bn2", B.conv2d(out, P[f"{pre}.conv2.weight"], None, 1, 1))
            if stride != 1 or cin != width:
                short = _bn(B, P, f"{pre}.shortcut.1", B.conv2d(x, P[f"{pre}.shortcut.0.weight"], None, stride, 0))
            else:
                short = x
            x = B.relu(B.add(out, short))
            cin, i = width, i + 1
    n, c, h, w = x.shape
    pooled = B.div(B.tree_sum(B.reshape(x, (n, c, h * w))), float(h * w))
    return B.linear(pooled, P["head.weight"], P["head.bias"])


def _gpt(B: Backend, cfg: dict, P: Params, tokens: np.ndarray) -> Any:
    """Pre-norm GPT: x = emb + pos; per block x = x + attn(ln1 x), x = x + mlp(ln2 x); head(ln_f x).
    Attention per head: s = (q k^T) * (1/sqrt(d_head)), future positions -inf, softmax, s v."""
    n, t = tokens.shape
    d, heads = cfg["dim"], cfg["heads"]
    hd = d // heads
    scale = B.rsqrt(B.full((1,), float(hd)))  # the definition's own 1/sqrt, not a library's
    x = B.add(B.take_rows(P["tok_emb.weight"], tokens), P["pos_emb"][:t])  # [n, t, d]
    future = B.as_mask(np.triu(np.ones((t, t), dtype=bool), 1))
    for layer in range(cfg["layers"]):
        pre = f"blocks.{layer}"
        a = B.layer_norm(x, P[f"{pre}.ln1.weight"], P[f"{pre}.ln1.bias"], 1e-5)
        qkv = B.reshape(B.linear(B.reshape(a, (n * t, d)), P[f"{pre}.attn.qkv.weight"], P[f"{pre}.attn.qkv.bias"]),
                        (n, t, 3, heads, hd))
        q = B.contiguous(B.permute(qkv[:, :, 0], (0, 2, 1, 3)))  # [n, heads, t, hd]
        k = B.contiguous(B.permute(qkv[:, :, 1], (0, 2, 3, 1)))  # [n, heads, hd, t]
        v = B.contiguous(B.permute(qkv[:, :, 2], (0, 2, 1, 3)))
        s = B.mul(B.matmul(q, k), scale)
        s = B.where(future, -math.inf, s)
        y = B.matmul(B.softmax(s), v)  # [n, heads, t, hd]
        y = B.reshape(B.contiguous(B.permute(y, (0, 2, 1, 3))), (n * t, d))
        x = B.add(x, B.reshape(B.linear(y, P[f"{pre}.attn.proj.weight"], P[f"{pre}.attn.proj.bias"]), (n, t, d)))
        m = B.layer_norm(x, P[f"{pre}.ln2.weight"], P[f"{pre}.ln2.bias"], 1e-5)
        m = B.gelu(B.linear(B.reshape(m, (n * t, d)), P[f"{pre}.mlp.0.weight"], P[f"{pre}.mlp.0.bias"]))
        x = B.add(x, B.reshape(B.linear(m, P[f"{pre}.mlp.2.weight"], P[f"{pre}.mlp.2.bias"]), (n, t, d)))
    x = B.layer_norm(x, P["ln_f.weight"], P["ln_f.bias"], 1e-5)
    return B.reshape(B.linear(B.reshape(x, (n * t, d)), P["head.weight"], None), (n, t, cfg["num_classes"]))


FORWARD: dict[str, Callable[[Backend, dict, Params, Any], Any]] = {
    "mlp": _mlp, "cnn": _cnn, "lstm": _lstm, "resnet": _resnet, "gpt": _gpt,
}


def prepare(B: Backend, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Model-file weights (float32) as backend float64 arrays (exact), zeros made +0.0."""
    return {name: B.asarray(a) for name, a in arrays.items()}


def forward(B: Backend, cfg: dict, params: Params, x: np.ndarray) -> Any:
    """Logits of the model (``cfg``, prepared ``params``) for a batch ``x`` (float features,
    uint8 images or byte tokens)."""
    arch = cfg["arch"]
    if arch == "gpt":
        return _gpt(B, cfg, params, np.asarray(x, dtype=np.int64))
    return FORWARD[arch](B, cfg, params, model_input(B, x))


def sample_cost(cfg: dict) -> int:
    """Basic operations (about) that one sample (one window for ``gpt``) costs the reference.

    Multiply-adds count 2, every elementwise operation 1 (plus its flush: x2 overall), exp and
    log the size of their polynomial. An estimate for the budget, not part of any score."""
    arch = cfg["arch"]
    ops = 0
    if arch == "mlp":
        width = math.prod(cfg["in_shape"])
        for h in [*cfg["hidden"], cfg["num_classes"]]:
            ops += 2 * width * h + 2 * h
            width = h
    elif arch == "cnn":
        c, h, w = cfg["in_shape"]
        k = cfg["kernel"]
        for out in cfg["channels"]:
            ops += (2 * c * k * k + 3) * out * h * w
            if h >= 2 and w >= 2:
                h, w = h // 2, w // 2
            c = out
        ops += 2 * c * h * w * cfg["hidden"] + 2 * cfg["hidden"] * cfg["num_classes"]
    elif arch == "lstm":
        steps, feats = cfg["in_shape"]
        hid = cfg["hidden"]
        for _ in range(cfg["layers"]):
            ops += steps * (2 * 4 * hid * (feats + hid) + 3 * _SIGMOID_OPS * hid + 2 * _TANH_OPS * hid + 8 * hid)
            feats = hid
        ops += 2 * hid * cfg["num_classes"]
    elif arch == "resnet":
        c, h, w = cfg["in_shape"]
        w0 = cfg["widths"][0]
        ops += (2 * c * 9 + 6) * w0 * h * w
        cin = w0
        for s, width in enumerate(cfg["widths"]):
            for b in range(cfg["blocks"]):
                if s > 0 and b == 0:
                    h, w = (h + 1) // 2, (w + 1) // 2
                    ops += (2 * cin + 4) * width * h * w
                ops += (2 * cin * 9 + 2 * width * 9 + 16) * width * h * w
                cin = width
        ops += cin * h * w + 2 * cin * cfg["num_classes"]
    elif arch == "gpt":
        (t,) = cfg["in_shape"]
        d, m, v = cfg["dim"], cfg["mlp"], cfg["num_classes"]
        per_layer = (2 * d * 3 * d + 2 * d * d + 2 * 2 * d * m + _GELU_OPS * m + 20 * d  # projections, norms
                     + 2 * 2 * t * d + (_EXP_OPS + 6) * t * cfg["heads"])  # attention over the window (avg t/2, x2)
        ops += t * (cfg["layers"] * per_layer + 2 * d * v + (_EXP_OPS + 4) * v + _LOG_OPS)
    else:  # pragma: no cover - every registered architecture has a cost
        raise ValueError(f"no cost model for architecture {arch!r}")
    return 2 * ops


def sample_bytes(cfg: dict) -> int:
    """About the largest memory (bytes) one sample's intermediates take at once in the reference:
    the biggest activation, convolution patches or attention matrix, times the temporaries an
    elementwise function or a matrix product keeps alive (measured: up to about twelve)."""
    arch = cfg["arch"]
    f64, temps = 8, 12
    if arch == "mlp":
        biggest = max([math.prod(cfg["in_shape"]), *cfg["hidden"], cfg["num_classes"]])
    elif arch == "cnn":
        c, h, w = cfg["in_shape"]
        k = cfg["kernel"]
        biggest = 0
        for out in cfg["channels"]:
            biggest = max(biggest, (2 * c * k * k + out) * h * w)
            if h >= 2 and w >= 2:
                h, w = h // 2, w // 2
            c = out
    elif arch == "lstm":
        steps, feats = cfg["in_shape"]
        biggest = steps * (4 * cfg["hidden"] + feats + cfg["hidden"])
    elif arch == "resnet":
        c, h, w = cfg["in_shape"]
        widest = max(c, *cfg["widths"])
        biggest = (2 * 9 * widest + widest) * h * w
    elif arch == "gpt":
        (t,) = cfg["in_shape"]
        biggest = max(cfg["heads"] * t * t, t * cfg["num_classes"], t * cfg["mlp"], 3 * t * cfg["dim"])
    else:  # pragma: no cover - every registered architecture has a size
        raise ValueError(f"no memory model for architecture {arch!r}")
    return biggest * f64 * temps
