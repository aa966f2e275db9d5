"""The wire codec: round trips, canonical form, precise refusals, sizes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_world import CLIENT, DOMAIN, MINERS, VALIDATORS, VERIFIER_, mid, order, vreveal

from pot.protocol import (ChallengeCommitted, ChallengeRevealed, DecodeError, OrderPlaced, Result,
                          SettlementExecuted, SettlementSignature, StakeChanged, TestDataReleased, Tick, decode,
                          encode, from_json, to_json)
from pot.protocol.codec import MAX_FRAME_BYTES
from pot.protocol.types import MESSAGE_TYPES, Reason

u256 = st.integers(0, 2**256 - 1)
b32 = st.binary(min_size=32, max_size=32)
addr = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
KIND = {"uint": u256, "address": addr, "bytes32": b32, "string": st.text(max_size=60),
        "sig": st.binary(min_size=65, max_size=65), "bool": st.booleans(),
        "uint[]": st.lists(u256, max_size=5).map(tuple), "bytes": st.binary(max_size=100)}
KIND["order"] = st.builds(type(order()), **{a: KIND[k] for a, _w, k in type(order()).FIELDS})
ALL = [*MESSAGE_TYPES, SettlementSignature, OrderPlaced, TestDataReleased, StakeChanged, ChallengeCommitted,
       ChallengeRevealed, SettlementExecuted, Tick, Result]
objs = st.sampled_from(ALL).flatmap(lambda cls: st.builds(cls, **{a: KIND[k] for a, _w, k in cls.FIELDS}))


@settings(max_examples=200, deadline=None)
@given(objs)
def test_round_trip(obj):
    assert decode(encode(obj)) == obj
    assert from_json(to_json(obj)) == obj


@settings(max_examples=50, deadline=None)
@given(objs, st.binary(min_size=65, max_size=65))
def test_signed_round_trip(obj, sig):
    from pot.protocol import Message, Signed
    if isinstance(obj, Message):
        s = Signed(obj, sig)
        assert decode(encode(s)) == s
        assert from_json(to_json(s)) == s


def test_malformed_input_is_refused_precisely():
    good = encode(vreveal(VALIDATORS[0], 1, mid(0), 5))
    cases = {
        b"": "empty frame",
        b"\x55": "unknown tag",
        bytes([0x80 | 0x30]) + good[1:]: "unknown tag",   # chain events are never signed
        good[:-1]: "ValidationReveal.signature: need 65 bytes",
        good + b"\x00": "1 trailing bytes",
        bytes([0x13 | 0x80, 0x02, 0x00, 0x01]) + good[3:]: "non-minimal integer",
        bytes([0x13 | 0x80, 33]) + b"\x01" * 33: "integer length 33 > 32",
        b"\x7e\x02\x00\x00\x00\x00\x00": "bool byte must be 0 or 1",
        b"\x31\x01\x01\x00\x02\xff\xfe\x00": "invalid UTF-8",
        b"\x31\x01\x01\x08\x00" + b"a" * 2048 + b"\x00": "string of 2048 bytes > 1024",
        b"\x00" * (MAX_FRAME_BYTES + 1): "exceeds the limit",
    }
    for data, why in cases.items():
        with pytest.raises(DecodeError, match=why):
            decode(data)
    with pytest.raises(DecodeError, match="expected bytes"):
        decode("text")  # type: ignore[arg-type]


def test_invalid_field_values_refused_at_construction():
    with pytest.raises(ValueError, match="Order.reward"):
        order(reward=-1)
    with pytest.raises(ValueError, match="StakeChanged.account"):
        StakeChanged("0x1234", 1, 1)
    with pytest.raises(ValueError, match="TestDataReleased.t3"):
        TestDataReleased(1, "x", True)  # bools are not ints on the wire


def test_sizes_against_the_paper(capsys):
    """Paper, Table 3: order ~312 B, validation ~304 B, challenge ~296 B (RSA-2048 signatures)."""
    o = order(order_id=123, reward=5 * 10**18)
    o = type(o)(**{**o.__dict__, "spec_cid": "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"})
    placed = encode(OrderPlaced(o))
    validation = encode(vreveal(VALIDATORS[0], 123, mid(0), 912_345, stake=10**18))
    challenge_commit = encode(ChallengeCommitted(123, VERIFIER_.addr, b"\x05" * 32, 10**18))
    challenge_reveal = encode(ChallengeRevealed(123, VERIFIER_.addr, b"\x06" * 32))
    with capsys.disabled():
        print(f"\nwire sizes: order {len(placed)} B (paper ~312), signed validation {len(validation)} B "
              f"(paper ~304), challenge commit {len(challenge_commit)} B + reveal {len(challenge_reveal)} B "
              f"(paper ~296)")
    assert len(placed) < 312 and len(validation) < 304 and len(challenge_commit) < 296
    assert CLIENT and MINERS and DOMAIN  # world imported for its actors


def test_result_reasons_round_trip():
    r = Result.rejected(Reason.WRONG_WINDOW, "late")
    assert decode(encode(r)).reason_enum is Reason.WRONG_WINDOW
