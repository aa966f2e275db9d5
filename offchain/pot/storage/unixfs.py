"""UnixFS files in dag-pb, exactly as ``ipfs add`` builds them, and the verified walk back.

Import parameters are Kubo's defaults and nothing else: fixed-size chunks of 262144 bytes, the
balanced layout with at most 174 links per node, sha2-256. CIDv1 uses raw leaves (what
``ipfs add --cid-version=1`` does); CIDv0 wraps every chunk in a dag-pb UnixFS ``File`` node.
A different chunker or layout would give a different CID for the same bytes, which is why the
parameters are constants and not options.

The protobuf here is the few fields dag-pb and UnixFS use, written in the field order go-merkledag
writes (links before data), because a byte of difference is a different CID.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .cid import CID, DAG_PB, RAW, decode_varint, encode_varint
from .errors import CorruptObject, DeadlineExceeded, TooLarge, Unsupported

CHUNK_SIZE = 262_144
MAX_LINKS = 174

# UnixFS Data.DataType
T_RAW, T_DIRECTORY, T_FILE, T_METADATA, T_SYMLINK, T_HAMT = range(6)

#: A dag-pb node wider than this is not something an honest importer made; refusing it bounds
#: the memory a hostile DAG can make us spend on one block.
MAX_BLOCK_SIZE = 2 * 1024 * 1024


# ---------------------------------------------------------------- protobuf, the few bits we need

def _key(field_no: int, wire: int) -> bytes:
    return encode_varint(field_no << 3 | wire)


def _bytes_field(field_no: int, value: bytes) -> bytes:
    return _key(field_no, 2) + encode_varint(len(value)) + value


def _varint_field(field_no: int, value: int) -> bytes:
    return _key(field_no, 0) + encode_varint(value)


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a protobuf message; only varint and bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_varint(buf, pos)
            yield field_no, wire, value
        elif wire == 2:
            length, pos = decode_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited field")
            yield field_no, wire, buf[pos:pos + length]
            pos += length
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")


@dataclass(frozen=True, slots=True)
class Link:
    cid: CID
    tsize: int  # the child's whole DAG size in bytes (blocks included)


@dataclass(frozen=True, slots=True)
class FileNode:
    """A decoded dag-pb node holding UnixFS file data."""

    type: int
    data: bytes
    filesize: int | None
    blocksizes: list[int]
    links: list[Link]


def encode_unixfs(type_: int, data: bytes | None, filesize: int | None, blocksizes: list[int]) -> bytes:
    out = _varint_field(1, type_)
    if data:
        out += _bytes_field(2, data)
    if filesize is not None:
        out += _varint_field(3, filesize)
    for size in blocksizes:
        out += _varint_field(4, size)
    return out


def encode_pbnode(links: list[Link], data: bytes) -> bytes:
    out = b""
    for link in links:
        # go-merkledag writes Name even when empty; a CID depends on that.
        body = _bytes_field(1, link.cid.to_bytes()) + _bytes_field(2, b"") + _varint_field(3, link.tsize)
        out += _bytes_field(2, body)
    return out + _bytes_field(1, data)


def decode_pbnode(block: bytes) -> FileNode:
    try:
        links: list[Link] = []
        data = None
        for no, wire, value in _fields(block):
            if no == 2 and wire == 2:
                cid, tsize = None, 0
                for lno, lwire, lvalue in _fields(value):  # type: ignore[arg-type]
                    if lno == 1 and lwire == 2:
                        cid = CID.from_bytes(lvalue)  # type: ignore[arg-type]
                    elif lno == 3 and lwire == 0:
                        tsize = lvalue  # type: ignore[assignment]
                if cid is None:
                    raise ValueError("link without a hash")
                links.append(Link(cid, tsize))
            elif no == 1 and wire == 2:
                data = value
        if data is None:
            raise ValueError("dag-pb node without UnixFS data")
        type_, payload, filesize, blocksizes = None, b"", None, []
        for no, wire, value in _fields(data):  # type: ignore[arg-type]
            if no == 1 and wire == 0:
                type_ = value
            elif no == 2 and wire == 2:
                payload = value
            elif no == 3 and wire == 0:
                filesize = value
            elif no == 4 and wire == 0:
                blocksizes.append(value)  # type: ignore[arg-type]
        if type_ is None:
            raise ValueError("UnixFS data without a type")
        return FileNode(type_, bytes(payload), filesize, blocksizes, links)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"not a valid dag-pb/UnixFS node: {exc}") from None


# ---------------------------------------------------------------- import: bytes -> blocks -> CID

@dataclass(slots=True)
class _Child:
    cid: CID
    tsize: int  # DAG size for the parent link
    filesize: int  # file bytes under it, for the parent's blocksizes


BlockSink = Callable[[CID, bytes], None]


@dataclass
class Importer:
    """Streaming ``ipfs add``: feed bytes with :meth:`update`, get the root CID from :meth:`finish`.

    Memory stays at one chunk plus one pending list of at most 174 children per tree level. Each
    finished block goes to ``sink`` (children always before parents, the root last), which is what
    lets a store write the root last and so never hold a root whose blocks are missing.
    """

    cid_version: int = 1
    sink: BlockSink | None = None
    size: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _levels: list[list[_Child]] = field(default_factory=list)
    _chunks: int = 0

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError("cid_version must be 0 or 1")

    def update(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        self._buf += data
        if len(self._buf) >= CHUNK_SIZE:
            view = memoryview(self._buf)
            n = len(self._buf) // CHUNK_SIZE * CHUNK_SIZE
            for off in range(0, n, CHUNK_SIZE):
                self._leaf(bytes(view[off:off + CHUNK_SIZE]))
            view.release()
            del self._buf[:n]

    def finish(self) -> CID:
        if self._buf or self._chunks == 0:
            self._leaf(bytes(self._buf))
            self._buf.clear()
        level = 0
        while True:
            pending = self._levels[level]
            top = level == len(self._levels) - 1
            if top and len(pending) == 1:
                return pending[0].cid
            if pending:
                self._push(level + 1, self._node(pending))
                self._levels[level] = []
            level += 1

    def _emit(self, cid: CID, block: bytes) -> None:
        if self.sink is not None:
            self.sink(cid, block)

    def _leaf(self, chunk: bytes) -> None:
        self._chunks += 1
        if self.cid_version == 1:
            block, cid = chunk, CID.hash(chunk, RAW, 1)
        else:
            block = encode_pbnode([], encode_unixfs(T_FILE, chunk, len(chunk), []))
            cid = CID.hash(block, DAG_PB, 0)
        self._emit(cid, block)
        self._push(0, _Child(cid, len(block), len(chunk)))

    def _node(self, children: list[_Child]) -> _Child:
        filesize = sum(c.filesize for c in children)
        data = encode_unixfs(T_FILE, None, filesize, [c.filesize for c in children])
        block = encode_pbnode([Link(c.cid, c.tsize) for c in children], data)
        cid = CID.hash(block, DAG_PB, self.cid_version)
        self._emit(cid, block)
        return _Child(cid, len(block) + sum(c.tsize for c in children), filesize)

    def _push(self, level: int, child: _Child) -> None:
        while len(self._levels) <= level:
            self._levels.append([])
        self._levels[level].append(child)
        if len(self._levels[level]) == MAX_LINKS:
            full, self._levels[level] = self._levels[level], []
            self._push(level + 1, self._node(full))


def compute_cid(data: bytes, cid_version: int = 1) -> str:
    """The CID ``ipfs add`` (``--cid-version=1`` for 1) gives these bytes, without storing them."""
    imp = Importer(cid_version)
    imp.update(data)
    return str(imp.finish())


# ---------------------------------------------------------------- export: CID -> verified bytes

BlockGetter = Callable[[CID], bytes]

#: A reader's work is bounded by what the file it reads claims to be. Honest importers put data in
#: every leaf (Kubo's default: 262,144 bytes) and give every inner node several children, so a
#: file of N bytes never needs more than 2 * N / MIN_AVG_LEAF + WALK_SLACK blocks visited. A DAG
#: that links one child K times, twice over (K**2 visits from a 90 KB CAR), hits that bound.
MIN_AVG_LEAF = 1024
WALK_SLACK = 64
#: Blocks a walk visits more than once are kept up to this many bytes (an honest file of zeros
#: links one leaf many times; a hostile DAG links one node K times).
REPEAT_CACHE_BYTES = 32 * 1024 * 1024


def max_visits(size: int) -> int:
    """Most block visits a walk of a file of ``size`` bytes may take."""
    return 2 * -(-size // MIN_AVG_LEAF) + WALK_SLACK


@dataclass
class WalkLimits:
    """Bounds on one DAG walk beyond its size: a total deadline and a caller's check (the
    gateway's: is the client still there?), which may raise to stop the walk."""

    seconds: float | None = None
    check: Callable[[], None] | None = None
    _until: float | None = None
    _visits: int = 0

    def start(self) -> WalkLimits:
        if self.seconds is not None:
            self._until = time.monotonic() + self.seconds
        return self

    def step(self, root: CID) -> None:
        self._visits += 1
        if self._until is not None and time.monotonic() > self._until:
            raise DeadlineExceeded(str(root), self.seconds)
        if self.check is not None and self._visits % 16 == 0:
            self.check()


