"""RewardMultisig: both settlement paths, every attack on signatures, governance under threshold."""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak

from contracts.helpers import contract_balances_ok, goto, member_senders, place, reverts, settle_batch, sign
from pot.chain.clients import Action
from pot.protocol import eip712
from pot.protocol.settlement import ChallengeVerdict, OrderSettlement, Payout, Settlement, Slash


def _ready_order(pot, reward=1000):
    oid, _ = place(pot, pot.users[0], reward=reward)
    goto(pot, pot.c.orders.windows(oid)["release_end"])
    return oid


def test_python_digest_equals_contract(pot):
    ms = pot.c.multisig
    b = Settlement(7, 3, 10**9, tuple(m.address for m in pot.members),
                   (OrderSettlement(3, pot.users[1].address, b"\x09" * 32, 2,
                                    (Payout(pot.users[1].address, 5), Payout(pot.users[2].address, 6))),
                    OrderSettlement(4, "0x" + "00" * 20, b"\0" * 32, 0, (Payout(pot.members[1].address, 9),))),
                   (Slash(3, pot.users[3].address, 4, pot.treasury),),
                   (ChallengeVerdict(3, pot.users[4].address, True, pot.users[3].address),))
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
    before = pot.c.token.balance_of(pot.users[1].address)
    res = pot.c.multisig.execute_signed(pot.deployer, b2, sign(pot, b2))
    assert res.event("OrderSkipped")["reason"] == 1  # NotOpen: skipped, nothing paid
    assert pot.c.token.balance_of(pot.users[1].address) == before


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


def _skipped(res) -> dict[int, int]:
    return {e["orderId"]: e["reason"] for e in res.events if e.name == "OrderSkipped"}


def test_payouts_must_equal_escrow(pot):
    """A batch whose payouts do not sum to an order's escrow moves nothing of that order (it is
    skipped with PayoutMismatch), and one order cannot fund another."""
    ms = pot.c.multisig
    oid = _ready_order(pot, reward=1000)
    u1 = pot.users[1].address
    for amount in (1001, 999):
        bad = settle_batch(pot, oid, [(u1, amount)])
        before = pot.c.token.balance_of(u1)
        assert _skipped(ms.execute_signed(pot.deployer, bad, sign(pot, bad))) == {oid: 2}
        assert pot.c.token.balance_of(u1) == before
    oid2 = _ready_order(pot, reward=10)
    steal = Settlement(pot.next_nonce(), orders=(
        OrderSettlement(oid, u1, b"\0" * 32, 0, (Payout(u1, 1005),)),
        OrderSettlement(oid2, u1, b"\0" * 32, 0, (Payout(u1, 5),))))
    before = pot.c.token.balance_of(u1)
    assert _skipped(ms.execute_signed(pot.deployer, steal, sign(pot, steal))) == {oid: 2, oid2: 2}
    assert pot.c.token.balance_of(u1) == before
    # the committee tax counts: perMember * members + payouts == escrow
    members = tuple(m.address for m in pot.members)
    taxed = settle_batch(pot, oid, [(u1, 1000 - 4 * 20)], members=members, per_member=21)
    assert _skipped(ms.execute_signed(pot.deployer, taxed, sign(pot, taxed))) == {oid: 2}
    unknown = settle_batch(pot, 99, [(u1, 1)])
    assert _skipped(ms.execute_signed(pot.deployer, unknown, sign(pot, unknown))) == {99: 1}
    contract_balances_ok(pot, orders=[oid, oid2])
    taxed = settle_batch(pot, oid, [(u1, 1000 - 4 * 20)], members=members, per_member=20)
    before = [pot.c.token.balance_of(a) for a in members]
    ms.execute_signed(pot.deployer, taxed, sign(pot, taxed))
    assert [pot.c.token.balance_of(a) for a in members] == [b + 20 for b in before]
    contract_balances_ok(pot, orders=[oid, oid2])


def test_paper_path(pot):
    ms = pot.c.multisig
    m = member_senders(pot)
    oid = _ready_order(pot)
    batch = settle_batch(pot, oid, [(pot.users[1].address, 1000)])
    pid = batch.proposal_id(ms.domain)
    assert ms.proposal_id(batch) == pid == int.from_bytes(ms.settlement_digest(batch), "big") >> 160
    with reverts("NotMember"):
        ms.propose_reward(pot.users[0], batch)
    res = ms.propose_reward(m[0], batch)
    assert res.event("RewardProposed")["digest"] == ms.settlement_digest(batch)
    assert res.event("RewardProposed")["id"] == pid
    with reverts("AlreadyProposed"):
        ms.propose_reward(m[1], batch)
    with reverts("UnknownProposal"):
        ms.confirm_reward(m[0], pid + 1)
    with reverts("NotMember"):
        ms.confirm_reward(pot.users[0], pid)
    ev = ms.confirm_reward(m[0], pid).event("RewardConfirmed")
    assert ev["id"] == pid and ev["member"] == m[0].address
    with reverts("AlreadyConfirmed"):
        ms.confirm_reward(m[0], pid)
    ms.confirm_reward(m[1], pid)
    with reverts("NotEnoughApprovals"):
        ms.execute_reward(pot.deployer, pid, batch)
    ms.confirm_reward(m[2], pid)
    other = settle_batch(pot, oid, [(pot.users[2].address, 1000)], nonce=batch.nonce)
    with reverts("BatchMismatch"):
        ms.execute_reward(pot.deployer, pid, other)
    ms.execute_reward(pot.deployer, pid, batch)
    with reverts("UnknownProposal"):  # executed proposals are deleted; the nonce is used
        ms.execute_reward(pot.deployer, pid, batch)
    # a proposal whose nonce was used by executeSigned cannot execute
    oid2 = _ready_order(pot)
    b2 = settle_batch(pot, oid2, [(pot.users[1].address, 1000)])
    pid2 = ms.propose_reward(m[0], b2).event("RewardProposed")["id"]
    for s in m[:3]:
        ms.confirm_reward(s, pid2)
    ms.execute_signed(pot.deployer, b2, sign(pot, b2))
    with reverts("NonceUsed"):
        ms.execute_reward(pot.deployer, pid2, b2)


