"""The strict wire codec for every op and result (``encode`` / ``decode``).

Format (version 1, documented here and nowhere else): a compact, canonical binary frame
rather than JSON or ABI. ABI pads every field to 32 bytes (a signed validation reveal would be
257 B + envelope), JSON doubles every byte in hex; this format is ~45% of ABI, and it is
*canonical*: one message has exactly one encoding, so the hash of the bytes can serve as the
op's identity and a replica never has to normalise.

    frame   := tag:u8  body
    tag     := the type's TAG; a signed participant message uses TAG | 0x80 and its body is
               the message's fields followed by the 65-byte signature (r || s || v)
    body    := the fields in FIELDS order, each by kind:
      uint      len:u8 (0..32) then len bytes big-endian, no leading zero byte (0 is len 0)
      address   20 bytes
      bytes32   32 bytes
      string    len:u16 big-endian (<= 1024) then UTF-8
      bytes     len:u16 big-endian (<= 4096) then the bytes
      bool      1 byte, 0 or 1
      uint[]    count:u16 (<= 1024) then that many uints
      order     an Order body (no tag)
      sig       65 bytes

Decoding refuses: an unknown tag, a frame over ``MAX_FRAME_BYTES``, a short read, trailing
bytes, a non-minimal integer, invalid UTF-8, a bool other than 0/1, and any value the type's
own validation refuses. Every refusal is a ``DecodeError`` naming the type, field and offset.
"""

from __future__ import annotations

from typing import Any

from pot.protocol import types as T

MAX_FRAME_BYTES = 64 * 1024

_TYPES: dict[int, type] = {cls.TAG: cls for cls in (
    T.Order, *T.MESSAGE_TYPES, T.SettlementSignature, *T.CHAIN_EVENTS, T.Tick, T.Result)}
_SIGNED_BIT = 0x80
_BY_NAME: dict[str, type] = {cls.__name__: cls for cls in _TYPES.values()}


class DecodeError(ValueError):
    """Malformed bytes; the message says where and why."""


# --- encode ---------------------------------------------------------------------------------

def _enc_uint(v: int, out: list[bytes]) -> None:
    n = (v.bit_length() + 7) // 8
    out.append(bytes([n]) + (v.to_bytes(n, "big") if n else b""))


def _enc_fields(obj: Any, out: list[bytes]) -> None:
    for attr, _w, kind in obj.FIELDS:
        v = getattr(obj, attr)
        if kind == "uint":
            _enc_uint(v, out)
        elif kind == "address":
            out.append(bytes.fromhex(v[2:]))
        elif kind in ("bytes32", "sig"):
            out.append(v)
        elif kind == "string":
            raw = v.encode("utf-8")
            out.append(len(raw).to_bytes(2, "big") + raw)
        elif kind == "bytes":
            out.append(len(v).to_bytes(2, "big") + v)
        elif kind == "bool":
            out.append(b"\x01" if v else b"\x00")
        elif kind == "uint[]":
            out.append(len(v).to_bytes(2, "big"))
            for x in v:
                _enc_uint(x, out)
        elif kind == "order":
            _enc_fields(v, out)
        else:  # pragma: no cover
            raise AssertionError(kind)


def _uint_bytes(v: int) -> bytes:
    n = (v.bit_length() + 7) // 8
    return n.to_bytes(1, "big") + v.to_bytes(n, "big")


def _str_bytes(v: str) -> bytes:
    raw = v.encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw


def _uints_bytes(v: tuple[int, ...]) -> bytes:
    return len(v).to_bytes(2, "big") + b"".join(map(_uint_bytes, v))


#: kind -> the expression of a field's encoding, ``{v}`` being the field's value
_FAST_ENC = {"uint": "_uint({v})", "address": "_fromhex({v}[2:])", "bytes32": "{v}", "sig": "{v}",
             "string": "_str({v})", "bytes": "_len2(len({v})) + {v}", "bool": "(b'\\x01' if {v} else b'\\x00')",
             "uint[]": "_uints({v})", "order": "_order({v})"}


