"""CIDs: the issue's golden vectors, chunk and tree boundaries, and the CID codec itself."""

from __future__ import annotations

import pytest
from storage_support import golden
from hypothesis import given, settings
from hypothesis import strategies as st

from pot.storage import CHUNK_SIZE, CID, MAX_LINKS, EmbeddedStore, Importer, InvalidCid, compute_cid
from pot.storage.cid import DAG_PB, RAW, b58decode, b58encode
from pot.storage.unixfs import decode_pbnode

GOLDEN = [  # (N, CIDv0, CIDv1 raw leaves): what `ipfs add` prints for bytes(i % 251 for i in range(N))
    (3_000_000, "QmTdtwzKMjtWmGptPoCaK83huuRM7EWJXfHLnZi5nbF1A4",
     "bafybeicptzmh5x5nlaqtfkrh2k6lrcqygm7mdep7frcti2af2u7r5xdzw4"),
    (0, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
     "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
]
HELLO = (b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
         "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")


@pytest.mark.parametrize("n,v0,v1", GOLDEN)
def test_golden_vectors(n, v0, v1, tmp_path):
    data = golden(n)
    assert compute_cid(data, 0) == v0
    assert compute_cid(data, 1) == v1
    store = EmbeddedStore(tmp_path)
    assert store.add_bytes(data, cid_version=0) == v0
    assert store.add_bytes(data, cid_version=1) == v1
    assert store.get(v0) == data and store.get(v1) == data


def test_hello_world():
    data, v0, v1 = HELLO
    assert compute_cid(data, 0) == v0
    assert compute_cid(data, 1) == v1
    # a single chunk with raw leaves is the raw block itself
    assert CID.parse(v1).codec == RAW and CID.parse(v0).codec == DAG_PB


def _depth_and_width(store: EmbeddedStore, cid: str) -> tuple[int, int]:
    parsed = CID.parse(cid)
    if parsed.codec == RAW:
        return 0, 0
    node = decode_pbnode(store.get_block(parsed))
    if not node.links:
        return 0, 0
    return 1 + _depth_and_width(store, str(node.links[0].cid))[0], len(node.links)


@pytest.mark.parametrize("n,depth,width", [
    (1, 0, 0), (CHUNK_SIZE - 1, 0, 0), (CHUNK_SIZE, 0, 0), (CHUNK_SIZE + 1, 1, 2),
    (MAX_LINKS * CHUNK_SIZE, 1, MAX_LINKS), (MAX_LINKS * CHUNK_SIZE + 1, 2, 2),
])
def test_chunk_and_tree_boundaries(n, depth, width, tmp_path):
    """Balanced layout: one leaf is the root itself; 174 leaves fit under one node; one more
    chunk adds a level whose root has two children."""
    data = golden(n)
    store = EmbeddedStore(tmp_path)
    for version in (0, 1):
        cid = store.add_bytes(data, cid_version=version)
        assert cid == compute_cid(data, version)
        assert store.size(cid) == n
        assert store.get(cid) == data
        # CIDv0 leaves are dag-pb nodes without links: same depth and width
        assert _depth_and_width(store, cid) == (depth, width)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=3 * 1024), st.lists(st.integers(0, 700_000), max_size=6), st.sampled_from([0, 1]))
def test_streaming_split_does_not_change_cid(seed, cuts, version):
    """However the bytes arrive, the chunker cuts them at the same places."""
    data = (seed or b"x") * (700_000 // max(1, len(seed or b"x")))
    data = data[:700_000]
    imp = Importer(version)
    prev = 0
    for cut in sorted(cuts) + [len(data)]:
        imp.update(data[prev:cut])
        prev = max(prev, cut)
    assert str(imp.finish()) == compute_cid(data, version)


def test_cid_text_round_trip():
    for text in (GOLDEN[0][1], GOLDEN[0][2], HELLO[2]):
        cid = CID.parse(text)
        assert str(cid) == text
        assert CID.from_bytes(cid.to_bytes()) == cid
        assert CID.parse("/ipfs/" + text) == cid
    # the same block under CIDv0 and CIDv1 shares its store key
    v0 = CID.parse(GOLDEN[0][1])
    assert CID(1, DAG_PB, v0.multihash).key == v0.key
    # js-ipfs answers CIDv1 in base58btc ('z'); the parser takes it
    assert CID.parse("z" + b58encode(CID.parse(HELLO[2]).to_bytes())) == CID.parse(HELLO[2])


def test_base58_leading_zeros():
    for raw in (b"", b"\0", b"\0\0\x01", b"\x00\xff" * 5):
        assert b58decode(b58encode(raw)) == raw


@pytest.mark.parametrize("bad", [
    "", "hello", "Qm" + "0" * 44, "bafy!!!", "bafkqaaa",  # identity multihash: nothing to verify
    "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # dag-cbor codec
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxqu",  # truncated
    "mAXASIA",  # base64 multibase
])
def test_invalid_cids_are_refused(bad):
    with pytest.raises(InvalidCid):
        CID.parse(bad)
