"""Data sets as npz files of plain arrays, and the small real data sets the demos and tests use.

A data set file holds two arrays, ``x`` and ``y``:

- classification: ``x`` float32 features or uint8 images ``[N, *in_shape]`` (a model sees a
  uint8 image divided by 255) and ``y`` int64 class labels ``[N]``;
- language modelling: ``x`` uint8 byte windows ``[N, T]`` and ``y`` the next bytes ``[N, T]``
  (uint8; usually ``x`` shifted by one).

Files travel between nodes by CID, so they are hostile input: :func:`load_arrays`
parses the zip and every ``.npy`` header itself and checks every declared size against the bytes
present and a limit before allocating; object arrays (pickles) are refused. The files it writes
are plain npz (``np.load(..., allow_pickle=False)`` opens them) and byte-for-byte deterministic
(fixed zip timestamps, sorted members, no compression), so the same data has the same CID.

The data sets come with scikit-learn (installed with PoT), so nothing is downloaded at run time:

=================  ======================  ================================================
name               x per sample            source
=================  ======================  ================================================
``digits``         ``[1, 8, 8]`` image     ``load_digits``: 1797 8x8 handwritten digits
``digits-seq``     ``[8, 8]`` sequence     the same images, row by row (8 steps of 8 pixels)
``digits-flat``    ``[64]``                the same images, flattened
``iris``           ``[4]``                 ``load_iris``: 150 flowers, 3 classes
``wine``           ``[13]``                ``load_wine``: 178 wines, 3 classes
``breast-cancer``  ``[30]``                ``load_breast_cancer``: 569 tumours, 2 classes
=================  ======================  ================================================

:func:`make_dataset` splits one of them into the training set the client gives to miners and the
held-out test set the client keeps until the test release (stratified, by seed).
"""

from __future__ import annotations

import ast
import io
import math
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Largest data set file a node reads (bytes).
MAX_DATASET_BYTES = 1024 * 1024 * 1024
_ALLOWED_DTYPES = {np.dtype(t) for t in ("<f4", "<f8", "<i8", "<i4", "|u1", "|i1", "<i2", "|b1")}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class DatasetError(ValueError):
    """The bytes are not an acceptable data set file, or a data set name is unknown."""


# --------------------------------------------------------------------------- npz files


