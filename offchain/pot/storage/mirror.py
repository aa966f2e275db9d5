"""A local store that fetches what it lacks from remote ones: how a participant on another machine
reads content with only the network's URLs.

Writes go to the local store. A read of content the local store lacks asks each remote in turn
(the committee's replicas serve what was uploaded to them at ``/ipfs/<cid>``), verifies the bytes
against the CID as every remote read is, and keeps them locally, so the next read is local and
a model fetched once is not fetched again. No remote is trusted: a lying or broken one is
skipped and the next one asked.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .base import ContentStore
from .cid import CID
from .errors import CorruptObject, NotFound, StorageError, TooLarge

log = logging.getLogger("pot.storage.mirror")


class MirroredStore(ContentStore):
    def __init__(self, local: ContentStore, remotes: Sequence[ContentStore]) -> None:
        self.local = local
        self.remotes = list(remotes)
        self.max_size = local.max_size

    def __repr__(self) -> str:
        return f"MirroredStore({self.local!r}, {len(self.remotes)} remotes)"

    def add_stream(self, chunks: Iterable[bytes], *, cid_version: int = 1, pin: bool = True) -> str:
        return self.local.add_stream(chunks, cid_version=cid_version, pin=pin)

    def _fetch(self, cid: str, max_size: int | None, deadline: float | None) -> None:
        """Bring ``cid`` into the local store from the first remote that has it, verified."""
        parsed = CID.parse(cid)
        tmp_dir = getattr(self.local, "root", None)
        failures = []
        for remote in self.remotes:
            fd, name = tempfile.mkstemp(prefix=".mirror-", dir=tmp_dir)
            os.close(fd)
            tmp = Path(name)
            try:
                remote.fetch(str(parsed), tmp, max_size=self._limit(max_size), deadline=deadline)
                got = self.local.add_file(tmp, cid_version=parsed.version, pin=True)
                if got != str(parsed):  # the remote verified it; our own import must agree
                    raise CorruptObject(str(parsed), f"imported as {got}")
                return
            except TooLarge:
                raise
            except StorageError as exc:
                failures.append(f"{getattr(remote, 'base_url', remote)}: {exc}")
            finally:
                tmp.unlink(missing_ok=True)
        detail = "; ".join(failures[:4]) if failures else "no remote to ask"
        raise NotFound(str(parsed), f"not here and not at any of {len(self.remotes)} remotes ({detail})")

    def stream(self, cid: str, *, max_size: int | None = None, deadline: float | None = None) -> Iterator[bytes]:
        if not self.local.has(cid):
            self._fetch(cid, max_size, deadline)
        return self.local.stream(cid, max_size=max_size, deadline=deadline)

    def has(self, cid: str) -> bool:
        return self.local.has(cid)

    def size(self, cid: str) -> int:
        if self.local.has(cid):
            return self.local.size(cid)
        for remote in self.remotes:
            try:
                return remote.size(cid)
            except StorageError:
                continue
        raise NotFound(cid, f"not here and not at any of {len(self.remotes)} remotes")

    def pin(self, cid: str) -> None:
        if not self.local.has(cid):
            self._fetch(cid, None, None)
        self.local.pin(cid)

    def close(self) -> None:
        self.local.close()
        for r in self.remotes:
            r.close()
