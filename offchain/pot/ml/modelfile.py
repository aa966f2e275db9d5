"""Canonical safetensors model files, and a strict reader for the ones other nodes send.

``mid = sha256(file bytes)`` names a model on the network (docs/CONVENTIONS.md), so the same
weights must always give the same bytes. The writer therefore produces exactly one layout:

- 8-byte little-endian header length N, then N bytes of JSON, then the raw tensor data;
- JSON with sorted keys, no spaces, ASCII only, padded with spaces to a multiple of 8
  (what the safetensors library does for alignment);
- ``__metadata__`` = {"format": "pt", "pot.arch": <normal-form config as canonical JSON>,
  "pot.version": "1"};
- every tensor float32 (``F32``), little-endian, C-contiguous, laid out in name order
  without gaps.

The file is a valid safetensors file (any safetensors reader opens it), but we do not use the
safetensors library to write it: its header layout is the library's business and could change
between versions, which would change every ``mid``.

The reader accepts only that layout. It checks the header length against the file size and a
maximum before reading it, every declared tensor size against the data actually present before
allocating, the architecture against the registry, and the tensor names and shapes against the
architecture (computed on the meta device). Finally it re-encodes the header it parsed and requires
the same bytes and the exact file size that header implies, so a model has exactly one file and one
``mid`` (the data section is raw float32 bits, which the writer reproduces as they are). Nothing is
ever unpickled.

The header is hostile input and JSON is recursive: a header of 200,000 ``[`` once overflowed the C
stack of ``json.loads`` (``py_ecc`` raises the recursion limit to 100,000, so Python's own guard
never fired) and killed the process. :func:`loads_bounded` therefore scans the text first and
refuses anything deeper than the known shape of a header, any number longer than a 64-bit
integer, and floats, before ``json.loads`` sees it. :func:`read_header` needs only the header:
it returns the architecture, its parameter count and the layout, so the model can be checked
against its order's spec before a single weight is touched.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pot.ml.archs import ArchitectureError, build_model, check_config, param_shapes

FORMAT_VERSION = "1"
#: Largest model file a node reads (bytes). archs.MAX_PARAMS float32 parameters fit below it.
MAX_MODEL_BYTES = 512 * 1024 * 1024
#: Largest JSON header; a model with thousands of tensors stays far below it.
MAX_HEADER_BYTES = 1024 * 1024
#: Nesting of a header: {tensor name: {"shape": [...]}}; of ``pot.arch``: {"hidden": [...]}.
HEADER_DEPTH = 3
ARCH_DEPTH = 2
#: Longest number token: 2**64 has 20 digits. A 5,000-digit integer once escaped as ValueError
#: (Python's int-to-str guard) instead of a refusal.
MAX_NUMBER_CHARS = 20

_JSON_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")
_LONG_NUMBER = re.compile(r"[-+0-9.eE]{%d,}" % (MAX_NUMBER_CHARS + 1))
_LONG_FLOAT = re.compile(r"[-+0-9.eE]{%d,}" % (2 * MAX_NUMBER_CHARS + 1))  # repr(float) needs up to 24


class ModelFileError(ValueError):
    """The bytes are not a canonical PoT model file."""


def loads_bounded(text: str, *, max_depth: int, what: str, error: type[ValueError] = ModelFileError,
                  floats: bool = False) -> Any:
    """``json.loads`` for hostile text whose shape is known: nesting at most ``max_depth``, numbers
    of at most 20 characters (40 with ``floats``), no NaN or duplicate keys, floats only when
    asked. Refuses with ``error`` (never a RecursionError, a crash or another exception type)."""
    # Strings are cut out first so that brackets inside them do not count. Where this scan and
    # json's tokenizer could disagree (a malformed string), json itself raises at that string,
    # before any nesting after it; so the depth counted here bounds the depth json.loads reaches.
    skeleton = _JSON_STRING.sub('""', text)
    depth = 0
    for m in _BRACKETS.finditer(skeleton):
        depth += 1 if m.group() in "[{" else -1
        if depth > max_depth:
            raise error(f"{what} is nested deeper than {max_depth} levels")
    longest = 2 * MAX_NUMBER_CHARS if floats else MAX_NUMBER_CHARS
    if (_LONG_FLOAT if floats else _LONG_NUMBER).search(skeleton):
        raise error(f"{what} holds a number longer than {longest} characters")

    def no_float(s: str) -> Any:
        raise error(f"{what} holds a non-integer number {s[:24]!r}")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(pairs)
        if len(d) != len(pairs):
            raise error(f"{what} repeats a key")
        return d

    try:
        return json.loads(text, parse_float=float if floats else no_float, parse_constant=no_float,
                          object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not JSON: {exc}") from None


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _arrays(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, t in state.items():
        if not isinstance(name, str) or not name or not name.isascii():
            raise ModelFileError(f"tensor names must be non-empty ASCII strings, got {name!r}")
        if isinstance(t, torch.Tensor):
            if not t.is_floating_point():
                raise ModelFileError(f"tensor {name!r} is {t.dtype}; model files hold float weights only")
            a = t.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
        else:
            a = np.asarray(t)
            if a.dtype.kind != "f":
                raise ModelFileError(f"tensor {name!r} is {a.dtype}; model files hold float weights only")
        out[name] = np.ascontiguousarray(a, dtype="<f4")
    return out


def encode(state: Mapping[str, Any], config: Mapping[str, Any]) -> bytes:
    """Canonical model file bytes for a state dict (torch tensors or numpy arrays) and its config."""
    cfg = check_config(config)
    arrays = _arrays(state)
    expected = param_shapes(cfg)
    got = {k: tuple(a.shape) for k, a in arrays.items()}
    if got != expected:
        raise ModelFileError(f"weights do not match architecture {cfg['arch']!r}: {_diff(expected, got)}")
    hjson = _header_bytes(cfg, got)
    return b"".join([struct.pack("<Q", len(hjson)), hjson, *(arrays[n].tobytes() for n in sorted(arrays))])


def save_model(model: nn.Module, config: Mapping[str, Any] | None = None) -> bytes:
    """Canonical file bytes of ``model``; the config defaults to the one :func:`build_model` attached.

    Unwraps DistributedDataParallel and ``torch.compile`` wrappers, whose state-dict keys carry
    prefixes that are not part of the architecture.
    """
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    cfg = config if config is not None else getattr(inner, "pot_config", None)
    if cfg is None:
        raise ModelFileError("no architecture config: pass config= or build the model with build_model()")
    return encode(inner.state_dict(), cfg)


def mid(model_bytes: bytes) -> bytes:
    """The model id: sha256 of the file bytes (bytes32)."""
    return hashlib.sha256(model_bytes).digest()


def _diff(expected: Mapping[str, tuple], got: Mapping[str, tuple]) -> str:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    parts = []
    if missing:
        parts.append(f"missing {missing[:5]}")
    if extra:
        parts.append(f"unexpected {extra[:5]}")
    for k in wrong[:5]:
        parts.append(f"{k} has shape {list(got[k])}, expected {list(expected[k])}")
    return "; ".join(parts)


@dataclass(frozen=True)
class TensorEntry:
    name: str
    shape: tuple[int, ...]
    begin: int  # offsets in the data section
    end: int


@dataclass(frozen=True)
class ModelHeader:
    """What a model file says about itself, read from its header alone (no weight touched)."""

    config: dict[str, Any]  # normal form, checked against the registry
    tensors: tuple[TensorEntry, ...]  # in file order (= name order)
    header_len: int
    file_size: int

    @property
    def arch(self) -> str:
        return self.config["arch"]

    @property
    def num_params(self) -> int:
        return sum(math.prod(t.shape) for t in self.tensors)


def _header_bytes(cfg: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]) -> bytes:
    """The one header the writer produces for these shapes (padding included)."""
    header: dict[str, Any] = {
        "__metadata__": {"format": "pt", "pot.arch": canonical_json(cfg), "pot.version": FORMAT_VERSION}
    }
    offset = 0
    for name in sorted(shapes):
        nbytes = 4 * math.prod(shapes[name])
        header[name] = {"dtype": "F32", "shape": list(shapes[name]), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    hjson = canonical_json(header).encode("ascii")
    return hjson + b" " * (-len(hjson) % 8)


def file_size_for(config: Mapping[str, Any]) -> int:
    """The exact size of the canonical file of any model with this architecture (no allocation).

    A spec names one architecture, so this is also the largest model file its order can
    receive: the fetch limit for that order's models."""
    cfg = check_config(config)
    shapes = param_shapes(cfg)
    return 8 + len(_header_bytes(cfg, shapes)) + 4 * sum(math.prod(s) for s in shapes.values())