def _fast_encoder(cls: type) -> Any:
    """``obj -> body bytes`` for one type, unrolled from its FIELDS (the same layout as
    ``_enc_fields``; tests/protocol compares the two)."""
    parts = ", ".join(_FAST_ENC[kind].format(v=f"d[{attr!r}]") for attr, _w, kind in cls.FIELDS)
    src = f"def body(obj):\n    d = obj.__dict__\n    return b''.join(({parts},))\n"
    scope = {"_uint": _uint_bytes, "_str": _str_bytes, "_uints": _uints_bytes, "_fromhex": bytes.fromhex,
             "_len2": lambda n: n.to_bytes(2, "big"), "_order": _BODY.get(T.Order)}
    exec(src, scope)  # noqa: S102 - source built from the class's own schema
    return scope["body"]


#: type -> its body encoder; the tag byte goes in front
_BODY: dict[type, Any] = {}
_BODY[T.Order] = _fast_encoder(T.Order)
for _cls in _TYPES.values():
    _BODY[_cls] = _fast_encoder(_cls)
del _cls
_TAG_BYTE = {cls: bytes([cls.TAG]) for cls in _TYPES.values()}
_SIGNED_TAG_BYTE = {cls: bytes([cls.TAG | _SIGNED_BIT]) for cls in T.MESSAGE_TYPES}


def encode(obj: Any) -> bytes:
    """Canonical bytes of an op, an Order or a Result."""
    cls = type(obj)
    if cls is T.Signed:
        msg = obj.message
        data = _SIGNED_TAG_BYTE[type(msg)] + _BODY[type(msg)](msg) + obj.signature
    else:
        body = _BODY.get(cls)
        if body is None:
            raise TypeError(f"cannot encode {cls.__name__}")
        data = _TAG_BYTE[cls] + body(obj)
    if len(data) > MAX_FRAME_BYTES:
        raise ValueError(f"encoded {cls.__name__} is {len(data)} bytes > {MAX_FRAME_BYTES}")
    return data


def _encode_generic(obj: Any) -> bytes:
    """``encode`` by the loop over FIELDS (reference for tests/protocol)."""
    out: list[bytes] = []
    if isinstance(obj, T.Signed):
        out.append(bytes([obj.message.TAG | _SIGNED_BIT]))
        _enc_fields(obj.message, out)
        out.append(obj.signature)
    else:
        out.append(bytes([obj.TAG]))
        _enc_fields(obj, out)
    return b"".join(out)


# --- decode ---------------------------------------------------------------------------------

