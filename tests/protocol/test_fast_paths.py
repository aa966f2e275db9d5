"""The hot path's shortcuts give exactly what the generic libraries give: commitments as words
= eth_abi's encoding, keccak on the raw sponge = pycryptodome's, memoised checksums = EIP-55."""

import os

from Crypto.Hash import keccak as pycryptodome_keccak
from eth_abi import encode
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from pot.protocol import types as T
from pot.protocol.ids import claim_commitment, keccak, validation_commitment, vid

b32 = st.binary(min_size=32, max_size=32)
addr = st.binary(min_size=20, max_size=20)
uint = st.integers(0, 2**256 - 1)


def _k(data: bytes) -> bytes:
    return pycryptodome_keccak.new(data=data, digest_bits=256).digest()


@given(st.binary(max_size=600))
def test_keccak_is_pycryptodomes(data):
    assert keccak(data) == _k(data)


@given(uint, addr, b32, uint, b32)
def test_commitments_are_abi_encoded_words(oid, who, mid, score, salt):
    a = to_checksum_address(who)
    assert claim_commitment(oid, a, mid, salt) == _k(encode(["uint256", "address", "bytes32", "bytes32"],
                                                            [oid, a, mid, salt]))
    assert claim_commitment(oid, who, mid, salt) == claim_commitment(oid, a.lower(), mid, salt)
    assert vid(oid, a, mid) == _k(encode(["uint256", "address", "bytes32"], [oid, a, mid]))
    assert validation_commitment(oid, a, mid, score, salt) == _k(
        encode(["uint256", "address", "bytes32", "uint256", "bytes32"], [oid, a, mid, score, salt]))


def test_commitments_refuse_what_abi_refuses():
    for bad in (lambda: claim_commitment(-1, "0x" + "11" * 20, bytes(32), bytes(32)),
                lambda: claim_commitment(1, "0x1234", bytes(32), bytes(32)),
                lambda: vid(2**256, "0x" + "11" * 20, bytes(32)),
                lambda: validation_commitment(1, "0x" + "11" * 20, bytes(31), 5, bytes(32))):
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("accepted a value abi.encode refuses")


@given(addr)
def test_memoised_checksum_is_eip55(raw):
    assert T.checksum(raw) == to_checksum_address(raw) == T.checksum("0x" + raw.hex())


def test_checksum_memo_is_bounded():
    for _ in range(T._CHECKSUM_MEMO + 10):
        T.checksum(os.urandom(20))
    assert len(T._CHECKSUMMED) <= T._CHECKSUM_MEMO
