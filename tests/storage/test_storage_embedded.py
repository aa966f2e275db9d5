"""The embedded store: verified reads, corruption, limits, crash safety, CAR, the gateway, the CLI."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from storage_support import golden

from pot.commands.storage import group as storage_cli
from pot.storage import (CHUNK_SIZE, CID, CorruptObject, EmbeddedStore, HttpGatewayStore, NotFound,
                         StorageError, TooLarge, Unsupported, compute_cid)
from pot.storage.car import encode_header, read_car
from pot.storage.cid import DAG_PB, b32decode
from pot.storage.gateway import GatewayServer
from pot.storage.unixfs import Link, T_DIRECTORY, encode_pbnode, encode_unixfs

REPO = Path(__file__).resolve().parents[2]
DATA = golden(5 * CHUNK_SIZE + 1234)


@pytest.fixture
def store(tmp_path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def _leaf_paths(store: EmbeddedStore, cid: str) -> list[Path]:
    from pot.storage.unixfs import decode_pbnode
    node = decode_pbnode(store.get_block(cid))
    return [store.block_path(link.cid) for link in node.links]


def _flip(path: Path, offset: int = 10) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset % len(raw)] ^= 0x01
    path.write_bytes(bytes(raw))


def test_round_trip_both_versions(store, tmp_path):
    for version in (0, 1):
        cid = store.add_bytes(DATA, cid_version=version)
        assert store.has(cid)
        assert store.get(cid) == DATA
        assert store.size(cid) == len(DATA)
        assert cid in store.pins()
        out = tmp_path / f"out{version}"
        assert store.fetch(cid, out) == len(DATA)
        assert out.read_bytes() == DATA
    # adding again stores nothing new
    before = sorted(store.blocks_dir.glob("*/*"))
    store.add_bytes(DATA)
    assert sorted(store.blocks_dir.glob("*/*")) == before


def test_add_file_matches_add_bytes(store, tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(DATA)
    seen = []
    assert store.add_file(path, progress=seen.append) == compute_cid(DATA)
    assert sum(seen) == len(DATA)


def test_flipped_byte_in_leaf_is_detected(store, tmp_path):
    cid = store.add_bytes(DATA)
    _flip(_leaf_paths(store, cid)[2])
    with pytest.raises(CorruptObject, match=r"corrupt object bafk.*does not hash"):
        store.get(cid)
    # a failed fetch leaves no file behind, not even a partial one
    with pytest.raises(CorruptObject):
        store.fetch(cid, tmp_path / "dest")
    assert list(tmp_path.glob("*dest*")) == []
    with pytest.raises(CorruptObject):
        store.verify(cid)


def test_flipped_byte_in_root_is_detected(store):
    cid = store.add_bytes(DATA, cid_version=0)
    _flip(store.block_path(cid), 5)
    with pytest.raises(CorruptObject, match=cid):
        store.get(cid)
    single = store.add_bytes(b"hello world\n")
    _flip(store.block_path(single), 0)
    with pytest.raises(CorruptObject):
        store.get(single)


def test_missing_object_and_missing_block(store):
    with pytest.raises(NotFound, match="not found: bafk"):
        store.get(compute_cid(b"never added"))
    assert not store.has(compute_cid(b"never added"))
    cid = store.add_bytes(DATA)
    _leaf_paths(store, cid)[-1].unlink()
    with pytest.raises(NotFound):
        store.get(cid)


def test_size_limit_refuses_before_reading(store, tmp_path):
    cid = store.add_bytes(DATA)
    for path in _leaf_paths(store, cid):
        path.unlink()  # reading any leaf now fails with NotFound: TooLarge proves none was read
    with pytest.raises(TooLarge, match=f"{len(DATA)} bytes, over the size limit of 1000"):
        store.get(cid, max_size=1000)
    with pytest.raises(TooLarge):
        next(store.stream(cid, max_size=len(DATA) - 1))


def test_add_over_limit_is_refused_before_reading(tmp_path):
    store = EmbeddedStore(tmp_path / "s", max_size=1024**2)
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as f:
        f.truncate(64 * 1024**3)  # sparse: reading it whole would take minutes
    with pytest.raises(TooLarge, match="over the size limit"):
        store.add_file(huge)
    with pytest.raises(TooLarge):
        store.add_bytes(bytes(1024**2 + 1))
    with pytest.raises(StorageError):
        store.add_stream(iter([bytes(600_000)] * 2))


def test_dag_that_lies_about_its_size(store):
    """A root that declares a small file but links to more bytes is caught by counting."""
    leaf_cid = CID.parse(store.add_bytes(bytes(1000)))
    leaf2 = CID.parse(store.add_bytes(bytes(range(256)) * 4))
    root = encode_pbnode([Link(leaf_cid, 1000), Link(leaf2, 1024)],
                         encode_unixfs(2, None, 10, [5, 5]))
    cid = CID.hash(root, DAG_PB, 1)
    store.put_block(cid, root)
    with pytest.raises(CorruptObject, match="more than the 10 bytes"):
        store.get(str(cid))
    with pytest.raises(TooLarge):
        store.get(str(cid), max_size=8)


def test_directory_is_unsupported(store):
    block = encode_pbnode([], encode_unixfs(T_DIRECTORY, None, None, []))
    cid = CID.hash(block, DAG_PB, 1)
    store.put_block(cid, block)
    with pytest.raises(Unsupported, match="directory"):
        store.get(str(cid))


def test_put_block_refuses_wrong_hash(store):
    with pytest.raises(StorageError, match="does not hash"):
        store.put_block(CID.parse(compute_cid(b"a")), b"b")


WRITER = r"""
import sys, time
sys.path.insert(0, {offchain!r})
from pot.storage import EmbeddedStore
store = EmbeddedStore({root!r})
def chunks():
    for i in range(200):
        if i == 40:
            print("midway", flush=True)
            time.sleep(60)
        yield bytes([i % 256]) * 262144
