"""The default store: IPFS blocks in a directory, no daemon needed.

Layout (one directory, safe to share between local processes)::

    DIR/blocks/<2 chars>/<base32 multihash>   one file per block, named by its hash
    DIR/pins/<cid>                            empty file per pinned root
    DIR/tmp/                                  writes in progress

Every block is written to ``tmp/``, fsynced, then renamed into place, so a block file is either
whole or absent. An import writes the root block last, after every other block and its
directory are durable: a crash mid-import leaves only orphan (valid) blocks and no root, so
``has(cid)`` never answers yes for content that is not all there. Reads re-hash every block.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .base import DEFAULT_MAX_SIZE, ContentStore
from .car import read_car, write_car
from .cid import CID
from .errors import NotFound, StorageError
from .unixfs import MAX_BLOCK_SIZE, Importer, WalkLimits, declared_size, iter_blocks, iter_file


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EmbeddedStore(ContentStore):
    def __init__(self, root: str | os.PathLike, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.root = Path(root)
        self.max_size = max_size
        self.blocks_dir = self.root / "blocks"
        self.pins_dir = self.root / "pins"
        self.tmp_dir = self.root / "tmp"
        for d in (self.blocks_dir, self.pins_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    # ------------------------------------------------------------ blocks
    def block_path(self, cid: CID | str) -> Path:
        key = CID.parse(cid).key
        return self.blocks_dir / key[-3:-1] / key  # flatfs's next-to-last/2 sharding, as Kubo

    def has_block(self, cid: CID | str) -> bool:
        return self.block_path(cid).exists()

    def get_block(self, cid: CID | str) -> bytes:
        """The raw block, unverified (callers go through unixfs, which verifies)."""
        cid = CID.parse(cid)
        try:
            with self.block_path(cid).open("rb") as f:
                block = f.read(MAX_BLOCK_SIZE + 1)
        except FileNotFoundError:
            raise NotFound(str(cid), f"no block in {self.root}") from None
        if len(block) > MAX_BLOCK_SIZE:
            raise StorageError(f"block {cid} is over {MAX_BLOCK_SIZE} bytes; refusing to read it")
        return block

    def put_block(self, cid: CID, block: bytes, *, sync_dir: bool = True) -> Path:
        if not cid.verify(block):
            raise StorageError(f"refusing to store a block that does not hash to {cid}")
        path = self.block_path(cid)
        if path.exists():
            return path
        path.parent.mkdir(exist_ok=True)
        self._atomic_write(path, block, sync_dir=sync_dir)
        return path

    def _atomic_write(self, path: Path, data: bytes, *, sync_dir: bool) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if sync_dir:
            _fsync_dir(path.parent)

    # ------------------------------------------------------------ ContentStore
    def add_stream(self, chunks: Iterable[bytes], *, cid_version: int = 1, pin: bool = True) -> str:
        touched: set[Path] = set()
        held: list[tuple[CID, bytes]] = []

        def sink(cid: CID, block: bytes) -> None:
            # Hold each block back by one: the last one emitted is the root, written after the rest.
            if held:
                touched.add(self.put_block(*held.pop(), sync_dir=False).parent)
            held.append((cid, block))

        imp = Importer(cid_version, sink)
        for chunk in chunks:
            imp.update(chunk)
            if imp.size > self.max_size:
                raise StorageError(f"content is over the store's size limit of {self.max_size} bytes")
        root = imp.finish()
        for d in touched:
            _fsync_dir(d)
        root_cid, root_block = held.pop()
        assert root_cid == root
        self.put_block(root_cid, root_block)
        if pin:
            self.pin(str(root))
        return str(root)

    def stream(self, cid: str, *, max_size: int | None = None, deadline: float | None = None,
               check: Callable[[], None] | None = None) -> Iterator[bytes]:
        """``check``: called now and then during the walk; it may raise to stop it (the gateway's
        "is the client still there?")."""
        limit = self._limit(max_size)
        seconds, _ = self._until(limit, deadline)
        return iter_file(self.get_block, cid, limit, WalkLimits(seconds, check))

    def has(self, cid: str) -> bool:
        return self.has_block(cid)

    def size(self, cid: str) -> int:
        return declared_size(self.get_block, CID.parse(cid))

    def verify(self, cid: str) -> int:
        """Re-hash every block of the object; return how many there are."""
        return sum(1 for _ in iter_blocks(self.get_block, cid))

    def pin(self, cid: str) -> None:
        parsed = CID.parse(cid)
        self.verify(str(parsed))  # a pin promises the whole DAG is here and sound
        path = self.pins_dir / str(parsed)
        if not path.exists():
            self._atomic_write(path, b"", sync_dir=True)

    def unpin(self, cid: str) -> None:
        (self.pins_dir / str(CID.parse(cid))).unlink(missing_ok=True)

    def pins(self) -> list[str]:
        return sorted(p.name for p in self.pins_dir.iterdir())

    def gc(self) -> int:
        """Delete blocks no pin reaches (orphans of interrupted imports included); return how many.
        Not safe while another process imports into the same directory."""
        keep: set[str] = set()
        for root in self.pins():
            keep.update(cid.key for cid, _ in iter_blocks(self.get_block, root))
        removed = 0
        for path in self.blocks_dir.glob("*/*"):
            if path.name not in keep:
                path.unlink()
                removed += 1
        for path in self.tmp_dir.iterdir():
            path.unlink()
        return removed

    # ------------------------------------------------------------ CAR
    def export_car(self, cid: str, out: BinaryIO | str | os.PathLike) -> int:
        """Write the object's DAG as a CAR v1 (for ``ipfs dag import``); return the block count.
        Every block is verified on the way out."""
        root = CID.parse(cid)
        if isinstance(out, (str, os.PathLike)):
            dest = Path(out)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    n = write_car(f, [root], iter_blocks(self.get_block, root))
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return n
        return write_car(out, [root], iter_blocks(self.get_block, root))

    def import_car(self, inp: BinaryIO | str | os.PathLike, *, pin: bool = True) -> list[str]:
        """Store every block of a CAR (each verified); pin and return its roots.

        All or nothing: a CAR that fails (a bad block, a block over MAX_BLOCK_SIZE, a root whose
        DAG is incomplete) leaves none of the blocks it brought behind."""
        if isinstance(inp, (str, os.PathLike)):
            with open(inp, "rb") as f:
                return self.import_car(f, pin=pin)
        new: list[Path] = []
        pinned: list[str] = []
        try:
            roots, blocks = read_car(inp, max_block=MAX_BLOCK_SIZE)
            touched = set()
            for cid, block in blocks:
                path = self.block_path(cid)
                if not path.exists():
                    new.append(path)
                touched.add(self.put_block(cid, block, sync_dir=False).parent)
            for d in touched:
                _fsync_dir(d)
            if pin:
                for root in roots:
                    if not (self.pins_dir / str(root)).exists():
                        self.pin(str(root))
                        pinned.append(str(root))
        except BaseException:
            # another import may have written one of these meanwhile; it can write it again
            for cid in pinned:
                self.unpin(cid)
            for path in new:
                path.unlink(missing_ok=True)
            raise
        return [str(r) for r in roots]