class _Blocks:
    """Verified blocks of one walk; a block asked for twice is kept (up to REPEAT_CACHE_BYTES) so
    that a repeated child costs one read and one hash however often it is linked."""

    def __init__(self, get_block: BlockGetter) -> None:
        self.get_block = get_block
        self.seen: set[CID] = set()
        self.kept: dict[CID, bytes] = {}
        self.kept_bytes = 0

    def get(self, cid: CID) -> bytes:
        block = self.kept.get(cid)
        if block is not None:
            return block
        block = get_verified_block(self.get_block, cid)
        if cid in self.seen and self.kept_bytes + len(block) <= REPEAT_CACHE_BYTES:
            self.kept[cid] = block
            self.kept_bytes += len(block)
        self.seen.add(cid)
        return block


def get_verified_block(get_block: BlockGetter, cid: CID) -> bytes:
    block = get_block(cid)
    if not cid.verify(block):
        raise CorruptObject(str(cid), "block does not hash to its CID")
    return block


def declared_size(get_block: BlockGetter, cid: CID) -> int:
    """File size the root block declares (verified root, so the claim is the author's own)."""
    block = get_verified_block(get_block, cid)
    if cid.codec == RAW:
        return len(block)
    node = _file_node(cid, block)
    if node.filesize is not None:
        return node.filesize
    return len(node.data) + sum(node.blocksizes)