class _Reader:
    __slots__ = ("data", "pos", "where")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.where = "frame"

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError(f"{self.where}: need {n} bytes at offset {self.pos}, "
                              f"only {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def uint(self) -> int:
        n = self.take(1)[0]
        if n > 32:
            raise DecodeError(f"{self.where}: integer length {n} > 32 at offset {self.pos - 1}")
        raw = self.take(n)
        if n and raw[0] == 0:
            raise DecodeError(f"{self.where}: non-minimal integer encoding at offset {self.pos - n}")
        return int.from_bytes(raw, "big")

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")


#: per type: (attribute, kind, "Type.attribute" for error messages), built once
_PLANS: dict[type, tuple[tuple[str, str, str], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, str, str], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple((attr, kind, f"{cls.__name__}.{attr}") for attr, _w, kind in cls.FIELDS)
    return plan


def _dec_fields(cls: type, r: _Reader) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for attr, kind, where in _PLANS.get(cls) or _plan(cls):
        r.where = where
        if kind == "uint":
            kw[attr] = r.uint()
        elif kind == "address":
            kw[attr] = T.checksum(r.take(20))
        elif kind == "bytes32":
            kw[attr] = r.take(32)
        elif kind == "sig":
            kw[attr] = r.take(65)
        elif kind == "string":
            n = r.u16()
            if n > T.MAX_STRING_BYTES:
                raise DecodeError(f"{r.where}: string of {n} bytes > {T.MAX_STRING_BYTES}")
            try:
                kw[attr] = r.take(n).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"{r.where}: invalid UTF-8") from exc
        elif kind == "bytes":
            n = r.u16()
            if n > T.MAX_BYTES:
                raise DecodeError(f"{r.where}: {n} bytes > {T.MAX_BYTES}")
            kw[attr] = r.take(n)
        elif kind == "bool":
            b = r.take(1)[0]
            if b > 1:
                raise DecodeError(f"{r.where}: bool byte must be 0 or 1, got {b}")
            kw[attr] = bool(b)
        elif kind == "uint[]":
            n = r.u16()
            if n > T.MAX_LIST:
                raise DecodeError(f"{r.where}: list of {n} > {T.MAX_LIST} items")
            kw[attr] = tuple(r.uint() for _ in range(n))
        elif kind == "order":
            kw[attr] = _build(T.Order, _dec_fields(T.Order, r))
        else:  # pragma: no cover
            raise AssertionError(kind)
    return kw


def _build(cls: type, kw: dict[str, Any]) -> Any:
    """The object of fields ``_dec_fields`` read. Every check the type's ``__post_init__`` makes
    (lengths, ranges, UTF-8, sizes) the reader made while reading, and addresses come out
    checksummed, so the object is built without validating (and checksumming) it a second time."""
    obj = object.__new__(cls)
    obj.__dict__.update(kw)
    return obj


def _decode_checked(data: bytes) -> Any:
    """``decode`` by the reader that tracks where it is: the precise refusal for bad bytes."""
    r = _Reader(data)
    tag = r.take(1)[0]
    signed = bool(tag & _SIGNED_BIT)
    cls = _TYPES.get(tag & ~_SIGNED_BIT)
    if cls is None or (signed and not issubclass(cls, T.Message)):
        raise DecodeError(f"unknown tag 0x{tag:02x}")
    obj = _build(cls, _dec_fields(cls, r))
    if signed:
        r.where = f"{cls.__name__}.signature"
        obj = _build(T.Signed, {"message": obj, "signature": r.take(65)})
    if r.pos != len(data):
        raise DecodeError(f"{len(data) - r.pos} trailing bytes after {cls.__name__}")
    return obj


# --- fast decoders ---------------------------------------------------------------------------
# Every replica decodes every request, so each type gets a decoder unrolled from its FIELDS (as
# dataclasses build ``__init__``): straight-line slicing with the same checks as the reader, but
# no position bookkeeping for error messages. It reads past the end silently (a short slice) and
# then fails the final length check, so any frame it does not accept whole, or that raises on the
# way, goes to ``_decode_checked``, which refuses it precisely. tests/protocol checks that both
# agree on valid and mangled frames.

_UINT = """    n = data[p]
    if n > 32 or (n and data[p + 1] == 0):
        raise ValueError
    {out} = _int(data[p + 1:p + 1 + n], "big")
    p += 1 + n
"""
_FAST_FIELD = {
    "uint": _UINT,
    "address": "    {out} = _checksum(data[p:p + 20])\n    p += 20\n",
    "bytes32": "    {out} = data[p:p + 32]\n    p += 32\n",
    "sig": "    {out} = data[p:p + 65]\n    p += 65\n",
    "string": """    n = _int(data[p:p + 2], "big")
    if n > _MAX_STRING:
        raise ValueError
    {out} = data[p + 2:p + 2 + n].decode("utf-8")
    p += 2 + n
""",
    "bytes": """    n = _int(data[p:p + 2], "big")
    if n > _MAX_BYTES:
        raise ValueError
    {out} = data[p + 2:p + 2 + n]
    p += 2 + n
""",
    "bool": """    n = data[p]
    if n > 1:
        raise ValueError
    {out} = n == 1
    p += 1
""",
    "uint[]": """    count = _int(data[p:p + 2], "big")
    if count > _MAX_LIST:
        raise ValueError
    p += 2
    items = []
    for _ in range(count):
""" + "\n".join("    " + line for line in _UINT.format(out="x").splitlines()) + """
        items.append(x)
    {out} = tuple(items)
""",
    "order": "    {out}, p = _order(data, p)\n",
}


def _fast_decoder(cls: type) -> Any:
    """``(data, p) -> (object, end)`` for one type's body starting at ``p``."""
    lines = ["def fast(data, p):\n"]
    for i, (_attr, _w, kind) in enumerate(cls.FIELDS):
        lines.append(_FAST_FIELD[kind].format(out=f"v{i}"))
    values = ", ".join(f"{attr!r}: v{i}" for i, (attr, _w, _k) in enumerate(cls.FIELDS))
    lines.append(f"    obj = _new(cls)\n    obj.__dict__.update({{{values}}})\n    return obj, p\n")
    scope = {"cls": cls, "_new": object.__new__, "_int": int.from_bytes, "_checksum": T.checksum,
             "_MAX_STRING": T.MAX_STRING_BYTES, "_MAX_BYTES": T.MAX_BYTES, "_MAX_LIST": T.MAX_LIST,
             "_order": _FAST.get(T.Order.TAG)}
    exec("".join(lines), scope)  # noqa: S102 - source built from the class's own schema
    return scope["fast"]


def _signed_decoder(body: Any) -> Any:
    def fast(data: bytes, p: int) -> tuple[Any, int]:
        msg, p = body(data, p)
        out = object.__new__(T.Signed)
        out.__dict__.update({"message": msg, "signature": data[p:p + 65]})
        return out, p + 65
    return fast


#: tag -> fast decoder of the frame's body (signed messages under TAG | 0x80)
_FAST: dict[int, Any] = {}
_FAST[T.Order.TAG] = _fast_decoder(T.Order)
for _cls in _TYPES.values():
    _FAST[_cls.TAG] = _fast_decoder(_cls)
    if issubclass(_cls, T.Message):
        _FAST[_cls.TAG | _SIGNED_BIT] = _signed_decoder(_FAST[_cls.TAG])
del _cls


def decode(data: bytes) -> Any:
    """The op, Order or Result in ``data``; ``DecodeError`` for anything not canonical."""
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    if len(data) > MAX_FRAME_BYTES:
        raise DecodeError(f"frame of {len(data)} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    if not data:
        raise DecodeError("empty frame")
    fast = _FAST.get(data[0])
    if fast is not None:
        try:
            obj, end = fast(data, 1)
        except (IndexError, ValueError):
            pass
        else:
            if end == len(data):
                return obj
    return _decode_checked(data)


# --- JSON form (ledger state, snapshots, the HTTP API) --------------------------------------

def _jv(kind: str, v: Any) -> Any:
    if kind in ("bytes32", "sig", "bytes"):
        return "0x" + v.hex()
    if kind == "uint[]":
        return list(v)
    if kind == "order":
        return to_json(v)
    return v


def to_json(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict (bytes as 0x-hex, ints as ints) with the type's name under ``type``."""
    if isinstance(obj, T.Signed):
        return {"type": "Signed", "message": to_json(obj.message), "signature": "0x" + obj.signature.hex()}
    d: dict[str, Any] = {"type": type(obj).__name__}
    for attr, wire, kind in obj.FIELDS:
        d[wire] = _jv(kind, getattr(obj, attr))
    return d


def _hex(v: Any, where: str) -> bytes:
    if not isinstance(v, str) or not v.startswith("0x"):
        raise DecodeError(f"{where}: expected 0x-hex")
    try:
        return bytes.fromhex(v[2:])
    except ValueError as exc:
        raise DecodeError(f"{where}: bad hex") from exc


def from_json(d: dict[str, Any]) -> Any:
    """Inverse of ``to_json``, as strict as ``decode``."""
    if not isinstance(d, dict) or "type" not in d:
        raise DecodeError("expected an object with a 'type'")
    if d["type"] == "Signed":
        msg = from_json(d.get("message"))
        if not isinstance(msg, T.Message):
            raise DecodeError("Signed.message is not a participant message")
        try:
            return T.Signed(msg, _hex(d.get("signature"), "Signed.signature"))
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc
    cls = _BY_NAME.get(d["type"])
    if cls is None:
        raise DecodeError(f"unknown type {d['type']!r}")
    expected = {"type"} | {w for _a, w, _k in cls.FIELDS}
    if set(d) != expected:
        raise DecodeError(f"{cls.__name__}: fields {sorted(set(d) ^ expected)} missing or unexpected")
    kw: dict[str, Any] = {}
    for attr, wire, kind in cls.FIELDS:
        v = d[wire]
        if kind in ("bytes32", "sig", "bytes"):
            v = _hex(v, f"{cls.__name__}.{wire}")
        elif kind == "uint[]":
            if not isinstance(v, list):
                raise DecodeError(f"{cls.__name__}.{wire}: expected a list")
            v = tuple(v)
        elif kind == "order":
            v = from_json(v)
        kw[attr] = v
    try:
        return cls(**kw)
    except ValueError as exc:
        raise DecodeError(f"{cls.__name__}: {exc}") from exc
