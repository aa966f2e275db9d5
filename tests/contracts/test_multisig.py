"""RewardMultisig: both settlement paths, every attack on signatures, governance under threshold."""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak

from contracts.helpers import contract_balances_ok, goto, place, reverts, settle_batch, sign
from pot.chain.clients import Action
from pot.protocol import eip712
from pot.protocol.settlement import OrderSettlement, Payout, Settlement


def _ready_order(pot, reward=1000):
    oid, _ = place(pot, pot.users[0], reward=reward)
    goto(pot, pot.c.orders.windows(oid)["train_end"])
    return oid


def test_python_digest_equals_contract(pot):
    ms = pot.c.multisig
    b = Settlement(7, (OrderSettlement(3, pot.users[1].address, b"\x09" * 32,
                                       (Payout(pot.users[1].address, 5), Payout(pot.users[2].address, 6))),
                       OrderSettlement(4, "0x" + "00" * 20, b"\0" * 32, ())))
    assert b.digest(ms.domain) == ms.settlement_digest(b)
    empty = Settlement(1)
    assert empty.digest(ms.domain) == ms.settlement_digest(empty)


def test_execute_signed_pays_and_rejects_replay(pot):
    oid = _ready_order(pot)
    a, b_ = pot.users[1].address, pot.users[2].address
    before = pot.c.token.balance_of(a)
    batch = settle_batch(pot, oid, [(a, 600), (b_, 400)])
    res = pot.c.multisig.execute_signed(pot.deployer, batch, sign(pot, batch))
    assert res.event("SettlementExecuted")["nonce"] == batch.nonce
    assert res.event("OrderSettled")["total"] == 1000
    assert pot.c.token.balance_of(a) == before + 600
    assert pot.c.multisig.nonce_used(batch.nonce)
    with reverts("NonceUsed"):
        pot.c.multisig.execute_signed(pot.deployer, batch, sign(pot, batch))
    contract_balances_ok(pot, orders=[oid])


def test_same_order_cannot_settle_twice_with_new_nonce(pot):
    oid = _ready_order(pot)
    b1 = settle_batch(pot, oid, [(pot.users[1].address, 1000)])
    pot.c.multisig.execute_signed(pot.deployer, b1, sign(pot, b1))
    b2 = settle_batch(pot, oid, [(pot.users[1].address, 1000)])
    with reverts("NotOpen"):
        pot.c.multisig.execute_signed(pot.deployer, b2, sign(pot, b2))


def test_signature_attacks(pot):
    ms = pot.c.multisig
    oid = _ready_order(pot)
    batch = settle_batch(pot, oid, [(pot.users[1].address, 1000)])
    good = sign(pot, batch)
    with reverts("NotEnoughApprovals"):  # k - 1
        ms.execute_signed(pot.deployer, batch, good[:2])
    with reverts("DuplicateSigner"):
        ms.execute_signed(pot.deployer, batch, [good[0], good[1], good[0]])
    outsider = Account.from_key(keccak(text="outsider"))
    with reverts("NotMember"):
        ms.execute_signed(pot.deployer, batch, good[:2] + [batch.sign(ms.domain, outsider.key)])
    other_chain = eip712.Domain.multisig(ms.domain.chain_id + 1, ms.address)
    with reverts("NotMember"):
        ms.execute_signed(pot.deployer, batch, [batch.sign(other_chain, m.key) for m in pot.members[:3]])
    other_contract = eip712.Domain.multisig(ms.domain.chain_id, pot.c.orders.address)
    with reverts("NotMember"):
        ms.execute_signed(pot.deployer, batch, [batch.sign(other_contract, m.key) for m in pot.members[:3]])
    tampered = settle_batch(pot, oid, [(pot.users[2].address, 1000)], nonce=batch.nonce)
    with reverts("NotMember"):  # signatures over another batch recover to strangers
        ms.execute_signed(pot.deployer, tampered, good)
    with reverts("BadSignatureLength"):
        ms.execute_signed(pot.deployer, batch, b"".join(good)[:-1])
    with reverts("BadSignatureLength"):
        ms.execute_signed(pot.deployer, batch, b"")
    # high-s (malleable) copy of a valid signature
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r, s, v = good[0][:32], int.from_bytes(good[0][32:64], "big"), good[0][64]
    flipped = r + (n - s).to_bytes(32, "big") + bytes([55 - v])
    with reverts("ECDSAInvalidSignatureS"):
        ms.execute_signed(pot.deployer, batch, [flipped, good[1], good[2]])
    # all signatures (k + 1) in any order are fine
    ms.execute_signed(pot.deployer, batch, list(reversed(sign(pot, batch, pot.members))))