def _file_node(cid: CID, block: bytes) -> FileNode:
    try:
        node = decode_pbnode(block)
    except ValueError as exc:
        raise CorruptObject(str(cid), str(exc)) from None
    if node.type not in (T_FILE, T_RAW):
        names = {T_DIRECTORY: "a directory", T_SYMLINK: "a symlink", T_HAMT: "a sharded directory",
                 T_METADATA: "metadata"}
        raise Unsupported(f"{cid} is {names.get(node.type, f'UnixFS type {node.type}')}, not a file")
    return node


def iter_file(get_block: BlockGetter, root: CID | str, max_size: int,
              limits: WalkLimits | None = None) -> Iterator[bytes]:
    """Yield the file's bytes, each piece only after the block that holds it hashed to its CID.

    The size the root declares is checked against ``max_size`` before any leaf is read, and the
    bytes actually produced are counted too, since a hostile DAG may declare less than it holds.
    The walk visits at most :func:`max_visits` of the declared size and stops at ``limits``.
    """
    limits = (limits or WalkLimits()).start()
    root = CID.parse(root)
    blocks = _Blocks(get_block)
    root_block = blocks.get(root)
    if root.codec == RAW:
        if len(root_block) > max_size:
            raise TooLarge(str(root), len(root_block), max_size)
        yield root_block
        return
    node = _file_node(root, root_block)
    size = node.filesize if node.filesize is not None else len(node.data) + sum(node.blocksizes)
    if size > max_size:
        raise TooLarge(str(root), size, max_size)
    budget = max_visits(size)
    visits = 0
    produced = 0
    # Depth-first, left to right, with an explicit stack: a deep hostile DAG cannot blow the
    # Python recursion limit.
    stack: list[tuple[CID, FileNode | None]] = [(root, node)]
    while stack:
        visits += 1
        if visits > budget:
            raise CorruptObject(str(root), f"DAG needs more than {budget} block visits for the "
                                           f"{size} bytes its root declares")
        limits.step(root)
        cid, parsed = stack.pop()
        if parsed is None:
            block = blocks.get(cid)
            if cid.codec == RAW:
                piece = block
                parsed_children: list[Link] = []
            else:
                parsed = _file_node(cid, block)
                piece, parsed_children = parsed.data, parsed.links
        else:
            piece, parsed_children = parsed.data, parsed.links
        if piece:
            produced += len(piece)
            if produced > max_size:
                raise TooLarge(str(root), None, max_size)
            if produced > size:
                raise CorruptObject(str(root), f"DAG holds more than the {size} bytes its root declares")
            yield piece
        elif not parsed_children and cid != root:
            raise CorruptObject(str(root), f"{cid} is an empty leaf; no importer writes one")
        stack.extend((link.cid, None) for link in reversed(parsed_children))
    if produced != size:
        raise CorruptObject(str(root), f"DAG holds {produced} bytes, its root declares {size}")


def iter_blocks(get_block: BlockGetter, root: CID | str, limits: WalkLimits | None = None) -> Iterator[tuple[CID, bytes]]:
    """Every distinct block of the file's DAG once, verified, parents before children (the order
    CARs use). A block linked many times is read once: the walk costs the DAG's distinct blocks."""
    limits = (limits or WalkLimits()).start()
    root = CID.parse(root)
    seen = {root}
    stack = [root]
    while stack:
        limits.step(root)
        cid = stack.pop()
        block = get_verified_block(get_block, cid)
        yield cid, block
        if cid.codec == DAG_PB:
            for link in reversed(_file_node(cid, block).links):
                if link.cid not in seen:
                    seen.add(link.cid)
                    stack.append(link.cid)