def _act(pot, target, fn, *args, signers=None):
    ms = pot.c.multisig
    client = {ms.address: ms, pot.c.orders.address: pot.c.orders, pot.c.stakes.address: pot.c.stakes,
              pot.c.challenges.address: pot.c.challenges, pot.c.token.address: pot.c.token}[target]
    action = Action(pot.next_nonce(), target, bytes.fromhex(client.encode(fn, *args)[2:]), epoch=ms.epoch())
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
    """A proposal made stale by a membership change cannot execute and blocks nothing: the same
    nonce re-issued for the new epoch is a new proposal (its id comes from its digest)."""
    ms = pot.c.multisig
    m = member_senders(pot)
    oid = _ready_order(pot)
    batch = settle_batch(pot, oid, [(pot.users[1].address, 1000)])
    pid = ms.propose_reward(m[0], batch).event("RewardProposed")["id"]
    for s in m[:3]:
        ms.confirm_reward(s, pid)
    _act(pot, ms.address, "addMember", Account.from_key(keccak(text="x")).address)
    assert ms.epoch() == 2
    with reverts("StaleProposal"):
        ms.execute_reward(pot.deployer, pid, batch)
    with reverts("WrongEpoch"):
        ms.execute_signed(pot.deployer, batch, sign(pot, batch))
    again = batch.with_terms(epoch=2, deadline=batch.deadline)
    pid2 = ms.propose_reward(m[1], again).event("RewardProposed")["id"]
    assert pid2 != pid
    for s in m[:3]:
        ms.confirm_reward(s, pid2)
    ms.execute_reward(pot.deployer, pid2, again)
    assert ms.nonce_used(batch.nonce)


def test_committee_change_is_one_epoch_signed_by_the_old_committee(pot):
    """issue 15: a replacement (and a resize) is one changeMembers action, encoded by
    pot.protocol.epoch, signed by k members of the old epoch; the epoch grows by exactly one, the
    removed member's signature no longer counts, and a stale or replayed change is refused."""
    from pot.protocol.epoch import Committee, make_change, next_committee

    ms = pot.c.multisig
    e0 = ms.epoch()
    now = pot.w3.eth.get_block("latest")["timestamp"]
    committee = Committee(e0, tuple(ms.members()), ms.threshold())
    dead, fresh = committee.members[0], Account.from_key(keccak(text="fresh-member"))
    change = make_change(committee, "replace", [dead, fresh.address], deadline=now + 3600)
    action = change.action(ms.address)
    assert ms.call("actionDigest", action.as_abi()) == eip712.digest(action.signable(ms.domain))
    survivors = [m for m in pot.members if m.address != dead]
    sigs = [action.sign(ms.domain, m.key) for m in survivors[:committee.threshold]]
    ms.execute_action(pot.deployer, action, sigs)
    after = next_committee(committee, change)
    assert ms.epoch() == e0 + 1 == after.epoch
    assert after.same_members(ms.members(), ms.threshold())
    with reverts("WrongEpoch"):  # the same signed change again: the old epoch is over
        ms.execute_action(pot.deployer, action, sigs)
    # Grow to 7 with k = 5 in one step, signed by the epoch-2 committee (the new member included).
    signers = survivors[:2] + [fresh]
    joiners = [Account.from_key(keccak(text=f"g{i}")) for i in range(3)]
    grow = make_change(after, "add", [j.address for j in joiners], deadline=now + 3600)
    assert grow.threshold == 5
    act = grow.action(ms.address)
    with reverts("NotMember"):  # the replaced member cannot vote any more
        _act_signed(pot, act, [next(m for m in pot.members if m.address == dead)] + signers[:2])
    _act_signed(pot, act, signers)
    assert ms.epoch() == e0 + 2 and len(ms.members()) == 7 and ms.threshold() == 5
    assert next_committee(after, grow).same_members(ms.members(), ms.threshold())
    bad = Action(grow.action_nonce + 1, ms.address, bytes.fromhex(
        ms.encode("changeMembers", [], [], 3)[2:]), epoch=ms.epoch(), deadline=now + 3600)
    with reverts("ActionFailed"):  # k = 3 of 7 is no majority: the contract keeps its rule too
        _act_signed(pot, bad, survivors + [fresh] + joiners[:1])


def _act_signed(pot, action, keys):
    ms = pot.c.multisig
    return ms.execute_action(pot.deployer, action, [action.sign(ms.domain, k.key) for k in keys])
