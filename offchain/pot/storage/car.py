"""CAR v1 files (https://ipld.io/specs/transport/car/carv1/): what ``ipfs dag import`` reads.

A CAR is a varint-prefixed dag-cbor header ``{"roots": [CID], "version": 1}`` then one section
per block: ``varint(len(cid) + len(block)) cid block``. The header is the only CBOR we need, so it
is written by hand like the rest, and read by a decoder that knows only that shape: nesting of
at most three levels (map, list, tagged CID), definite lengths checked against the bytes
present, text keys of valid UTF-8 and no repeats. Anything else is a :class:`StorageError` that
says what, never a RecursionError, TypeError or UnicodeDecodeError.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from .cid import CID, decode_varint, encode_varint
from .errors import CorruptObject, StorageError

MAX_HEADER = 1024 * 1024
MAX_SECTION = 8 * 1024 * 1024
#: map -> roots list -> tag 42 -> bytes: a CAR v1 header never nests deeper
MAX_HEADER_DEPTH = 4
#: a CID in binary: version, codec and a multihash of at most a 64-byte digest
MAX_CID_BYTES = 128


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
    """Pick the roots out of a dag-cbor header: only what honest writers emit, bounded."""
    pos = 0

    def fail(what: str) -> StorageError:
        return StorageError(f"CAR header: {what} (at byte {pos})")

    def take(n: int) -> bytes:
        nonlocal pos
        if n > len(raw) - pos:
            raise fail(f"needs {n} bytes, {len(raw) - pos} left (truncated)")
        pos += n
        return raw[pos - n:pos]

    def head() -> tuple[int, int]:
        first = take(1)[0]
        major, info = first >> 5, first & 31
        if info < 24:
            return major, info
        width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if width is None:
            raise fail("indefinite-length or reserved CBOR item")
        return major, int.from_bytes(take(width), "big")

    def item(depth: int):
        if depth > MAX_HEADER_DEPTH:
            raise fail(f"nested deeper than {MAX_HEADER_DEPTH} levels")
        major, n = head()
        if major == 0:
            return n
        if major == 2:
            return take(n)
        if major == 3:
            try:
                return take(n).decode("utf-8")
            except UnicodeDecodeError:
                raise fail("text that is not UTF-8") from None
        if major in (4, 5) and n > len(raw) - pos:
            raise fail(f"claims {n} items in {len(raw) - pos} bytes")
        if major == 4:
            return [item(depth + 1) for _ in range(n)]
        if major == 5:
            out: dict[str, object] = {}
            for _ in range(n):
                key = item(depth + 1)
                if not isinstance(key, str):
                    raise fail(f"map key of type {type(key).__name__}; dag-cbor keys are text")
                if key in out:
                    raise fail(f"repeated key {key[:40]!r}")
                out[key] = item(depth + 1)
            return out
        if major == 6 and n == 42:
            val = item(depth + 1)
            if not isinstance(val, bytes) or not val.startswith(b"\0") or len(val) > MAX_CID_BYTES + 1:
                raise fail("malformed CID")
            try:
                return CID.from_bytes(val[1:])
            except (StorageError, ValueError, IndexError) as exc:
                raise fail(f"malformed CID: {exc}") from None
        raise fail(f"unexpected CBOR major type {major}" + (f" (tag {n})" if major == 6 else ""))

    header = item(1)
    if pos != len(raw):
        raise fail(f"{len(raw) - pos} bytes after the header")
    if not isinstance(header, dict) or header.get("version") != 1:
        raise StorageError("not a CAR v1 header")
    roots = header.get("roots")
    if not isinstance(roots, list) or not roots or not all(isinstance(r, CID) for r in roots):
        raise StorageError("CAR header has no valid roots")
    return roots


def read_car(inp: BinaryIO, *, max_block: int = MAX_SECTION) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Return the roots and an iterator of (CID, block), each block verified against its CID and
    refused over ``max_block`` bytes before it is read."""
    hlen = _read_varint(inp)
    if hlen is None or hlen > MAX_HEADER:
        raise StorageError("not a CAR file (missing or oversized header)")
    raw = inp.read(hlen)
    if len(raw) != hlen:
        raise StorageError("CAR truncated inside its header")
    roots = _parse_header(raw)
    max_section = max_block + MAX_CID_BYTES

    def sections() -> Iterator[tuple[CID, bytes]]:
        while (n := _read_varint(inp)) is not None:
            if n > max_section:
                raise StorageError(f"CAR section of {n} bytes is over the limit of {max_block} bytes a block")
            body = inp.read(n)
            if len(body) != n:
                raise StorageError("CAR truncated inside a section")
            try:
                cid, end = CID.read(body, 0)
            except (ValueError, IndexError) as exc:
                raise StorageError(f"CAR section with a malformed CID: {exc}") from None
            block = body[end:]
            if len(block) > max_block:
                raise StorageError(f"CAR block {cid} is {len(block)} bytes, over the limit of {max_block}")
            if not cid.verify(block):
                raise CorruptObject(str(cid), "CAR block does not hash to its CID")
            yield cid, block

    return roots, sections()