store.add_stream(chunks())
"""


def test_killed_writer_leaves_store_consistent(store):
    """SIGKILL mid-import: no root, no partial block, every block file sound, the retry works."""
    code = WRITER.format(offchain=str(REPO / "offchain"), root=str(store.root))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"midway"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    blocks = list(store.blocks_dir.glob("*/*"))
    assert len(blocks) >= 30  # it did write, and died before the end
    for path in blocks:
        multihash = b32decode(path.name)
        assert hashlib.sha256(path.read_bytes()).digest() == multihash[2:], path
    data = b"".join(bytes([i % 256]) * 262144 for i in range(200))
    cid = compute_cid(data)
    assert not store.has(cid)
    assert store.pins() == []

    assert store.add_bytes(data) == cid
    assert store.get(cid) == data
    other = store.add_bytes(b"unpinned", pin=False)
    assert store.gc() == 1  # the orphan from nowhere; the killed import's blocks are now reachable
    assert not store.has(other) and store.get(cid) == data


def test_car_export_round_trip(store, tmp_path):
    for version in (0, 1):
        cid = store.add_bytes(DATA, cid_version=version)
        buf = io.BytesIO()
        n = store.export_car(cid, buf)
        assert n == 7  # root + 6 leaves
        raw = buf.getvalue()
        assert raw.startswith(encode_header([CID.parse(cid)]))
        roots, blocks = read_car(io.BytesIO(raw))
        assert roots == [CID.parse(cid)]
        blocks = list(blocks)
        assert blocks[0][0] == CID.parse(cid)  # root first
        assert all(c.verify(b) for c, b in blocks)

        car = tmp_path / f"x{version}.car"
        store.export_car(cid, car)
        other = EmbeddedStore(tmp_path / f"other{version}")
        assert other.import_car(car) == [cid]
        assert other.get(cid) == DATA

    # the header is the byte-exact dag-cbor of {"roots": [cid], "version": 1}
    hello = CID.parse(compute_cid(b"hello world\n"))
    body = bytes.fromhex("a265726f6f747381d82a5825") + b"\0" + hello.to_bytes() + bytes.fromhex(
        "6776657273696f6e01")
    assert encode_header([hello]) == bytes([len(body)]) + body


def test_car_with_a_tampered_block_is_refused(store, tmp_path):
    cid = store.add_bytes(DATA)
    buf = io.BytesIO()
    store.export_car(cid, buf)
    raw = bytearray(buf.getvalue())
    raw[-5] ^= 1
    with pytest.raises(CorruptObject):
        EmbeddedStore(tmp_path / "o").import_car(io.BytesIO(bytes(raw)))


def test_gateway_round_trip_and_errors(store):
    cid0 = store.add_bytes(DATA, cid_version=0)
    cid1 = store.add_bytes(DATA)
    with GatewayServer(store, ("127.0.0.1", 0)) as server, HttpGatewayStore(server.url) as remote:
        assert remote.get(cid0) == DATA and remote.get(cid1) == DATA
        assert remote.size(cid1) == len(DATA) and remote.has(cid1)
        missing = compute_cid(b"nope")
        assert not remote.has(missing)
        with pytest.raises(NotFound):
            remote.get(missing)
        with pytest.raises(TooLarge):
            remote.get(cid1, max_size=100)
        with pytest.raises(StorageError, match="read-only"):
            remote.add_bytes(b"x")
        _flip(_leaf_paths(store, cid1)[0])
        with pytest.raises(StorageError):  # the server stops mid-body; the reader detects it
            remote.get(cid1)


class _LyingHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello world?"  # one byte off what the CID names
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_lying_gateway_is_caught():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LyingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with HttpGatewayStore(f"http://127.0.0.1:{server.server_address[1]}") as remote:
            with pytest.raises(CorruptObject, match="do not hash"):
                remote.get(compute_cid(b"hello world\n"))
    finally:
        server.shutdown()
        server.server_close()


def test_cli_add_get_export(tmp_path):
    runner = CliRunner()
    src = tmp_path / "f.bin"
    src.write_bytes(DATA)
    st = str(tmp_path / "st")
    res = runner.invoke(storage_cli, ["add", str(src), "--store", st])
    assert res.exit_code == 0, res.output
    cid = res.stdout.strip()
    assert cid == compute_cid(DATA)
    res = runner.invoke(storage_cli, ["add", str(src), "--store", st, "--cid-version", "0", "-q"])
    assert res.stdout.strip() == compute_cid(DATA, 0)
    assert runner.invoke(storage_cli, ["cid", str(src)]).stdout.strip() == cid

    out = tmp_path / "out.bin"
    res = runner.invoke(storage_cli, ["get", cid, "-o", str(out), "--store", st])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == DATA
    res = runner.invoke(storage_cli, ["get", cid, "-o", "-", "--store", st])
    assert res.stdout_bytes == DATA

    car = tmp_path / "f.car"
    res = runner.invoke(storage_cli, ["export-car", cid, str(car), "--store", st])
    assert res.exit_code == 0, res.output
    res = runner.invoke(storage_cli, ["import-car", str(car), "--store", str(tmp_path / "st2")])
    assert res.stdout.strip() == cid

    for args, message in [
        (["get", compute_cid(b"x"), "--store", st], "not found"),
        (["get", "nonsense", "--store", st], "unsupported CID"),
        (["get", cid, "--store", st, "--max-size", "1K"], "over the size limit of 1024"),
        (["get", cid, "--store", st, "--api", "http://127.0.0.1:9"], "only one of"),
        (["add", str(src), "--store", st, "--max-size", "lots"], "not a size"),
    ]:
        res = runner.invoke(storage_cli, args)
        assert res.exit_code != 0 and message in res.output, (args, res.output)


def test_cli_help_explains_every_option():
    runner = CliRunner()
    for cmd in ("add", "get", "export-car", "import-car", "cid", "serve", "verify"):
        res = runner.invoke(storage_cli, [cmd, "--help"])
        assert res.exit_code == 0
        command = storage_cli.commands[cmd]
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"pot storage {cmd} --{param.name} has no help"
