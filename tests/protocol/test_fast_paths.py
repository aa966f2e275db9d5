"""The hot path's shortcuts give exactly what the generic libraries give: commitments as words
= eth_abi's encoding, keccak on the raw sponge = pycryptodome's, memoised checksums = EIP-55."""

import os

import pytest

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


# --- the unrolled decoders and struct hashes -----------------------------------------------

from hypothesis import assume, settings  # noqa: E402
from ledger_world import DOMAIN, MINERS, order  # noqa: E402

from pot.protocol import codec  # noqa: E402

_KIND = {"uint": uint, "address": addr.map(lambda b: "0x" + b.hex()), "bytes32": b32,
         "string": st.text(max_size=40), "sig": st.binary(min_size=65, max_size=65), "bool": st.booleans(),
         "uint[]": st.lists(uint, max_size=4).map(tuple), "bytes": st.binary(max_size=80)}
_KIND["order"] = st.builds(type(order()), **{a: _KIND[k] for a, _w, k in type(order()).FIELDS})
_ALL = [T.Order, *T.MESSAGE_TYPES, T.SettlementSignature, *T.CHAIN_EVENTS, T.Tick, T.Result]
_objs = st.sampled_from(_ALL).flatmap(lambda cls: st.builds(cls, **{a: _KIND[k] for a, _w, k in cls.FIELDS}))
_frames = st.one_of(_objs.map(codec.encode),
                    st.tuples(st.sampled_from(T.MESSAGE_TYPES).flatmap(
                        lambda cls: st.builds(cls, **{a: _KIND[k] for a, _w, k in cls.FIELDS})),
                        st.binary(min_size=65, max_size=65)).map(lambda ms: codec.encode(T.Signed(*ms))))


def _outcome(fn, data):
    try:
        return "ok", fn(data)
    except codec.DecodeError as exc:
        return "refused", str(exc)


@settings(max_examples=400, deadline=None)
@given(_frames, st.integers(0, 10**6), st.integers(0, 255), st.sampled_from(["flip", "cut", "grow", "keep"]))
def test_fast_decoder_agrees_with_the_checked_reader(frame, at, byte, how):
    """Whatever the unrolled decoders accept, the position-tracking reader accepts as the same
    object; what it refuses is refused, with the reader's precise message."""
    i = at % (len(frame) + 1)
    data = {"flip": frame[:i] + bytes([byte]) + frame[i + 1:], "cut": frame[:i],
            "grow": frame[:i] + bytes([byte]) + frame[i:], "keep": frame}[how]
    assume(data)  # (the empty frame is refused before either decoder runs)
    assert _outcome(codec.decode, data) == _outcome(codec._decode_checked, data)


@given(_objs.filter(lambda o: isinstance(o, T.Message)))
def test_unrolled_struct_hash_is_eip712(msg):
    """The generated ``hash_struct`` gives eth-account's EIP-712 digest for every message type."""
    from eth_account.messages import _hash_eip191_message
    assert msg.digest(DOMAIN) == bytes(_hash_eip191_message(msg.signable(DOMAIN)))


def test_address_case_is_not_identity_but_a_bad_checksum_is_refused():
    """Lower, upper and EIP-55 case are one address (equal messages, equal digests, equal wire
    bytes); mixed case that is not the EIP-55 checksum is a mistyped address and is refused."""
    a = MINERS[0].addr
    low, up = a.lower(), "0x" + a[2:].upper()
    msgs = [T.ClaimCommit(1, x, b"\x01" * 32) for x in (a, low, up)]
    assert msgs[0] == msgs[1] == msgs[2]
    assert len({m.digest(DOMAIN) for m in msgs}) == 1 and len({codec.encode(m) for m in msgs}) == 1
    assert all(m.miner == a for m in msgs)
    body = a[2:]
    j = next(k for k, c in enumerate(body) if c.isalpha())
    bad = "0x" + body[:j] + body[j].swapcase() + body[j + 1:]
    with pytest.raises(ValueError, match="ClaimCommit.miner has a bad EIP-55 checksum"):
        T.ClaimCommit(1, bad, b"\x01" * 32)
    for malformed in ("0x1234", a[2:] + "00", "0x" + "g" * 40, b"\x01" * 19):
        with pytest.raises(ValueError, match="ClaimCommit.miner must be a 20-byte hex address"):
            T.ClaimCommit(1, malformed, b"\x01" * 32)


@given(_objs, st.binary(min_size=65, max_size=65))
def test_unrolled_encoders_write_the_generic_layout(obj, sig):
    assert codec.encode(obj) == codec._encode_generic(obj)
    if isinstance(obj, T.Message):
        s = T.Signed(obj, sig)
        assert codec.encode(s) == codec._encode_generic(s)
