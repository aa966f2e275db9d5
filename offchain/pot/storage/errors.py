"""Errors of ``pot.storage``: every failed fetch says which CID and why, never just "bad data"."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidCid(StorageError, ValueError):
    """The string is not a CID this package can handle (bad multibase, codec or hash function)."""


class NotFound(StorageError, KeyError):
    """No block for this CID in the store (or the node answered that it has none)."""

    def __init__(self, cid: str, detail: str = "") -> None:
        self.cid = cid
        super().__init__(f"not found: {cid}" + (f" ({detail})" if detail else ""))

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class CorruptObject(StorageError):
    """Bytes do not hash to the CID that names them: disk corruption, a lying node or gateway."""

    def __init__(self, cid: str, detail: str) -> None:
        self.cid = cid
        super().__init__(f"corrupt object {cid}: {detail}")


class TooLarge(StorageError):
    """The object is (or claims to be) over the reader's size limit; refused before it is read whole."""

    def __init__(self, cid: str, size: int | None, limit: int) -> None:
        self.cid, self.size, self.limit = cid, size, limit
        what = f"is {size} bytes, over" if size is not None else "exceeds"
        super().__init__(f"object {cid} {what} the size limit of {limit} bytes")


class Unsupported(StorageError):
    """Valid IPFS content that this package does not read (directories, HAMT shards, symlinks)."""


class DeadlineExceeded(StorageError):
    """A fetch took longer than its deadline (a peer that trickles bytes, a walk that never ends)."""

    def __init__(self, cid: str, seconds: float) -> None:
        self.cid, self.seconds = cid, seconds
        super().__init__(f"fetching {cid} took longer than its deadline of {seconds:g}s")
