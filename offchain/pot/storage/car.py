"""CAR v1 files (https://ipld.io/specs/transport/car/carv1/): what ``ipfs dag import`` reads.

A CAR is a varint-prefixed dag-cbor header ``{"roots": [CID], "version": 1}`` then one section
per block: ``varint(len(cid) + len(block)) cid block``. The header is the only CBOR we need, so it
is written by hand like the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from .cid import CID, decode_varint, encode_varint
from .errors import CorruptObject, StorageError

MAX_HEADER = 1024 * 1024
MAX_SECTION = 8 * 1024 * 1024


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | info]) + n.to_bytes(width, "big")
    raise ValueError("CBOR length too large")


def _cbor_text(s: str) -> bytes:
    raw = s.encode()
    return _cbor_head(3, len(raw)) + raw


def encode_header(roots: list[CID]) -> bytes:
    # dag-cbor sorts map keys by length first: "roots" (5) before "version" (7).
    body = _cbor_head(5, 2) + _cbor_text("roots") + _cbor_head(4, len(roots))
    for root in roots:
        cid = b"\0" + root.to_bytes()  # tag 42 holds the binary CID behind a 0x00 multibase prefix
        body += b"\xd8\x2a" + _cbor_head(2, len(cid)) + cid
    body += _cbor_text("version") + _cbor_head(0, 1)
    return encode_varint(len(body)) + body


def write_car(out: BinaryIO, roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> int:
    """Write a CAR; return the number of blocks written (each block once, even if linked twice)."""
    out.write(encode_header(roots))
    seen: set[bytes] = set()
    count = 0
    for cid, block in blocks:
        raw = cid.to_bytes()
        if raw in seen:
            continue
        seen.add(raw)
        out.write(encode_varint(len(raw) + len(block)) + raw + block)
        count += 1
    return count


def _read_varint(inp: BinaryIO) -> int | None:
    buf = b""
    while True:
        b = inp.read(1)
        if not b:
            if buf:
                raise StorageError("CAR truncated inside a varint")
            return None
        buf += b
        if not b[0] & 0x80:
            return decode_varint(buf)[0]
        if len(buf) >= 9:
            raise StorageError("CAR has an over-long varint")


def _parse_header(raw: bytes) -> list[CID]:
    """Pick the roots out of a dag-cbor header: enough CBOR for what honest writers emit."""
    pos = 0

    def head() -> tuple[int, int]:
        nonlocal pos
        first = raw[pos]
        pos += 1
        major, info = first >> 5, first & 31
        if info < 24:
            return major, info
        width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if width is None:
            raise StorageError("CAR header uses indefinite-length CBOR")
        n = int.from_bytes(raw[pos:pos + width], "big")
        pos += width
        return major, n

    def item():
        nonlocal pos
        major, n = head()
        if major == 0:
            return n
        if major in (2, 3):
            val = raw[pos:pos + n]
            pos += n
            return val.decode() if major == 3 else val
        if major == 4:
            return [item() for _ in range(n)]
        if major == 5:
            return {item(): item() for _ in range(n)}
        if major == 6 and n == 42:
            val = item()
            if not isinstance(val, bytes) or not val.startswith(b"\0"):
                raise StorageError("CAR header has a malformed CID")
            return CID.from_bytes(val[1:])
        raise StorageError(f"unexpected CBOR major type {major} in CAR header")

    try:
        header = item()
    except IndexError:
        raise StorageError("CAR header truncated") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise StorageError("not a CAR v1 header")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise StorageError("CAR header has no valid roots")
    return roots


def read_car(inp: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Return the roots and an iterator of (CID, block), each block verified against its CID."""
    hlen = _read_varint(inp)
    if hlen is None or hlen > MAX_HEADER:
        raise StorageError("not a CAR file (missing or oversized header)")
    roots = _parse_header(inp.read(hlen))

    def sections() -> Iterator[tuple[CID, bytes]]:
        while (n := _read_varint(inp)) is not None:
            if n > MAX_SECTION:
                raise StorageError(f"CAR section of {n} bytes is over the {MAX_SECTION} byte limit")
            body = inp.read(n)
            if len(body) != n:
                raise StorageError("CAR truncated inside a section")
            cid, end = CID.read(body, 0)
            block = body[end:]
            if not cid.verify(block):
                raise CorruptObject(str(cid), "CAR block does not hash to its CID")
            yield cid, block

    return roots, sections()