def dump_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Deterministic npz bytes: members in name order, stored, with a fixed timestamp."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            a = np.ascontiguousarray(arrays[name])
            if a.dtype not in _ALLOWED_DTYPES:
                raise DatasetError(f"array {name!r} has dtype {a.dtype}; allowed: {sorted(map(str, _ALLOWED_DTYPES))}")
            npy = io.BytesIO()
            np.lib.format.write_array(npy, a, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o600 << 16
            zf.writestr(info, npy.getvalue())
    return buf.getvalue()


def _parse_npy(name: str, raw: bytes) -> np.ndarray:
    if raw[:6] != b"\x93NUMPY" or len(raw) < 10:
        raise DatasetError(f"member {name!r} is not a .npy array")
    major = raw[6]
    if major == 1:
        hlen, start = int.from_bytes(raw[8:10], "little"), 10
    elif major in (2, 3):
        hlen, start = int.from_bytes(raw[8:12], "little"), 12
    else:
        raise DatasetError(f"member {name!r}: unsupported .npy version {major}")
    if start + hlen > len(raw) or hlen > 65536:
        raise DatasetError(f"member {name!r}: .npy header length {hlen} is out of bounds")
    try:
        # The header is a Python dict literal; literal_eval evaluates no code (numpy does the same).
        header = ast.literal_eval(raw[start : start + hlen].decode("latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError) as exc:
        raise DatasetError(f"member {name!r}: bad .npy header: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise DatasetError(f"member {name!r}: bad .npy header {header!r}")
    try:
        dtype = np.dtype(header["descr"]) if isinstance(header["descr"], str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype not in _ALLOWED_DTYPES:
        raise DatasetError(f"member {name!r}: dtype {header['descr']!r} is not allowed (no objects, no pickles)")
    shape = header["shape"]
    if not (isinstance(shape, tuple) and len(shape) <= 8 and all(type(d) is int and d >= 0 for d in shape)):
        raise DatasetError(f"member {name!r}: bad shape {shape!r}")
    nbytes = math.prod(shape) * dtype.itemsize
    body = len(raw) - start - hlen
    # declared size against the bytes present, before any array exists
    if nbytes != body:
        raise DatasetError(f"member {name!r} declares {nbytes:,} bytes of data but holds {body:,}")
    order = "F" if header["fortran_order"] is True else "C"
    arr = np.frombuffer(raw, dtype=dtype, offset=start + hlen, count=math.prod(shape))
    return arr.reshape(shape, order=order)


def load_arrays(data: bytes, *, max_bytes: int = MAX_DATASET_BYTES) -> dict[str, np.ndarray]:
    """Parse npz bytes into name -> array (read-only), refusing anything but plain numeric arrays."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DatasetError(f"data set must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise DatasetError(f"data set file is {len(data):,} bytes; the limit is {max_bytes:,}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise DatasetError(f"data set is not an npz (zip) file: {exc}") from None
    # Declared uncompressed sizes are checked first: a zip bomb must not be inflated.
    if sum(i.file_size for i in infos) > max_bytes:
        raise DatasetError(f"npz members declare more than {max_bytes:,} bytes uncompressed")
    out: dict[str, np.ndarray] = {}
    for info in infos:
        if not info.filename.endswith(".npy") or info.filename.count("/"):
            raise DatasetError(f"unexpected npz member {info.filename!r}")
        key = info.filename[:-4]
        if key in out:
            raise DatasetError(f"duplicate npz member {info.filename!r}")
        try:
            with zf.open(info) as f:
                raw = f.read(info.file_size + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, ValueError) as exc:
            raise DatasetError(f"npz member {info.filename!r} is corrupt: {exc}") from None
        if len(raw) != info.file_size:
            raise DatasetError(f"npz member {info.filename!r} is not the size it declares")
        out[key] = _parse_npy(info.filename, raw)
    return out


@dataclass(frozen=True)
class Dataset:
    """Samples ``x`` (float32 or uint8, ``[N, ...]``) and labels ``y`` (int64, ``[N]`` or ``[N, T]``)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim < 2 or self.y.ndim not in (1, 2) or len(self.x) != len(self.y):
            raise DatasetError(f"x must be [N, ...] and y [N] or [N, T]; got x{list(self.x.shape)} y{list(self.y.shape)}")
        if self.y.ndim == 2 and self.y.shape != self.x.shape:
            raise DatasetError(f"next-token targets y{list(self.y.shape)} must have the shape of x{list(self.x.shape)}")
        if len(self.y) == 0:
            raise DatasetError("the data set is empty")

    @property
    def in_shape(self) -> list[int]:
        return list(self.x.shape[1:])

    @property
    def tokens(self) -> bool:
        """A language-model data set (byte windows and next bytes)."""
        return self.y.ndim == 2

    def to_bytes(self) -> bytes:
        x = self.x if self.x.dtype == np.uint8 else self.x.astype("<f4")
        y = self.y.astype("|u1") if self.tokens else self.y.astype("<i8")
        return dump_arrays({"x": x, "y": y})

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset(self.x[idx], self.y[idx])

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_DATASET_BYTES) -> Dataset:
        arrays = load_arrays(data, max_bytes=max_bytes)
        if set(arrays) != {"x", "y"}:
            raise DatasetError(f"a data set holds exactly the arrays x and y, got {sorted(arrays)}")
        x, y = arrays["x"], arrays["y"]
        # float32 exactly, not float64: narrowing float64 to float32 rounds differently under FTZ
        # (the validation functions must read the same numbers on every machine)
        if x.dtype not in (np.float32, np.uint8) or y.dtype.kind not in "iu":
            raise DatasetError(f"x must be float32 or uint8 and y integer; got {x.dtype} and {y.dtype}")
        if x.dtype == np.float32 and not np.isfinite(x).all():
            raise DatasetError("x holds NaN or infinite values")
        return cls(x, y.astype(np.int64))

    def check_for(self, config: Mapping[str, Any]) -> None:
        """Refuse data that does not fit a model config (input shape and type, label range)."""
        from pot.ml.archs import REGISTRY

        if self.in_shape != list(config["in_shape"]):
            raise DatasetError(f"samples have shape {self.in_shape}; the model expects {list(config['in_shape'])}")
        arch = REGISTRY.get(config["arch"])
        if arch is not None and arch.tokens:
            if self.x.dtype != np.uint8 or not self.tokens:
                raise DatasetError(f"a {config['arch']} model needs byte windows x (uint8) and next bytes y [N, T]; "
                                   f"got x {self.x.dtype} y{list(self.y.shape)}")
            if int(self.x.max()) >= config["num_classes"]:
                raise DatasetError(f"tokens reach {int(self.x.max())}; the model has {config['num_classes']}")
        elif self.tokens:
            raise DatasetError(f"next-token data (y{list(self.y.shape)}) needs a language model, not {config['arch']!r}")
        lo, hi = int(self.y.min()), int(self.y.max())
        if lo < 0 or hi >= config["num_classes"]:
            raise DatasetError(f"labels span [{lo}, {hi}]; the model has {config['num_classes']} classes")


# --------------------------------------------------------------------------- built-in data sets


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def _tabular(loader_name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load() -> tuple[np.ndarray, np.ndarray]:
        import sklearn.datasets

        d = getattr(sklearn.datasets, loader_name)()
        return d.data.astype(np.float64), d.target.astype(np.int64)

    return load


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    #: reshape of one sample (after loading)
    sample_shape: tuple[int, ...]
    num_classes: int
    #: standardize features with the training split's mean/std (tabular data)
    standardize: bool = False


BUILTIN: dict[str, BuiltinDataset] = {
    b.name: b
    for b in (
        BuiltinDataset("digits", _digits, (1, 8, 8), 10),
        BuiltinDataset("digits-seq", _digits, (8, 8), 10),
        BuiltinDataset("digits-flat", _digits, (64,), 10),
        BuiltinDataset("iris", _tabular("load_iris"), (4,), 3, True),
        BuiltinDataset("wine", _tabular("load_wine"), (13,), 3, True),
        BuiltinDataset("breast-cancer", _tabular("load_breast_cancer"), (30,), 2, True),
    )
}


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of every class held out, chosen by ``seed``; both sorted."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        held.append(rng.permutation(idx)[:n])
    held_idx = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(len(y)), held_idx)
    return keep, held_idx


def make_dataset(name: str, seed: int = 0, test_fraction: float = 0.25) -> tuple[bytes, bytes]:
    """(training npz bytes, test npz bytes) of a built-in data set, split by ``seed``.

    The training part goes to miners with the task spec; the client keeps the test part secret
    (committed to on-chain) until the test release.
    """
    if name not in BUILTIN:
        raise DatasetError(f"unknown data set {name!r}; known: {sorted(BUILTIN)}")
    b = BUILTIN[name]
    x, y = b.load()
    train_idx, test_idx = stratified_split(y, test_fraction, seed)
    x = x.reshape((len(x), *b.sample_shape))
    if b.standardize:
        # statistics of the training part only, so nothing about the test set leaks into it
        mean = x[train_idx].mean(axis=0)
        std = x[train_idx].std(axis=0)
        x = (x - mean) / np.where(std > 0, std, 1.0)
    x = x.astype(np.float32)
    return Dataset(x[train_idx], y[train_idx]).to_bytes(), Dataset(x[test_idx], y[test_idx]).to_bytes()


def model_config_for(name: str, arch: str, **fields: Any) -> dict[str, Any]:
    """A model config that fits a built-in data set (in_shape and num_classes filled in)."""
    if name not in BUILTIN:
        raise DatasetError(f"unknown data set {name!r}; known: {sorted(BUILTIN)}")
    b = BUILTIN[name]
    return {"arch": arch, "in_shape": list(b.sample_shape), "num_classes": b.num_classes, **fields}
