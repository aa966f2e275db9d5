"""Hostile content and hostile peers (issue 10, item 11), with real crafted CARs, real HTTP
servers on loopback (our gateway, and peers that misbehave on purpose) and real stores:
malformed CAR headers, endless error replies, trickled bodies, diamond DAGs, errors after a 200,
and oversized blocks."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from storage_support import golden

from pot.storage import (CID, CorruptObject, EmbeddedStore, HttpGatewayStore, KuboStore, StorageError,
                         compute_cid)
from pot.storage.car import encode_header, write_car
from pot.storage.cid import DAG_PB, RAW, encode_varint
from pot.storage.errors import DeadlineExceeded
from pot.storage.gateway import GatewayServer
from pot.storage.unixfs import T_FILE, Link, encode_pbnode, encode_unixfs


def car_with_header(cbor: bytes) -> bytes:
    return encode_varint(len(cbor)) + cbor


@pytest.mark.parametrize("cbor,match", [
    # 100,000 nested one-element arrays: RecursionError (or a C stack overflow) before
    (b"\x81" * 100_000 + b"\x00", "nested deeper than"),
    # {[]: 1}: a list as a map key was TypeError (unhashable)
    (b"\xa1\x80\x01", "map key of type list"),
    # {"\xff": 1}: UnicodeDecodeError
    (b"\xa1\x61\xff\x01", "not UTF-8"),
    # a map claiming 2**32 entries in 5 bytes
    (b"\xba\xff\xff\xff\xff", "claims 4294967295 items"),
    (b"\xa2\x67version\x01\x67version\x01", "repeated key"),
    (b"\xa2\x65roots\x80\x67version\x01", "no valid roots"),
    (b"\xa1\x67version\x01\x00", "bytes after the header"),
    (b"\xa1\x67version\xf9\x3c\x00", "major type 7"),
])
def test_malformed_car_headers_are_clear_storage_errors(tmp_path, cbor, match):
    store = EmbeddedStore(tmp_path / "s")
    with pytest.raises(StorageError, match=match):
        store.import_car(io.BytesIO(car_with_header(cbor)))


# --------------------------------------------------------------------------- hostile peers


class _Peer(BaseHTTPRequestHandler):
    """A Kubo RPC node / gateway that misbehaves as ``server.mode`` says; counts what it sent."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _endless(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()  # no length: the body ends when the connection does
        chunk = b"error " * 10_000
        try:
            while self.server.sent < self.server.cap:
                self.wfile.write(chunk)
                self.server.sent += len(chunk)
        except OSError:
            pass
        self.close_connection = True

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                self.server.sent += 1
                time.sleep(0.2)
        except OSError:
            pass

    def do_POST(self):
        self.do_GET()

    def do_GET(self):
        {"endless-500": lambda: self._endless(500), "trickle": self._trickle}[self.server.mode]()


@pytest.fixture
def peer():
    servers = []

    def start(mode: str, cap: int = 64 * 1024 * 1024) -> ThreadingHTTPServer:
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
        srv.daemon_threads = True
        srv.mode, srv.cap, srv.sent = mode, cap, 0
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("kind", ["kubo", "gateway"])
def test_endless_error_replies_are_read_only_up_to_a_cap(peer, kind):
    """``--max-size 1M`` still read 1.5 GB of a 500 reply: error bodies had no limit at all."""
    srv = peer("endless-500")
    cls = KuboStore if kind == "kubo" else HttpGatewayStore
    with cls(srv.url, max_size=1024 * 1024) as store:
        t = time.monotonic()
        with pytest.raises(StorageError, match="500"):
            store.get(compute_cid(b"anything"))
        took = time.monotonic() - t
    time.sleep(0.2)
    # what the peer got into the socket: our read (64 KiB) plus the kernel's buffers, not its 64 MiB
    assert srv.sent < 16 * 1024 * 1024, srv.sent
    assert took < 5, took


@pytest.mark.parametrize("kind", ["kubo", "gateway"])
def test_a_trickling_peer_cannot_outlast_the_deadline(peer, kind):
    """One byte every 0.2 s never trips a read timeout; the whole fetch has a deadline."""
    srv = peer("trickle")
    cls = KuboStore if kind == "kubo" else HttpGatewayStore
    with cls(srv.url, timeout=10) as store:
        t = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="deadline of 1.5s"):
            store.get(compute_cid(b"x" * 1000), deadline=1.5)
        took = time.monotonic() - t
    assert took < 4, took


# --------------------------------------------------------------------------- diamond DAGs


def diamond_car(k: int) -> tuple[bytes, CID]:
    """root -> k links to A -> k links to one 1-byte leaf: a 90 KB CAR that reads as k**2 bytes."""
    leaf = b"x"
    leaf_cid = CID.hash(leaf, RAW, 1)
    a = encode_pbnode([Link(leaf_cid, 1)] * k, encode_unixfs(T_FILE, None, k, [1] * k))
    a_cid = CID.hash(a, DAG_PB, 1)
    root = encode_pbnode([Link(a_cid, len(a) + k)] * k, encode_unixfs(T_FILE, None, k * k, [k] * k))
    root_cid = CID.hash(root, DAG_PB, 1)
    buf = io.BytesIO()
    write_car(buf, [root_cid], [(root_cid, root), (a_cid, a), (leaf_cid, leaf)])
    return buf.getvalue(), root_cid


