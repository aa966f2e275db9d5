"""Fixed-order IEEE-754 arithmetic: the numeric core of the validation functions.

A validation function must give the same integer on every honest machine for every model,
adversarial ones included (ARCHITECTURE.md §3, docs/VALIDATION.md has the whole argument). Library
kernels cannot promise that: a BLAS sums a dot product in an order of its choosing (blocking,
SIMD lanes, threads, FMA), so a model whose hidden units carry ±1e8 that cancel gets different
logits from MKL, OpenBLAS and another batch size. So every number here comes from a sequence of
IEEE-754 binary64 basic operations (+, -, *, /; each correctly rounded, hence the same bits on
every conforming machine) whose order is part of the definition:

- elementwise operations act on each element on its own, so vectorising them across elements
  (SIMD width, threads, chunks of the batch, a GPU) cannot change a result; each is a separate
  array operation, so nothing is ever contracted into a fused multiply-add;
- a matrix product sums over the reduction index k in increasing order,
  ``acc = p_0; acc = acc + p_k`` with ``p_k = x_k * w_k``: one rounding per step, in that order;
- a sum over an axis is a fixed pairwise tree (:meth:`Backend.tree_sum`);
- exp, log2, 1/sqrt, sigmoid, tanh, GELU, softmax, layer norm and batch norm are built from
  those operations with fixed constants (range reduction + a fixed polynomial or Newton steps):
  never a libm or vector-math call, whose last bit differs between platforms. Even square root
  is built, not called: IEEE-754 makes it correctly rounded, but torch's float64 sqrt on CPUs
  is not (about 1 in 80 results is 1 ulp off on large tensors), so trusting it would make the
  definition depend on which library a validator has;
- max, comparisons, floor, negation and power-of-two scaling are exact.

Denormals. A process may run with flush-to-zero / denormals-are-zero set (a library built with
-ffast-math sets them at load time; GPUs flush by default in some modes), and then a result in
the denormal range comes out as 0 where another machine keeps it. So the definition flushes
first: every primitive's result (each elementwise operation, each finished matrix product or
sum) with ``|v| < TINY = 2**-256`` is replaced by +0.0 (:meth:`Backend.flush`). Every operand is
then 0 or at least 2**-256 in magnitude (model weights are float32: at least 2**-149), so a
product of two operands is at least 2**-512 and a sum of them is a multiple of 2**-564 — the
partial sums inside a matrix product or tree sum never reach the denormal range (2**-1022), and
a single operation that does is flushed to the same +0.0 with or without FTZ. The flush also
makes every zero +0.0, so the sign of zero never depends on an implementation.

Inputs. Weights and features are float32; converting them to float64 is exact, except that a
CPU with DAZ set reads float32 denormals (below 2**-126) as zero while converting, so
:func:`f32_to_f64` converts those from their bits instead (a float32 denormal is a normal float64).

NaN and infinity follow IEEE-754 (they propagate; max propagates NaN); which NaN (payload, sign)
never matters: the metrics only ask whether a value is finite.

Two implementations of the same definition live here: :class:`NumpyBackend` (the reference:
numpy's elementwise ufuncs, one thread) and :class:`TorchBackend` (float64 tensors on any
device, for GPUs and as a second opinion). Tests check that they agree bit for bit.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

#: Results below this magnitude are flushed to +0.0 (module doc).
TINY = 2.0**-256
#: exp(x) for x above this is +inf, below EXP_LO it is +0.0 (exp(-200) < TINY anyway).
EXP_HI = 709.0
EXP_LO = -200.0
# Cody-Waite split of ln 2: LN2_HI has 32 significant bits, so n * LN2_HI is exact for |n| < 2**21.
LN2_HI = float.fromhex("0x1.62e42feep-1")
LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")  # ln 2 - LN2_HI rounded to nearest (fdlibm's pair)
INV_LN2 = float.fromhex("0x1.71547652b82fep0")  # 1/ln 2 rounded to nearest
SQRT2 = float.fromhex("0x1.6a09e667f3bcdp0")
#: e**r = sum r**k / k!, k = 0..13, for |r| <= ln(2)/2 (truncation error below 5e-18).
EXP_COEFFS = tuple(float(Fraction(1, math.factorial(k))) for k in range(14))
#: ln(m) = 2 (s + s**3/3 + s**5/5 + ...), s = (m-1)/(m+1), |s| <= 0.172: 1/(2k+1), k = 1..11.
LOG_COEFFS = tuple(float(Fraction(1, 2 * k + 1)) for k in range(1, 12))
GELU_K0 = float.fromhex("0x1.9884533d43651p-1")  # sqrt(2/pi) rounded to nearest
GELU_K1 = 0.044715
#: initial guess of 1/sqrt(m) on [1, 4) (3.7% off), refined by RSQRT_STEPS Newton steps
RSQRT_GUESS = (1.30867376, -0.39508271, 0.0493858)
RSQRT_STEPS = 5


def f32_to_f64(a: np.ndarray) -> np.ndarray:
    """Exact float32 -> float64, whatever the DAZ flag: denormals are rebuilt from their bits as
    ``mantissa * 2**-149`` (an integer times a power of two: exact, and no denormal operand)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32)
    out = a.astype(np.float64)
    den = ((bits & 0x7F800000) == 0) & ((bits & 0x007FFFFF) != 0)
    if den.any():
        val = (bits[den] & 0x007FFFFF).astype(np.float64) * 2.0**-149
        out[den] = np.where((bits[den] >> 31) == 1, -val, val)
    return out


