"""The one interface every backend implements; the workers only ever see :class:`ContentStore`."""

from __future__ import annotations

import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .cid import CID
from .errors import TooLarge

#: Default ceiling for one object. Large enough for any model this network trains on one GPU,
#: small enough that a hostile CID cannot fill a disk. Every call can pass its own.
DEFAULT_MAX_SIZE = 8 * 1024**3

READ_SIZE = 1024 * 1024

#: Every fetch has a total deadline, by default this base plus the time its size limit takes at
#: FETCH_MIN_RATE: a peer that sends one byte every two seconds, or a DAG built to be walked for
#: hours, cannot hold a reader longer than an honest slow transfer of the largest allowed object.
FETCH_BASE_S = 30.0
FETCH_MIN_RATE = 1024 * 1024  # bytes per second


def default_deadline(max_size: int) -> float:
    """Seconds a fetch bounded by ``max_size`` may take by default."""
    return FETCH_BASE_S + max_size / FETCH_MIN_RATE

#: Called with the number of bytes just processed; drives progress bars.
Progress = Callable[[int], None]


def iter_file_obj(fobj: BinaryIO, progress: Progress | None = None) -> Iterator[bytes]:
    while chunk := fobj.read(READ_SIZE):
        if progress:
            progress(len(chunk))
        yield chunk


class ContentStore(ABC):
    """Content-addressed storage of files: put bytes in, get a CID; give a CID, get verified bytes.

    CIDs are strings, ``bafy…``/``bafk…`` for CIDv1 (the default, raw leaves) and ``Qm…`` for
    CIDv0; both are what ``ipfs add`` would print for the same bytes. Every read is checked against
    the CID it asked for, and refuses objects over ``max_size`` before reading them whole.
    """

    max_size: int = DEFAULT_MAX_SIZE

    # -- writing
    @abstractmethod
    def add_stream(self, chunks: Iterable[bytes], *, cid_version: int = 1, pin: bool = True) -> str:
        """Store the concatenation of ``chunks``; return its CID."""

    def add_bytes(self, data: bytes, *, cid_version: int = 1, pin: bool = True) -> str:
        self._check_add_size(len(data), "<bytes>")
        return self.add_stream([data], cid_version=cid_version, pin=pin)

    def add_file(self, path: str | os.PathLike, *, cid_version: int = 1, pin: bool = True,
                 progress: Progress | None = None) -> str:
        path = Path(path)
        self._check_add_size(path.stat().st_size, str(path))
        with path.open("rb") as fobj:
            return self.add_stream(iter_file_obj(fobj, progress), cid_version=cid_version, pin=pin)

    def _check_add_size(self, size: int, what: str) -> None:
        if size > self.max_size:
            raise TooLarge(what, size, self.max_size)

    # -- reading
    @abstractmethod
    def stream(self, cid: str, *, max_size: int | None = None, deadline: float | None = None) -> Iterator[bytes]:
        """Yield the object's bytes. Backends that can verify block by block (embedded store) yield
        only verified bytes; the others verify the whole and raise at the end, so do not act on
        streamed bytes before the iterator is exhausted: use :meth:`get` or :meth:`fetch`.

        ``deadline``: seconds for the whole object (default :func:`default_deadline` of the size
        limit); past it the read stops with :class:`DeadlineExceeded`."""

    def get(self, cid: str, *, max_size: int | None = None, deadline: float | None = None) -> bytes:
        """The whole object, verified against ``cid``."""
        return b"".join(self.stream(cid, max_size=max_size, deadline=deadline))

    def fetch(self, cid: str, dest: str | os.PathLike, *, max_size: int | None = None,
              progress: Progress | None = None, deadline: float | None = None) -> int:
        """Write the object to ``dest``; the file appears only once every byte is verified.
        Returns its size."""
        dest = Path(dest)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent or ".")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for piece in self.stream(cid, max_size=max_size, deadline=deadline):
                    out.write(piece)
                    size += len(piece)
                    if progress:
                        progress(len(piece))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    @abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the store holds the object's root block (a cheap, local-only check)."""

    @abstractmethod
    def size(self, cid: str) -> int:
        """The file size the object declares."""

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Keep the object: a pinned object survives garbage collection."""

    def _limit(self, max_size: int | None) -> int:
        return self.max_size if max_size is None else max_size

    @staticmethod
    def _until(limit: int, deadline: float | None) -> tuple[float, float]:
        """(seconds allowed, monotonic time they end) for a fetch bounded by ``limit`` bytes."""
        seconds = default_deadline(limit) if deadline is None else deadline
        return seconds, time.monotonic() + seconds

    @staticmethod
    def parse(cid: str) -> CID:
        return CID.parse(cid)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