def test_a_diamond_dag_costs_its_distinct_blocks_not_k_squared(tmp_path):
    """K = 1,000: importing (pin walks the DAG) and reading took K**2 block reads, 30 s each."""
    car, root = diamond_car(1000)
    assert len(car) < 100_000
    store = EmbeddedStore(tmp_path / "s")
    t = time.monotonic()
    assert store.import_car(io.BytesIO(car)) == [str(root)]
    assert store.verify(str(root)) == 3
    with pytest.raises(CorruptObject, match="block visits"):
        store.get(str(root))
    assert time.monotonic() - t < 5

    with GatewayServer(store, ("127.0.0.1", 0)) as gw, HttpGatewayStore(gw.url) as remote:
        t = time.monotonic()
        with pytest.raises(StorageError):  # the walk is refused after the 200: the body is cut short
            remote.get(str(root))
        car_back = httpx.get(f"{gw.url}/ipfs/{root}?format=car", timeout=30)
        assert time.monotonic() - t < 5
    assert car_back.status_code == 200 and len(car_back.content) == len(car)


def test_honest_repeated_leaves_still_read(tmp_path):
    """A file of zeros links one leaf many times: the repeat cache makes it cheap, not refused."""
    store = EmbeddedStore(tmp_path / "s")
    data = bytes(40 * 262_144)
    cid = store.add_bytes(data)
    assert store.verify(cid) == 2  # the root and the one leaf it links 40 times
    assert store.get(cid) == data


# --------------------------------------------------------------------------- the gateway's answers


def _flip_a_leaf(store: EmbeddedStore, cid: str) -> None:
    from pot.storage.unixfs import decode_pbnode

    path = store.block_path(decode_pbnode(store.get_block(cid)).links[1].cid)
    raw = bytearray(path.read_bytes())
    raw[7] ^= 1
    path.write_bytes(bytes(raw))


def test_car_errors_come_before_the_200(tmp_path):
    """With format=car a corrupt block's 500 was written inside a 200 CAR body."""
    store = EmbeddedStore(tmp_path / "s")
    data = golden(3 * 262_144 + 17)
    cid = store.add_bytes(data)
    with GatewayServer(store, ("127.0.0.1", 0)) as gw:
        good = httpx.get(f"{gw.url}/ipfs/{cid}?format=car", timeout=30)
        assert good.status_code == 200 and int(good.headers["Content-Length"]) == len(good.content)
        other = EmbeddedStore(tmp_path / "o")
        assert other.import_car(io.BytesIO(good.content)) == [cid] and other.get(cid) == data
        _flip_a_leaf(store, cid)
        bad = httpx.get(f"{gw.url}/ipfs/{cid}?format=car", timeout=30)
    assert bad.status_code == 500 and "does not hash" in bad.text
    assert not bad.content.startswith(encode_header([CID.parse(cid)]))


def test_the_gateway_stops_walking_when_the_client_leaves(tmp_path, caplog):
    store = EmbeddedStore(tmp_path / "s")
    cid = store.add_bytes(golden(96 * 262_144))
    with GatewayServer(store, ("127.0.0.1", 0)) as gw, caplog.at_level(logging.DEBUG, "pot.storage.gateway"):
        host, port = gw.server_address[:2]
        for _ in range(20):
            with socket.create_connection((host, port)) as s:
                s.sendall(f"GET /ipfs/{cid}?format=car HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            # the client is gone before the first byte of the answer
            deadline = time.monotonic() + 10
            while not any("went away" in r.message for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.05)
            if any("went away" in r.message for r in caplog.records):
                break
    assert any("went away" in r.message for r in caplog.records), [r.message for r in caplog.records]


# --------------------------------------------------------------------------- oversized blocks


def test_an_oversized_block_is_refused_before_it_is_written(tmp_path):
    """A 3 MiB block was imported, then refused at pin, and left on disk."""
    big = golden(3 * 1024 * 1024)
    cid = CID.hash(big, RAW, 1)
    buf = io.BytesIO()
    write_car(buf, [cid], [(cid, big)])
    store = EmbeddedStore(tmp_path / "s")
    with pytest.raises(StorageError, match="over the limit"):
        store.import_car(io.BytesIO(buf.getvalue()))
    assert not list(store.blocks_dir.glob("*/*")) and not store.pins()


def test_a_failed_import_leaves_none_of_its_blocks(tmp_path):
    """A CAR whose root is missing a child: the blocks it did bring are removed again."""
    store = EmbeddedStore(tmp_path / "s")
    cid = store.add_bytes(golden(3 * 262_144))
    buf = io.BytesIO()
    store.export_car(cid, buf)
    raw = buf.getvalue()
    other = EmbeddedStore(tmp_path / "o")
    with pytest.raises(StorageError):
        other.import_car(io.BytesIO(raw[: len(raw) - 262_144 - 40]))  # the last leaf cut off
    assert not list(other.blocks_dir.glob("*/*")) and not other.pins()
