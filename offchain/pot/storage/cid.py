"""CIDs by hand: unsigned varints, sha2-256 multihashes, base32 (CIDv1) and base58btc (CIDv0).

Only what IPFS's default file import produces is accepted: sha2-256 multihashes, and the codecs
``raw`` (0x55) and ``dag-pb`` (0x70). Anything else is refused with :class:`InvalidCid` rather than
trusted, because a CID we cannot re-hash is a CID we cannot verify.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from .errors import InvalidCid

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
SHA2_256_LEN = 32

CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb"}

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def encode_varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """Return (value, next position). Refuses over-long encodings: 9 bytes cover 63 bits."""
    value = shift = 0
    for i in range(pos, min(len(buf), pos + 9)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise ValueError("truncated or over-long varint")


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise InvalidCid(f"not base58btc: {text!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode().lower().rstrip("=")


def b32decode(text: str) -> bytes:
    try:
        return base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except Exception:
        raise InvalidCid(f"not base32: {text!r}") from None


@dataclass(frozen=True, slots=True)
class CID:
    """A parsed CID; ``str(cid)`` gives the canonical text (base58btc for v0, base32 for v1)."""

    version: int
    codec: int
    multihash: bytes

    @classmethod
    def hash(cls, data: bytes, codec: int, version: int = 1) -> CID:
        if version == 0 and codec != DAG_PB:
            raise InvalidCid("CIDv0 can only name dag-pb blocks")
        return cls(version, codec, bytes([SHA2_256, SHA2_256_LEN]) + hashlib.sha256(data).digest())

    @property
    def digest(self) -> bytes:
        return self.multihash[2:]

    def to_bytes(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode(self.to_bytes())

    def verify(self, data: bytes) -> bool:
        return hashlib.sha256(data).digest() == self.digest

    @classmethod
    def parse(cls, text: str | CID) -> CID:
        if isinstance(text, CID):
            return text
        if not isinstance(text, str) or not text:
            raise InvalidCid(f"not a CID: {text!r}")
        text = text.strip()
        if text.startswith("/ipfs/"):
            text = text[len("/ipfs/"):]
        if len(text) == 46 and text.startswith("Qm"):
            return cls.from_bytes(b58decode(text))
        if text[0] == "b":
            return cls.from_bytes(b32decode(text[1:]))
        if text[0] == "z":
            return cls.from_bytes(b58decode(text[1:]))
        raise InvalidCid(f"unsupported CID or multibase (use base32 'b…' or CIDv0 'Qm…'): {text!r}")

    @classmethod
    def from_bytes(cls, raw: bytes) -> CID:
        cid, end = cls.read(raw, 0)
        if end != len(raw):
            raise InvalidCid("trailing bytes after CID")
        return cid

    @classmethod
    def read(cls, raw: bytes | memoryview, pos: int) -> tuple[CID, int]:
        """Parse a binary CID at ``pos`` (as found in dag-pb links and CAR sections)."""
        raw = bytes(raw)
        if raw[pos:pos + 2] == bytes([SHA2_256, SHA2_256_LEN]):
            end = pos + 2 + SHA2_256_LEN
            if end > len(raw):
                raise InvalidCid("truncated CIDv0")
            return cls(0, DAG_PB, raw[pos:end]), end
        try:
            version, pos = decode_varint(raw, pos)
            codec, pos = decode_varint(raw, pos)
            hash_fn, p = decode_varint(raw, pos)
            length, p = decode_varint(raw, p)
        except ValueError as exc:
            raise InvalidCid(f"malformed CID: {exc}") from None
        if version != 1:
            raise InvalidCid(f"unsupported CID version {version}")
        if codec not in CODEC_NAMES:
            raise InvalidCid(f"unsupported codec 0x{codec:x} (only raw and dag-pb)")
        if hash_fn != SHA2_256 or length != SHA2_256_LEN:
            raise InvalidCid(f"unsupported multihash 0x{hash_fn:x}/{length} (only sha2-256)")
        end = p + length
        if end > len(raw):
            raise InvalidCid("truncated multihash")
        return cls(1, codec, raw[pos:end]), end

    @property
    def key(self) -> str:
        """Block-store key: the multihash, so raw/dag-pb and v0/v1 names of a block share a file."""
        return b32encode(self.multihash)


def parse_cid(text: str | CID) -> CID:
    return CID.parse(text)
