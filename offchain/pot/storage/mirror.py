"""A local store that fetches what it lacks from remote ones: how a participant on another machine
reads content with only the network's URLs.

Writes go to the local store. A read of content the local store lacks asks each remote in turn
(the committee's replicas serve what was uploaded to them at ``/ipfs/<cid>``), verifies the bytes
against the CID as every remote read is, and keeps them locally, so the next read is local and
a model fetched once is not fetched again. No remote is trusted: a lying or broken one is
skipped and the next one asked.

A frozen replica (stopped, swapping, partitioned after the handshake) accepts the connection and
never answers. The remotes ``open_store`` builds give up on a read that waits longer than
``STALL_S`` (a transfer may take long, but no read may stall), and a remote that failed is asked
last for ``COOLDOWN_S``: a frozen replica costs a reader a few seconds once, not every read a
timeout, which matters when a validation window is a few seconds long.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .base import ContentStore
from .cid import CID
from .errors import CorruptObject, NotFound, StorageError, TooLarge

log = logging.getLogger("pot.storage.mirror")

#: the longest one read from a mirror may wait for bytes (the remotes' read timeout)
STALL_S = 4.0
#: how long a remote that failed is asked only after the others
COOLDOWN_S = 60.0


class MirroredStore(ContentStore):
    def __init__(self, local: ContentStore, remotes: Sequence[ContentStore]) -> None:
        self.local = local
        self.max_size = local.max_size
        # (remotes, when each failed last): swapped whole, so a fetch in another thread keeps its own
        self._remotes: tuple[list[ContentStore], list[float]] = (list(remotes), [float("-inf")] * len(remotes))
        self._replaced: list[ContentStore] = []

    @property
    def remotes(self) -> list[ContentStore]:
        return self._remotes[0]

    def set_remotes(self, remotes: Sequence[ContentStore]) -> None:
        """Fetch from ``remotes`` from now on (the committee moved); the old ones close with the store."""
        self._replaced += self._remotes[0]
        self._remotes = (list(remotes), [float("-inf")] * len(remotes))

    def _in_turn(self) -> list[tuple[ContentStore, list[float], int]]:
        """Remotes to ask (with their failure times and index): those that have not failed lately
        first, in their order."""
        now = time.monotonic()
        remotes, failed_at = self._remotes
        order = sorted(range(len(remotes)), key=lambda i: now - failed_at[i] < COOLDOWN_S)
        return [(remotes[i], failed_at, i) for i in order]

    def __repr__(self) -> str:
        return f"MirroredStore({self.local!r}, {len(self.remotes)} remotes)"

    def add_stream(self, chunks: Iterable[bytes], *, cid_version: int = 1, pin: bool = True) -> str:
        return self.local.add_stream(chunks, cid_version=cid_version, pin=pin)

    def _fetch(self, cid: str, max_size: int | None, deadline: float | None) -> None:
        """Bring ``cid`` into the local store from the first remote that has it, verified."""
        parsed = CID.parse(cid)
        tmp_dir = getattr(self.local, "root", None)
        failures = []
        for remote, failed_at, i in self._in_turn():
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
            except NotFound as exc:  # answered: it is alive, it only lacks this object
                failures.append(f"{getattr(remote, 'base_url', remote)}: {exc}")
            except StorageError as exc:
                failed_at[i] = time.monotonic()
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
        for remote, failed_at, i in self._in_turn():
            try:
                return remote.size(cid)
            except NotFound:
                continue
            except StorageError:
                failed_at[i] = time.monotonic()
        raise NotFound(cid, f"not here and not at any of {len(self.remotes)} remotes")

    def pin(self, cid: str) -> None:
        if not self.local.has(cid):
            self._fetch(cid, None, None)
        self.local.pin(cid)

    def close(self) -> None:
        self.local.close()
        for r in self.remotes + self._replaced:
            r.close()
