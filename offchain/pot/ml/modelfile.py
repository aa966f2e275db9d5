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
architecture (computed on the meta device). Finally it re-encodes what it parsed and requires the
same bytes, so a model has exactly one file and one ``mid``. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Mapping
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


class ModelFileError(ValueError):
    """The bytes are not a canonical PoT model file."""


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
    header: dict[str, Any] = {
        "__metadata__": {"format": "pt", "pot.arch": canonical_json(cfg), "pot.version": FORMAT_VERSION}
    }
    offset = 0
    for name in sorted(arrays):
        a = arrays[name]
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    hjson = canonical_json(header).encode("ascii")
    hjson += b" " * (-len(hjson) % 8)
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


def decode(data: bytes, *, max_bytes: int = MAX_MODEL_BYTES) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Parse canonical model file bytes into (name -> float32 array, normal-form config).

    The arrays are read-only views of ``data``; nothing larger than ``data`` is allocated.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ModelFileError(f"model file must be bytes, got {type(data).__name__}")
    data = bytes(data)
    size = len(data)
    if size > max_bytes:
        raise ModelFileError(f"model file is {size:,} bytes; the limit is {max_bytes:,}")
    if size < 8:
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
    try:
        header = json.loads(data[8 : 8 + hlen].decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if looks_pickled:
            raise pickled from None
        raise ModelFileError(f"header is not ASCII JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ModelFileError("header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or set(meta) != {"format", "pot.arch", "pot.version"}:
        raise ModelFileError("metadata must hold exactly format, pot.arch and pot.version")
    if meta["pot.version"] != FORMAT_VERSION:
        raise ModelFileError(f"unsupported model file version {meta['pot.version']!r}")
    if not isinstance(meta["pot.arch"], str):
        raise ModelFileError("metadata pot.arch must be a JSON string")
    try:
        raw_cfg = json.loads(meta["pot.arch"])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"metadata pot.arch is not JSON: {exc}") from None
    try:
        cfg = check_config(raw_cfg)
        expected = param_shapes(cfg)  # meta device: no allocation, bounded parameter count
    except ArchitectureError as exc:
        raise ModelFileError(f"architecture refused: {exc}") from None

    body = size - 8 - hlen
    got: dict[str, tuple[int, ...]] = {}
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"tensor {name!r}: malformed entry")
        if info["dtype"] != "F32":
            raise ModelFileError(f"tensor {name!r} has dtype {info['dtype']!r}; only F32 is canonical")
        shape, offs = info["shape"], info["data_offsets"]
        if not (isinstance(shape, list) and all(type(d) is int and 0 <= d <= 1 << 40 for d in shape)):
            raise ModelFileError(f"tensor {name!r}: bad shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)):
            raise ModelFileError(f"tensor {name!r}: bad data_offsets {offs!r}")
        nbytes = 4 * math.prod(shape)
        begin, end = offs
        # declared sizes against the bytes present, before any array exists
        if not 0 <= begin <= end <= body or end - begin != nbytes:
            raise ModelFileError(
                f"tensor {name!r} declares {nbytes:,} bytes at [{begin}, {end}) but the data section has {body:,}"
            )
        got[name] = tuple(shape)
        spans.append((begin, end, name))
    if got != expected:
        raise ModelFileError(f"weights do not match architecture {cfg['arch']!r}: {_diff(expected, got)}")
    start = 8 + hlen
    arrays = {
        name: np.frombuffer(data, dtype="<f4", count=(end - begin) // 4, offset=start + begin).reshape(got[name])
        for begin, end, name in spans
    }
    # One model, one file: anything our writer would not have produced (key order, padding,
    # gaps, trailing bytes, a non-normal config) is refused, so mids cannot be ground.
    if encode(arrays, cfg) != data:
        raise ModelFileError("model file is not in canonical form (re-encoding gives different bytes)")
    return arrays, cfg


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