def test_payouts_must_equal_escrow(pot):
    ms = pot.c.multisig
    oid = _ready_order(pot, reward=1000)
    over = settle_batch(pot, oid, [(pot.users[1].address, 1001)])
    with reverts("PayoutMismatch"):
        ms.execute_signed(pot.deployer, over, sign(pot, over))
    under = settle_batch(pot, oid, [(pot.users[1].address, 999)])
    with reverts("PayoutMismatch"):
        ms.execute_signed(pot.deployer, under, sign(pot, under))
    # Two orders: one cannot fund the other
    oid2 = _ready_order(pot, reward=10)
    steal = Settlement(pot.next_nonce(), (
        OrderSettlement(oid, pot.users[1].address, b"\0" * 32, (Payout(pot.users[1].address, 1005),)),
        OrderSettlement(oid2, pot.users[1].address, b"\0" * 32, (Payout(pot.users[1].address, 5),))))
    with reverts("PayoutMismatch"):
        ms.execute_signed(pot.deployer, steal, sign(pot, steal))
    unknown = settle_batch(pot, 99, [(pot.users[1].address, 1)])
    with reverts("UnknownOrder"):
        ms.execute_signed(pot.deployer, unknown, sign(pot, unknown))
    contract_balances_ok(pot, orders=[oid, oid2])


def test_paper_path(pot):
    ms = pot.c.multisig
    m = [pot.node and __import__("pot.chain.sender", fromlist=["Sender"]).Sender(pot.w3, k) for k in pot.members]
    for s in m:
        pot.node.set_balance(s.address, 10**20)
    oid = _ready_order(pot)
    batch = settle_batch(pot, oid, [(pot.users[1].address, 1000)])
    with reverts("NotMember"):
        ms.propose_reward(pot.users[0], batch)
    res = ms.propose_reward(m[0], batch)
    assert res.event("RewardProposed")["digest"] == ms.settlement_digest(batch)
    with reverts("AlreadyProposed"):
        ms.propose_reward(m[1], batch)
    with reverts("UnknownProposal"):
        ms.confirm_reward(m[0], batch.nonce + 1)
    with reverts("NotMember"):
        ms.confirm_reward(pot.users[0], batch.nonce)
    ev = ms.confirm_reward(m[0], batch.nonce).event("RewardConfirmed")
    assert ev["id"] == batch.nonce and ev["member"] == m[0].address
    with reverts("AlreadyConfirmed"):
        ms.confirm_reward(m[0], batch.nonce)
    ms.confirm_reward(m[1], batch.nonce)
    with reverts("NotEnoughApprovals"):
        ms.execute_reward(pot.deployer, batch.nonce, batch)
    ms.confirm_reward(m[2], batch.nonce)
    other = settle_batch(pot, oid, [(pot.users[2].address, 1000)], nonce=batch.nonce)
    with reverts("BatchMismatch"):
        ms.execute_reward(pot.deployer, batch.nonce, other)
    ms.execute_reward(pot.deployer, batch.nonce, batch)
    with reverts("UnknownProposal"):  # executed proposals are deleted; the nonce is used
        ms.execute_reward(pot.deployer, batch.nonce, batch)
    # a proposal whose nonce was used by executeSigned cannot execute
    oid2 = _ready_order(pot)
    b2 = settle_batch(pot, oid2, [(pot.users[1].address, 1000)])
    ms.propose_reward(m[0], b2)
    for s in m[:3]:
        ms.confirm_reward(s, b2.nonce)
    ms.execute_signed(pot.deployer, b2, sign(pot, b2))
    with reverts("NonceUsed"):
        ms.execute_reward(pot.deployer, b2.nonce, b2)


