"""KuboStore against a real IPFS node: js-ipfs 0.66 (tools/ipfs), offline, on 127.0.0.1 only.

Skipped with a reason when tools/ipfs/node_modules is absent (`bash tools/ipfs/install.sh`).
"""

from __future__ import annotations

import pytest
from storage_support import golden

from pot.storage import (CHUNK_SIZE, MAX_LINKS, EmbeddedStore, HttpGatewayStore, KuboStore, NotFound,
                         StorageError, TooLarge, compute_cid)

CASES = [b"", b"hello world\n", golden(3_000_000)]


@pytest.fixture
def kubo(jsipfs):
    with KuboStore(jsipfs.api_url, find_timeout=2) as store:
        yield store


@pytest.mark.parametrize("data", CASES, ids=["empty", "hello", "3MB"])
@pytest.mark.parametrize("version", [0, 1])
def test_same_cid_as_embedded_and_verified_cat(kubo, tmp_path, data, version):
    embedded = EmbeddedStore(tmp_path)
    cid = kubo.add_bytes(data, cid_version=version)
    assert cid == embedded.add_bytes(data, cid_version=version)
    assert kubo.get(cid) == data
    assert kubo.has(cid)


def test_golden_3mb_from_the_node(kubo):
    data = golden(3_000_000)
    assert kubo.add_bytes(data, cid_version=0) == "QmTdtwzKMjtWmGptPoCaK83huuRM7EWJXfHLnZi5nbF1A4"
    assert kubo.add_bytes(data) == "bafybeicptzmh5x5nlaqtfkrh2k6lrcqygm7mdep7frcti2af2u7r5xdzw4"


def test_two_level_tree_matches(kubo, tmp_path):
    """175 chunks: the balanced layout grows a level; the node and we must agree on its shape."""
    data = golden(MAX_LINKS * CHUNK_SIZE + 1)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    cid = kubo.add_file(path)
    assert cid == compute_cid(data)
    assert kubo.size(cid) == len(data)
    out = tmp_path / "out.bin"
    assert kubo.fetch(cid, out) == len(data)
    assert out.read_bytes() == data


def test_pin(kubo):
    cid = kubo.add_bytes(b"pin me later", pin=False)
    assert cid not in kubo.pins()
    kubo.pin(cid)
    assert cid in kubo.pins()


def test_size_limit(kubo):
    cid = kubo.add_bytes(golden(1_000_000))
    with pytest.raises(TooLarge, match="exceeds the size limit of 1000"):
        kubo.get(cid, max_size=1000)


def test_missing_object(kubo):
    with pytest.raises(NotFound):
        kubo.get(compute_cid(b"nobody ever added this"))


def test_unreachable_node():
    with KuboStore("http://127.0.0.1:9", timeout=2) as dead:
        with pytest.raises(StorageError, match="unreachable|failed"):
            dead.add_bytes(b"x")
        with pytest.raises(StorageError):
            dead.get(compute_cid(b"x"))


def test_car_export_then_dag_import(kubo, tmp_path):
    """Content made offline moves to a real node with its CID: export a CAR, `dag import`, cat."""
    data = golden(2 * CHUNK_SIZE + 77) + b"moved by CAR"
    embedded = EmbeddedStore(tmp_path / "st")
    for version in (0, 1):
        cid = embedded.add_bytes(data, cid_version=version)
        car = tmp_path / f"m{version}.car"
        embedded.export_car(cid, car)
        assert cid in kubo.dag_import(car)
        assert kubo.get(cid) == data


def test_gateway_client_against_jsipfs_gateway(kubo, jsipfs):
    cid = kubo.add_bytes(golden(700_000))
    with HttpGatewayStore(jsipfs.gateway_url) as gateway:
        assert gateway.get(cid) == golden(700_000)


def test_node_touches_only_loopback(kubo, jsipfs):
    """The test node listens on 127.0.0.1 only and holds no connection to any other address."""
    import sys

    from storage_support import is_local, socket_addresses

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    kubo.add_bytes(b"traffic, so any dialing would have started")
    sockets = socket_addresses(jsipfs.process.pid)
    assert sockets, "found none of the node's sockets: the check itself is broken"
    for proto, local, remote in sockets:
        assert is_local(remote), f"js-ipfs {proto} socket {local} -> {remote}"
        assert not local.startswith(("0.0.0.0", "[::]")), f"js-ipfs listens on all interfaces: {local}"
