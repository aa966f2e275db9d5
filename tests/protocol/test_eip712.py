"""The EIP-712 fast path equals eth-account's encode_typed_data, and is fast enough."""


from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_world import CLIENT, DOMAIN, MINERS, ORDER_BOOK

from pot.protocol import (CancelRequest, ClaimCommit, ClaimReveal, Domain, Signed, ValidationReveal, VerifyResult, eip712)
from pot.protocol.types import MESSAGE_TYPES

u256 = st.integers(0, 2**256 - 1)
b32 = st.binary(min_size=32, max_size=32)
addr = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
text = st.text(max_size=80)
KIND = {"uint": u256, "address": addr, "bytes32": b32, "string": text, "bytes": st.binary(max_size=100)}

any_message = st.sampled_from(MESSAGE_TYPES).flatmap(
    lambda cls: st.builds(cls, **{a: KIND[k] for a, _w, k in cls.FIELDS}))
domains = st.builds(Domain.messages, st.integers(1, 2**64), addr)


@settings(max_examples=60, deadline=None)
@given(any_message, domains)
def test_fast_digest_equals_eth_account(msg, domain):
    assert msg.digest(domain) == eip712.digest(msg.signable(domain))


@settings(max_examples=25, deadline=None)
@given(any_message, domains, st.binary(min_size=32, max_size=32))
def test_fast_sign_recover_equals_eth_account(msg, domain, seed):
    key = (int.from_bytes(seed, "big") % (eip712.SECP256K1_N - 1) + 1).to_bytes(32, "big")
    signed = msg.sign(domain, key)
    slow_sig = eip712.sign(msg.signable(domain), key)
    assert signed.signature == slow_sig  # RFC 6979: both deterministic, both low-s
    assert eip712.recover(msg.signable(domain), signed.signature) == Account.from_key(key).address
    assert "0x" + signed.recover(domain).hex() == Account.from_key(key).address.lower()


def test_type_strings():
    assert ValidationReveal.TYPE_STRING == (b"ValidationReveal(uint256 orderId,address validator,bytes32 mid,"
                                            b"uint256 score,bytes32 salt,uint256 vStake)")
    assert ClaimReveal.TYPE_STRING == (b"ClaimReveal(uint256 orderId,address miner,bytes32 mid,bytes32 salt,"
                                       b"string modelCid)")
    assert CancelRequest.TYPE_STRING == b"CancelRequest(uint256 orderId,address client)"
    assert VerifyResult.TYPE_STRING == b"VerifyResult(uint256 orderId,bytes32 mid,uint256 score,address replica)"


def test_signature_for_another_deployment_does_not_verify():
    m = MINERS[0]
    msg = ClaimCommit(1, m.addr, b"\x07" * 32)
    for other in (Domain.messages(1, ORDER_BOOK), Domain.messages(31337, "0x" + "0c" * 20),
                  Domain.multisig(31337, ORDER_BOOK)):
        s = msg.sign(other, m.key)
        assert s.verify(other)
        assert not s.verify(DOMAIN)


def test_wrong_signer_and_malleable_signature_refused():
    m = MINERS[0]
    msg = ClaimCommit(1, m.addr, b"\x07" * 32)
    assert not Signed(msg, msg.sign(DOMAIN, CLIENT.key).signature).verify(DOMAIN)
    sig = msg.sign(DOMAIN, m.key).signature
    s = int.from_bytes(sig[32:64], "big")
    high = sig[:32] + (eip712.SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    assert not Signed(msg, high).verify(DOMAIN)
    assert not Signed(msg, sig[:64] + b"\x1d").verify(DOMAIN)
    assert not Signed(msg, b"\x00" * 65).verify(DOMAIN)


def test_fast_path_verifies_a_batch():
    """Every message of a batch verifies through the fast path (its speed is a benchmark's business:
    `pot bench pbft` reports signed transactions per second, not a timed test)."""
    msgs = [ValidationReveal(i, MINERS[0].addr, b"\x01" * 32, 912_345, b"\x02" * 32, 10**18).sign(DOMAIN, MINERS[0].key)
            for i in range(200)]
    assert all(s.verify(DOMAIN) for s in msgs)
    assert not msgs[0].__class__(msgs[1].message, msgs[0].signature).verify(DOMAIN)