def _act(pot, target, fn, *args, signers=None):
    ms = pot.c.multisig
    client = {ms.address: ms, pot.c.orders.address: pot.c.orders, pot.c.stakes.address: pot.c.stakes,
              pot.c.challenges.address: pot.c.challenges, pot.c.token.address: pot.c.token}[target]
    action = Action(pot.next_nonce(), target, bytes.fromhex(client.encode(fn, *args)[2:]))
    keys = signers if signers is not None else pot.members[:ms.threshold()]
    return ms.execute_action(pot.deployer, action, [action.sign(ms.domain, k.key) for k in keys])


def test_governance_actions(pot):
    ms = pot.c.multisig
    assert ms.call("actionDigest", Action(1, ms.address, b"\x01").as_abi()) == \
        __import__("pot.protocol.eip712", fromlist=["digest"]).digest(Action(1, ms.address, b"\x01").signable(ms.domain))
    new = Account.from_key(keccak(text="new-member"))
    _act(pot, ms.address, "addMember", new.address)
    assert ms.members()[-1] == new.address and len(ms.members()) == 5
    with reverts("ActionFailed"):  # 3 of 5 is still a majority, but 2 is not
        _act(pot, ms.address, "setThreshold", 2)
    _act(pot, ms.address, "setThreshold", 4)
    with reverts("NotEnoughApprovals"):
        _act(pot, ms.address, "setParam", b"taxBps".ljust(32, b"\0"), 500, signers=pot.members[:3])
    _act(pot, ms.address, "setParam", b"taxBps".ljust(32, b"\0"), 500, signers=pot.members[:4])
    assert ms.call("params", b"taxBps".ljust(32, b"\0")) == 500
    _act(pot, ms.address, "setThreshold", 3, signers=pot.members[:4])
    _act(pot, ms.address, "removeMember", pot.members[0].address)
    assert pot.members[0].address not in ms.members()
    with reverts("NotMember"):  # a removed member's signature no longer counts
        _act(pot, ms.address, "setTreasury", pot.users[3].address, signers=pot.members[:3])
    _act(pot, ms.address, "setTreasury", pot.users[3].address, signers=pot.members[1:4])
    assert ms.call("treasury") == pot.users[3].address
    _act(pot, pot.c.orders.address, "setSettlementGrace", 77, signers=pot.members[1:4])
    assert pot.c.orders.call("settlementGrace") == 77
    with reverts("BadTarget"):
        _act(pot, pot.c.token.address, "transfer", pot.users[0].address, 1)
    for fn, args in (("addMember", (new.address,)), ("removeMember", (new.address,)), ("setThreshold", (3,)),
                     ("setTreasury", (pot.users[0].address,)), ("setParam", (b"\0" * 32, 1))):
        with reverts("OnlySelf"):
            ms.transact(pot.users[0], fn, *args)


def test_membership_change_makes_pending_proposals_stale(pot):
    from pot.chain.sender import Sender

    ms = pot.c.multisig
    m = [Sender(pot.w3, k) for k in pot.members]
    for s in m:
        pot.node.set_balance(s.address, 10**20)
    oid = _ready_order(pot)
    batch = settle_batch(pot, oid, [(pot.users[1].address, 1000)])
    ms.propose_reward(m[0], batch)
    for s in m[:3]:
        ms.confirm_reward(s, batch.nonce)
    _act(pot, ms.address, "addMember", Account.from_key(keccak(text="x")).address)
    with reverts("StaleProposal"):
        ms.execute_reward(pot.deployer, batch.nonce, batch)