def _as_bytes(data: Any) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ModelFileError(f"model file must be bytes, got {type(data).__name__}")
    return bytes(data)


def read_header(data: bytes, *, max_bytes: int = MAX_MODEL_BYTES, file_size: int | None = None) -> ModelHeader:
    """Parse and check a model file's header: bounded JSON, exactly the canonical shape, a known
    architecture within limits whose parameter shapes (computed on the meta device) match the
    declared tensors, and a layout that fits the data present.

    ``data`` may be the whole file or only its beginning (at least ``8 + header length`` bytes)
    with ``file_size`` the size of the whole; nothing beyond the header is read.
    """
    data = _as_bytes(data)
    size = len(data) if file_size is None else file_size
    if size > max_bytes:
        raise ModelFileError(f"model file is {size:,} bytes; the limit is {max_bytes:,}")
    if size < 8 or len(data) < 8:
        raise ModelFileError(f"model file is {size} bytes: too short for a safetensors header")
    (hlen,) = struct.unpack("<Q", data[:8])
    # Only a name for the error: a pickle (protocol 2-5) or torch.save's zip is never unpickled.
    # (A real header length can start with the same bytes, so this is not a test on its own.)
    looks_pickled = (data[0] == 0x80 and 2 <= data[1] <= 5) or data[:4] == b"PK\x03\x04"
    pickled = ModelFileError("this is a pickle / torch.save file; only canonical safetensors model files are accepted")
    # Checked before touching the header: a length claiming gigabytes must not be read or allocated.
    if hlen > MAX_HEADER_BYTES or hlen > size - 8:
        if looks_pickled:
            raise pickled
        if hlen > MAX_HEADER_BYTES:
            raise ModelFileError(f"header claims {hlen:,} bytes; the limit is {MAX_HEADER_BYTES:,}")
        raise ModelFileError(f"header claims {hlen:,} bytes but the file has only {size - 8:,} after the length")
    if len(data) < 8 + hlen:
        raise ModelFileError(f"only {len(data) - 8:,} of the header's {hlen:,} bytes were given")
    raw = data[8 : 8 + hlen]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        if looks_pickled:
            raise pickled from None
        raise ModelFileError("header is not ASCII") from None
    try:
        header = loads_bounded(text, max_depth=HEADER_DEPTH, what="header")
    except ModelFileError:
        if looks_pickled:
            raise pickled from None
        raise
    if not isinstance(header, dict):
        raise ModelFileError("header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or set(meta) != {"format", "pot.arch", "pot.version"}:
        raise ModelFileError("metadata must hold exactly format, pot.arch and pot.version")
    if not all(isinstance(v, str) for v in meta.values()):
        raise ModelFileError("metadata values must be strings")
    if meta["pot.version"] != FORMAT_VERSION:
        raise ModelFileError(f"unsupported model file version {meta['pot.version'][:40]!r}")
    raw_cfg = loads_bounded(meta["pot.arch"], max_depth=ARCH_DEPTH, what="metadata pot.arch")
    if not isinstance(raw_cfg, dict) or not isinstance(raw_cfg.get("arch"), str):
        raise ModelFileError("metadata pot.arch must be a JSON object naming its arch as a string")
    try:
        cfg = check_config(raw_cfg)
        expected = param_shapes(cfg)  # meta device: no allocation, bounded parameter count
    except ArchitectureError as exc:
        raise ModelFileError(f"architecture refused: {exc}") from None

    body = size - 8 - hlen
    entries: list[TensorEntry] = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"tensor {name[:80]!r}: malformed entry")
        if info["dtype"] != "F32":
            raise ModelFileError(f"tensor {name[:80]!r} has dtype {str(info['dtype'])[:20]!r}; only F32 is canonical")
        shape, offs = info["shape"], info["data_offsets"]
        if not (isinstance(shape, list) and len(shape) <= 8 and all(type(d) is int and 0 <= d <= 1 << 40 for d in shape)):
            raise ModelFileError(f"tensor {name[:80]!r}: bad shape {str(shape)[:80]}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)):
            raise ModelFileError(f"tensor {name[:80]!r}: bad data_offsets {str(offs)[:80]}")
        nbytes = 4 * math.prod(shape)
        begin, end = offs
        # declared sizes against the bytes present, before any array exists
        if not 0 <= begin <= end <= body or end - begin != nbytes:
            raise ModelFileError(
                f"tensor {name[:80]!r} declares {nbytes:,} bytes at [{begin}, {end}) but the data section has {body:,}"
            )
        entries.append(TensorEntry(name, tuple(shape), begin, end))
    got = {t.name: t.shape for t in entries}
    if got != expected:
        raise ModelFileError(f"weights do not match architecture {cfg['arch']!r}: {_diff(expected, got)}")
    # One model, one file: anything our writer would not have produced (key order, spacing,
    # padding, gaps, trailing bytes, a non-normal config) is refused, so mids cannot be ground.
    # The header and the size decide it: the data section holds raw float32 bits, any of which
    # the writer reproduces as they are.
    nbytes = 4 * sum(math.prod(s) for s in got.values())
    if raw != _header_bytes(cfg, got) or size != 8 + hlen + nbytes:
        raise ModelFileError("model file is not in canonical form (re-encoding gives different bytes)")
    return ModelHeader(cfg, tuple(entries), hlen, size)


def decode(data: bytes, *, max_bytes: int = MAX_MODEL_BYTES) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Parse canonical model file bytes into (name -> float32 array, normal-form config).

    The arrays are read-only views of ``data``; nothing larger than ``data`` is allocated.
    """
    data = _as_bytes(data)
    hdr = read_header(data, max_bytes=max_bytes)
    start = 8 + hdr.header_len
    arrays = {
        t.name: np.frombuffer(data, dtype="<f4", count=(t.end - t.begin) // 4, offset=start + t.begin).reshape(t.shape)
        for t in hdr.tensors
    }
    return arrays, hdr.config


def load_model(data: bytes, *, max_bytes: int = MAX_MODEL_BYTES) -> nn.Module:
    """Build the model a canonical file describes, on the CPU in float32, in eval mode."""
    arrays, cfg = decode(data, max_bytes=max_bytes)
    model = build_model(cfg, seed=None)
    with torch.no_grad():
        model.load_state_dict({k: torch.from_numpy(a.copy()) for k, a in arrays.items()}, strict=True)
    return model.eval()


def read_model_file(path: str | os.PathLike, *, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """Read a model file from disk, refusing one over ``max_bytes`` before reading it."""
    size = os.stat(path).st_size
    if size > max_bytes:
        raise ModelFileError(f"{os.fspath(path)} is {size:,} bytes; the limit is {max_bytes:,}")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ModelFileError(f"{os.fspath(path)} grew past {max_bytes:,} bytes while being read")
    return data


def write_model_file(path: str | os.PathLike, data: bytes) -> None:
    """Write model bytes atomically (a reader never sees half a file)."""
    tmp = f"{os.fspath(path)}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