def to_float64(a: Any) -> np.ndarray:
    """An input array (float32 weights or features, float64, integers) as float64, exactly."""
    a = np.asarray(a)
    if a.dtype == np.float32:
        return f32_to_f64(a)
    if a.dtype == np.float64:
        return np.array(a)  # a copy: never a view of someone's buffer
    if a.dtype.kind in "iub":
        return a.astype(np.float64)  # integers below 2**53: exact
    raise TypeError(f"cannot evaluate {a.dtype} values (float32, float64 or integers)")


class Backend:
    """The primitive operations of the definition (module doc); subclasses supply the arrays.

    Every method takes and returns "clean" float64 arrays: finite or not, but with no value
    in (0, TINY) and no -0.0.
    """

    name = "abstract"
    #: rows per chunk in :meth:`matmul` (memory only: rows are independent)
    MATMUL_CHUNK = 128

    # -- array plumbing (exact) -------------------------------------------------------------

    def asarray(self, a: Any) -> Any:
        raise NotImplementedError

    def to_numpy(self, a: Any) -> np.ndarray:
        raise NotImplementedError

    def full(self, shape: tuple[int, ...], value: float) -> Any:
        raise NotImplementedError

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def concat(self, arrays: list[Any], axis: int) -> Any:
        raise NotImplementedError

    def stack(self, arrays: list[Any]) -> Any:
        raise NotImplementedError

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def permute(self, a: Any, axes: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def contiguous(self, a: Any) -> Any:
        raise NotImplementedError

    def pad_hw(self, a: Any, pad: int) -> Any:
        """Zero padding of the last two axes by ``pad`` on each side."""
        raise NotImplementedError

    def take_rows(self, table: Any, index: Any) -> Any:
        """``table[index]`` for an integer array ``index`` (embedding lookup)."""
        raise NotImplementedError

    def as_mask(self, a: np.ndarray) -> Any:
        """A numpy boolean array as this backend's boolean array."""
        raise NotImplementedError

    # -- exact elementwise operations -------------------------------------------------------

    def isnan(self, a: Any) -> Any:
        raise NotImplementedError

    def isfinite(self, a: Any) -> Any:
        raise NotImplementedError

    def abs(self, a: Any) -> Any:
        raise NotImplementedError

    def neg(self, a: Any) -> Any:
        raise NotImplementedError

    def floor(self, a: Any) -> Any:
        raise NotImplementedError

    def maximum(self, a: Any, b: Any) -> Any:
        """Elementwise max, NaN if either is NaN."""
        raise NotImplementedError

    def pow2(self, n: Any) -> Any:
        """2.0**n for integer-valued float64 n in [-1022, 1023], built from the bits (exact)."""
        raise NotImplementedError

    def split_exponent(self, x: Any) -> tuple[Any, Any]:
        """(m, e) with x = m * 2**e, m in [1, 2), e integer-valued float64, for normal x > 0 (exact)."""
        raise NotImplementedError

    # -- rounded operations: result flushed ---------------------------------------------------

    def flush(self, a: Any) -> Any:
        """``a`` with values |v| < TINY (and -0.0) replaced by +0.0 (in place or a new array)."""
        raise NotImplementedError

    def add(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def sub(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def mul(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def div(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def _matmul_block(self, xt: Any, w: Any) -> Any:
        """The unflushed fixed-order product of ``xt`` [..., K, n] (x transposed) and ``w`` [..., K, m]."""
        raise NotImplementedError

    # -- composite operations (fixed sequences of the above) ----------------------------------

    def matmul(self, x: Any, w: Any) -> Any:
        """``x @ w`` for x [..., N, K], w [..., K, M] (batch axes broadcast): for each output,
        ``acc = x_0 w_0``, then ``acc = acc + x_k w_k`` for k = 1..K-1 in order; flushed at the end."""
        return self.matmul_t(self.contiguous(self.permute(x, (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2))), w)

    def matmul_t(self, xt: Any, w: Any) -> Any:
        """:meth:`matmul` of ``x`` given transposed, ``xt`` [..., K, N] (rows of N in chunks: memory only)."""
        n = xt.shape[-1]
        w = self.contiguous(w)
        if n <= self.MATMUL_CHUNK:
            return self.flush(self._matmul_block(xt, w))
        parts = [self._matmul_block(xt[..., i : i + self.MATMUL_CHUNK], w) for i in range(0, n, self.MATMUL_CHUNK)]
        return self.flush(self.concat(parts, axis=-2))

    def linear(self, x: Any, weight: Any, bias: Any | None) -> Any:
        """torch's Linear: ``x @ weight.T`` (fixed order), then ``+ bias``."""
        y = self.matmul(x, self.permute(weight, (1, 0)))  # matmul_t makes w contiguous
        return y if bias is None else self.add(y, bias)

    def tree_sum(self, a: Any) -> Any:
        """Sum over the last axis by a fixed pairwise tree: pad with +0.0 to a power of two
        length L, then ``a = a[..., :L/2] + a[..., L/2:]`` until one element is left."""
        n = a.shape[-1]
        size = 1 << (n - 1).bit_length()
        if size != n:
            a = self.concat([a, self.full((*a.shape[:-1], size - n), 0.0)], axis=-1)
        while size > 1:
            size //= 2
            a = a[..., :size] + a[..., size:]  # no flush inside the tree: see the module doc
        return self.flush(self.contiguous(a[..., 0]))

    def tree_max(self, a: Any) -> Any:
        """Max over the last axis (exact; NaN if any element is NaN)."""
        n = a.shape[-1]
        size = 1 << (n - 1).bit_length()
        if size != n:
            a = self.concat([a, self.full((*a.shape[:-1], size - n), -math.inf)], axis=-1)
        while size > 1:
            size //= 2
            a = self.maximum(a[..., :size], a[..., size:])
        return self.contiguous(a[..., 0])

    def horner(self, x: Any, coeffs: tuple[float, ...]) -> Any:
        """``c0 + x*(c1 + x*(c2 + ...))``, innermost first, each step ``(acc * x) + c``.

        The flush after each step is skipped because it cannot change anything: every caller
        passes a clean ``|x| <= 4`` and coefficients whose partial sums stay at least 2**-40
        away from zero (exp: |x| <= ln2/2, positive coefficients; log: 0 <= x < 0.03; rsqrt:
        1 <= x < 4), so no product is below 2**-350 and no sum is tiny or -0.0."""
        acc = self.full(x.shape, coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self._mul_add(acc, x, c)
        return acc

    def _mul_add(self, acc: Any, x: Any, c: float) -> Any:
        """``(acc * x) + c``: two roundings, no flush (see :meth:`horner`)."""
        raise NotImplementedError

    def exp(self, x: Any) -> Any:
        """e**x: n = floor(x/ln2 + 1/2), r = (x - n*LN2_HI) - n*LN2_LO, e**r by its Taylor
        polynomial (degree 13), times 2**n in two exact steps. +inf above EXP_HI, +0.0 below
        EXP_LO, NaN for NaN."""
        nan = self.isnan(x)
        hi = x > EXP_HI
        lo = x < EXP_LO
        xs = self.where(nan | hi | lo, 0.0, x)
        n = self.floor(self.add(self.mul(xs, INV_LN2), 0.5))
        r = self.sub(self.sub(xs, self.mul(n, LN2_HI)), self.mul(n, LN2_LO))
        p = self.horner(r, EXP_COEFFS)
        half = self.floor(self.mul(n, 0.5))
        y = self.mul(self.mul(p, self.pow2(half)), self.pow2(self.sub(n, half)))
        y = self.where(hi, math.inf, y)
        y = self.where(lo, 0.0, y)
        return self.where(nan, math.nan, y)

    def log2(self, x: Any) -> Any:
        """log2(x) = e + ln(m)/ln 2 with x = m 2**e, m in [sqrt(1/2), sqrt(2)),
        ln(m) = 2 (s + s*P(s*s)), s = (m-1)/(m+1). -inf at 0, NaN below 0 or for NaN, +inf at +inf."""
        pos = (x > 0) & self.isfinite(x)
        xs = self.where(pos, x, 1.0)
        m, e = self.split_exponent(xs)
        big = m > SQRT2
        m = self.where(big, self.mul(m, 0.5), m)
        e = self.where(big, self.add(e, 1.0), e)
        s = self.div(self.sub(m, 1.0), self.add(m, 1.0))
        s2 = self.mul(s, s)
        poly = self.mul(s2, self.horner(s2, LOG_COEFFS))
        ln_m = self.mul(self.add(s, self.mul(s, poly)), 2.0)
        y = self.add(e, self.mul(ln_m, INV_LN2))
        y = self.where(x == 0, -math.inf, y)
        y = self.where(x == math.inf, math.inf, y)
        return self.where((x < 0) | self.isnan(x), math.nan, y)

    def rsqrt(self, a: Any) -> Any:
        """1/sqrt(a) from + - * / only: a = m 2**e with e even and m in [1, 4), the guess
        RSQRT_GUESS(m), RSQRT_STEPS Newton steps ``y = y (1.5 - ((m/2) y) y)``, times 2**(-e/2).
        +0.0 at +inf; NaN for a <= 0 or NaN."""
        ok = (a > 0) & self.isfinite(a)
        m, e = self.split_exponent(self.where(ok, a, 1.0))
        odd = e != self.mul(self.floor(self.mul(e, 0.5)), 2.0)
        m = self.where(odd, self.mul(m, 2.0), m)
        e = self.where(odd, self.sub(e, 1.0), e)
        y = self.horner(m, RSQRT_GUESS)
        h = self.mul(m, 0.5)
        for _ in range(RSQRT_STEPS):
            y = self.mul(y, self.sub(1.5, self.mul(self.mul(h, y), y)))
        y = self.mul(y, self.pow2(self.mul(e, -0.5)))
        y = self.where(a == math.inf, 0.0, y)
        return self.where(ok | (a == math.inf), y, math.nan)

    def relu(self, x: Any) -> Any:
        """max(x, 0) keeping NaN: x < 0 is false for NaN."""
        return self.where(x < 0, 0.0, x)

    def sigmoid(self, x: Any) -> Any:
        return self.div(1.0, self.add(self.exp(self.neg(x)), 1.0))

    def tanh(self, x: Any) -> Any:
        """sign(x) (1 - t) / (1 + t), t = e**(-2|x|)."""
        t = self.exp(self.mul(self.abs(x), -2.0))
        y = self.div(self.sub(1.0, t), self.add(t, 1.0))
        return self.where(x < 0, self.neg(y), y)

    def gelu(self, x: Any) -> Any:
        """torch's GELU(approximate="tanh"): (x/2) (1 + tanh(K0 (x + K1 x**3)))."""
        x3 = self.mul(self.mul(x, x), x)
        u = self.mul(self.add(x, self.mul(x3, GELU_K1)), GELU_K0)
        return self.mul(self.mul(x, 0.5), self.add(self.tanh(u), 1.0))

    def softmax(self, z: Any) -> Any:
        """Over the last axis: e = exp(z - max z), e / tree_sum(e)."""
        m = self.tree_max(z)
        e = self.exp(self.sub(z, m[..., None]))
        return self.div(e, self.tree_sum(e)[..., None])

    def layer_norm(self, x: Any, weight: Any, bias: Any, eps: float) -> Any:
        """torch's LayerNorm over the last axis: c = x - mean, var = mean(c*c) (biased),
        ((c * rsqrt(var + eps)) * weight) + bias."""
        d = float(x.shape[-1])
        mean = self.div(self.tree_sum(x), d)
        c = self.sub(x, mean[..., None])
        var = self.div(self.tree_sum(self.mul(c, c)), d)
        rstd = self.rsqrt(self.add(var, eps))
        return self.add(self.mul(self.mul(c, rstd[..., None]), weight), bias)

    def batch_norm(self, x: Any, mean: Any, var: Any, weight: Any, bias: Any, eps: float) -> Any:
        """torch's BatchNorm2d in eval mode on [N, C, H, W], per channel:
        ((x - mean) * (weight * rsqrt(var + eps))) + bias."""
        scale = self.mul(weight, self.rsqrt(self.add(var, eps)))
        return self.add(self.mul(self.sub(x, mean[:, None, None]), scale[:, None, None]), bias[:, None, None])

    def conv2d(self, x: Any, weight: Any, bias: Any | None, stride: int = 1, pad: int = 0) -> Any:
        """torch's Conv2d on [N, C, H, W] with weight [O, C, kh, kw]: each output is a
        :meth:`matmul` over k = (c, i, j) in that order (row-major over the weight), then + bias."""
        o, c, kh, kw = weight.shape
        if pad:
            x = self.pad_hw(x, pad)
        n, _, h, w = x.shape
        ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
        cols = [x[:, ci, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
                for ci in range(c) for i in range(kh) for j in range(kw)]
        # patches transposed, [K, n*ho*wo] with K ordered (c, i, j) like the weight's rows
        xt = self.reshape(self.stack(cols), (c * kh * kw, n * ho * wo))
        y = self.matmul_t(xt, self.permute(self.reshape(weight, (o, c * kh * kw)), (1, 0)))
        if bias is not None:
            y = self.add(y, bias)
        return self.contiguous(self.permute(self.reshape(y, (n, ho, wo, o)), (0, 3, 1, 2)))

    def max_pool2(self, x: Any) -> Any:
        """torch's MaxPool2d(2) (floor mode) on [N, C, H, W], NaN-propagating."""
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        a = self.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2])
        b = self.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2])
        return self.contiguous(self.maximum(a, b))


class NumpyBackend(Backend):
    """The reference implementation: numpy float64 ufuncs (IEEE binary64, one thread)."""

    name = "numpy"

    def asarray(self, a: Any) -> np.ndarray:
        return self.flush(to_float64(a))

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def full(self, shape, value):
        return np.full(shape, value, dtype=np.float64)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def concat(self, arrays, axis):
        return np.concatenate(arrays, axis=axis)

    def stack(self, arrays):
        return np.stack(arrays)

    def reshape(self, a, shape):
        return np.reshape(a, shape)

    def permute(self, a, axes):
        return np.transpose(a, axes)

    def contiguous(self, a):
        return np.ascontiguousarray(a)

    def pad_hw(self, a, pad):
        return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(pad, pad), (pad, pad)])

    def take_rows(self, table, index):
        return np.take(table, index, axis=0)

    def as_mask(self, a):
        return np.asarray(a, dtype=bool)

    def isnan(self, a):
        return np.isnan(a)

    def isfinite(self, a):
        return np.isfinite(a)

    def abs(self, a):
        return np.abs(a)

    def neg(self, a):
        return self.flush(np.negative(a))

    def floor(self, a):
        return np.floor(a)  # of a clean value: never tiny, never -0.0

    def maximum(self, a, b):
        return np.maximum(a, b)

    def pow2(self, n):
        bits = (np.asarray(n).astype(np.int64) + 1023) << 52
        return bits.view(np.float64)

    def split_exponent(self, x):
        bits = np.ascontiguousarray(x).view(np.int64)
        e = ((bits >> 52) & 0x7FF) - 1023
        m = ((bits & 0xFFFFFFFFFFFFF) | (1023 << 52)).view(np.float64)
        return m, e.astype(np.float64)

    def flush(self, a):
        # a new array: np.where is ~10x faster than a masked copy in place
        return np.where(np.abs(a) < TINY, 0.0, a)

    def add(self, a, b):
        return self.flush(np.add(a, b))

    def sub(self, a, b):
        return self.flush(np.subtract(a, b))

    def mul(self, a, b):
        return self.flush(np.multiply(a, b))

    def div(self, a, b):
        return self.flush(np.divide(a, b))

    def _mul_add(self, acc, x, c):
        acc = np.multiply(acc, x)
        return np.add(acc, c, out=acc)

    def _matmul_block(self, xt, w):
        k = xt.shape[-2]
        shape = np.broadcast_shapes(xt.shape[:-2], w.shape[:-2]) + (xt.shape[-1], w.shape[-1])
        acc = np.empty(shape)
        tmp = np.empty(shape)
        np.multiply(xt[..., 0, :, None], w[..., 0:1, :], out=acc)
        for i in range(1, k):
            np.multiply(xt[..., i, :, None], w[..., i : i + 1, :], out=tmp)
            np.add(acc, tmp, out=acc)
        return acc


class TorchBackend(Backend):
    """The same definition on torch float64 tensors (CPU or CUDA): a second implementation,
    and the fast one on a GPU. torch's add/sub/mul/div kernels are elementwise and correctly
    rounded on CPU and CUDA alike (its sqrt is not, on CPUs: it is never called); every
    operation here is a separate kernel call."""

    name = "torch"

    def __init__(self, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)

    def asarray(self, a):
        t = self.torch
        if isinstance(a, t.Tensor):
            a = a.detach().cpu().numpy()
        # converted on the host by the DAZ-proof routine, then moved
        return self.flush(t.from_numpy(to_float64(a)).to(self.device))

    def to_numpy(self, a):
        return a.detach().cpu().numpy()

    def full(self, shape, value):
        return self.torch.full(tuple(shape), float(value), dtype=self.torch.float64, device=self.device)

    def _t(self, a):
        t = self.torch
        if isinstance(a, t.Tensor):
            return a
        return t.as_tensor(a, dtype=t.float64, device=self.device)

    def where(self, cond, a, b):
        return self.torch.where(cond, self._t(a), self._t(b))

    def concat(self, arrays, axis):
        return self.torch.cat(arrays, dim=axis)

    def stack(self, arrays):
        return self.torch.stack(arrays)

    def reshape(self, a, shape):
        return a.reshape(shape)

    def permute(self, a, axes):
        return a.permute(*axes)

    def contiguous(self, a):
        return a.contiguous()

    def pad_hw(self, a, pad):
        return self.torch.nn.functional.pad(a, (pad, pad, pad, pad))

    def take_rows(self, table, index):
        idx = self.torch.as_tensor(np.asarray(index), dtype=self.torch.int64, device=self.device)
        return table[idx]

    def as_mask(self, a):
        return self.torch.as_tensor(np.asarray(a, dtype=bool), device=self.device)

    def isnan(self, a):
        return self.torch.isnan(a)

    def isfinite(self, a):
        return self.torch.isfinite(a)

    def abs(self, a):
        return self.torch.abs(a)

    def neg(self, a):
        return self.flush(self.torch.neg(a))

    def floor(self, a):
        return self.torch.floor(a)  # of a clean value: never tiny, never -0.0

    def maximum(self, a, b):
        return self.torch.maximum(self._t(a), self._t(b))

    def pow2(self, n):
        bits = (n.to(self.torch.int64) + 1023) << 52
        return bits.view(self.torch.float64)

    def split_exponent(self, x):
        bits = x.contiguous().view(self.torch.int64)
        e = ((bits >> 52) & 0x7FF) - 1023
        m = ((bits & 0xFFFFFFFFFFFFF) | (1023 << 52)).view(self.torch.float64)
        return m, e.to(self.torch.float64)

    def flush(self, a):
        return a.masked_fill_(a.abs() < TINY, 0.0)

    def add(self, a, b):
        return self.flush(self.torch.add(self._t(a), self._t(b)))

    def sub(self, a, b):
        return self.flush(self.torch.sub(self._t(a), self._t(b)))

    def mul(self, a, b):
        return self.flush(self.torch.mul(self._t(a), self._t(b)))

    def div(self, a, b):
        return self.flush(self.torch.div(self._t(a), self._t(b)))

    def _mul_add(self, acc, x, c):
        acc = self.torch.mul(acc, x)
        return acc.add_(c)

    def _matmul_block(self, xt, w):
        t = self.torch
        k = xt.shape[-2]
        shape = t.broadcast_shapes(xt.shape[:-2], w.shape[:-2]) + (xt.shape[-1], w.shape[-1])
        acc = t.empty(shape, dtype=t.float64, device=self.device)
        tmp = t.empty(shape, dtype=t.float64, device=self.device)
        t.mul(xt[..., 0, :, None], w[..., 0:1, :], out=acc)
        for i in range(1, k):
            t.mul(xt[..., i, :, None], w[..., i : i + 1, :], out=tmp)
            t.add(acc, tmp, out=acc)
        return acc


NUMPY = NumpyBackend()


def backend(name: str = "numpy", device: str = "cpu") -> Backend:
    """The implementation to evaluate with: ``numpy`` (the reference) or ``torch`` (on ``device``)."""
    if name == "numpy":
        return NUMPY
    if name == "torch":
        return TorchBackend(device)
    raise ValueError(f"unknown evaluation backend {name!r}; known: numpy, torch")
