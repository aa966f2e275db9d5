"""StakeRegistry and ChallengeManager: own-funds rules, unbonding, slashing and verdicts only by settlement."""

from __future__ import annotations

from eth_utils import keccak

from contracts.helpers import (SALT, TEST_CID, contract_balances_ok, goto, place, reverts, settle_batch,
                               sign)
from contracts.test_multisig import _act
from pot.chain.clients import MINER, VALIDATOR, VERIFIER, challenge_commitment
from pot.protocol.settlement import ChallengeVerdict, Slash


def _approve(pot, s):
    pot.c.token.ensure_allowance(s, pot.c.stakes.address, 2**96 - 1)
    pot.c.token.ensure_allowance(s, pot.c.challenges.address, 2**96 - 1)


def test_register_add_unregister_withdraw(pot):
    st, u = pot.c.stakes, pot.users[0]
    _approve(pot, u)
    with reverts("InvalidRoles"):
        st.register(u, 0, 100)
    with reverts("InvalidRoles"):
        st.register(u, 16, 100)
    with reverts("InsufficientStake"):
        st.register(u, MINER | VALIDATOR, 199)  # sum of both roles' minimums
    with reverts("NotRegistered"):
        st.add_stake(u, 1)
    with reverts("NotRegistered"):
        st.request_unregister(u)
    with reverts("NotRegistered"):
        st.withdraw(u)
    res = st.register(u, MINER | VALIDATOR, 200)
    assert res.event("Registered")["roles"] == 3 and st.has_roles(u.address, MINER)
    with reverts("ZeroAmount"):
        st.add_stake(u, 0)
    st.add_stake(u, 50)
    st.register(u, VERIFIER, 100)  # add a role with more stake
    assert st.staker(u.address) == {"stake": 350, "locked": 0, "roles": 7, "unbonding_end": 0}
    with reverts("NotUnbonding"):
        st.withdraw(u)
    end = st.request_unregister(u).event("UnregisterRequested")["unbondingEnd"]
    assert not st.has_roles(u.address, MINER)
    with reverts("Unbonding"):
        st.request_unregister(u)
    with reverts("Unbonding"):
        st.add_stake(u, 1)
    with reverts("UnbondingNotOver"):  # withdrawing inside the unbonding period
        st.withdraw(u)
    goto(pot, end)
    before = pot.c.token.balance_of(u.address)
    assert st.withdraw(u).event("Withdrawn")["amount"] == 350
    assert pot.c.token.balance_of(u.address) == before + 350
    contract_balances_ok(pot, stakers=[u.address])


def test_lock_slash_only_by_committee(pot):
    st, u, thief = pot.c.stakes, pot.users[0], pot.users[1]
    _approve(pot, u)
    st.register(u, MINER, 500)
    for fn, args in (("slash", (u.address, 1, thief.address)), ("lock", (u.address, 1)),
                     ("unlock", (u.address, 1)), ("setMinStake", (1, 0)), ("setUnbondingPeriod", (0,))):
        with reverts("OnlyMultisig"):
            st.transact(thief, fn, *args)
    with reverts("ActionFailed"):
        _act(pot, st.address, "lock", u.address, 501)
    _act(pot, st.address, "lock", u.address, 300)
    end = st.request_unregister(u).event("UnregisterRequested")["unbondingEnd"]
    goto(pot, end)
    with reverts("StakeLocked"):
        st.withdraw(u)
    # a settlement slashes, even during unbonding; what stays locked is at most what is left
    oid, _ = place(pot, pot.users[2])
    goto(pot, pot.c.orders.windows(oid)["release_end"])
    b = settle_batch(pot, 0, [], slashes=[Slash(oid, u.address, 400, thief.address),
                                          Slash(oid, u.address, 50, pot.treasury)])
    before = pot.c.token.balance_of(thief.address)
    pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert pot.c.token.balance_of(thief.address) == before + 400
    assert st.staker(u.address)["stake"] == 50 and st.staker(u.address)["locked"] == 50
    # a slash larger than the stake takes what is there instead of reverting the batch
    over = settle_batch(pot, 0, [], slashes=[Slash(oid, u.address, 51, thief.address)])
    before = pot.c.token.balance_of(thief.address)
    res = pot.c.multisig.execute_signed(pot.deployer, over, sign(pot, over))
    assert res.event("Slashed")["amount"] == 50 and pot.c.token.balance_of(thief.address) == before + 50
    assert st.staker(u.address)["stake"] == 0 and st.staker(u.address)["locked"] == 0
    st.withdraw(u)
    contract_balances_ok(pot, stakers=[u.address])


def _challenge_setup(pot):
    client, ver = pot.users[0], pot.users[2]
    _approve(pot, ver)
    pot.c.stakes.register(ver, VERIFIER, 100)
    oid, _ = place(pot, client, reward=1000)
    goto(pot, pot.c.orders.windows(oid)["reveal_end"])
    pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)
    return oid, ver, pot.c.orders.windows(oid)


def test_challenge_commit_reveal_and_verdicts(pot):
    ch = pot.c.challenges
    oid, ver, w = _challenge_setup(pot)
    vid = keccak(b"validation")
    commitment = challenge_commitment(oid, ver.address, vid, SALT)
    with reverts("OutsideWindow"):  # still in validation
        ch.commit_challenge(ver, oid, commitment)
    with reverts("NotVerifier"):
        ch.commit_challenge(pot.users[3], oid, commitment)
    with reverts("TestDataNotReleased"):
        ch.commit_challenge(ver, place(pot, pot.users[0])[0], commitment)
    goto(pot, w["challenge_end"] - pot.c.orders.get_order(oid)["challenge_duration"])
    res = ch.commit_challenge(ver, oid, commitment)
    assert res.event("ChallengeCommitted")["stake"] == 40
    with reverts("AlreadyChallenged"):
        ch.commit_challenge(ver, oid, commitment)
    with reverts("OutsideWindow"):
        ch.reveal_challenge(ver, oid, vid, SALT)
    with reverts("NoChallenge"):
        ch.reveal_challenge(pot.users[3], oid, vid, SALT)
    goto(pot, w["challenge_end"])
    with reverts("BadOpening"):
        ch.reveal_challenge(ver, oid, vid, b"\x01" * 32)
    ch.reveal_challenge(ver, oid, vid, SALT)
    with reverts("NotCommitted"):
        ch.reveal_challenge(ver, oid, vid, SALT)
    with reverts("OnlyMultisig"):
        ch.transact(ver, "resolve", oid, ver.address, True, ver.address, ver.address)
    contract_balances_ok(pot, orders=[oid], stakers=[ver.address], challenges=[(oid, ver.address)])
    goto(pot, w["challenge_reveal_end"])
    validator = pot.users[4].address
    b = settle_batch(pot, oid, [(pot.users[1].address, 1000)], verdicts=[ChallengeVerdict(oid, ver.address, False, validator)])
    t_before = pot.c.token.balance_of(pot.treasury)
    pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert pot.c.token.balance_of(validator) >= 20 and pot.c.token.balance_of(pot.treasury) == t_before + 20
    assert ch.get_challenge(oid, ver.address)["status"] == 3
    again = settle_batch(pot, 0, [], verdicts=[ChallengeVerdict(oid, ver.address, True, validator)])
    res = pot.c.multisig.execute_signed(pot.deployer, again, sign(pot, again))  # skipped, not reverted
    assert res.event("VerdictSkipped")["challenger"] == ver.address
    with reverts("NoChallenge"):
        ch.reclaim_stake(ver, oid)
    contract_balances_ok(pot, orders=[oid], stakers=[ver.address], challenges=[(oid, ver.address)])


def test_upheld_verdict_and_reclaim_stake(pot):
    ch = pot.c.challenges
    oid, ver, w = _challenge_setup(pot)
    goto(pot, w["challenge_end"] - pot.c.orders.get_order(oid)["challenge_duration"])
    ch.commit_challenge(ver, oid, b"\x07" * 32)
    with reverts("TooEarly"):
        ch.reclaim_stake(ver, oid)
    goto(pot, w["challenge_reveal_end"] + pot.params.settlement_grace)
    before = pot.c.token.balance_of(ver.address)
    ch.reclaim_stake(ver, oid)
    assert pot.c.token.balance_of(ver.address) == before + 40
    # upheld: a second verifier's stake comes back through a verdict
    oid2, _, w2 = _challenge_setup(pot)
    goto(pot, w2["challenge_end"] - 10)  # a few seconds inside: the next block may be a second later
    ch.commit_challenge(ver, oid2, b"\x07" * 32)
    goto(pot, w2["challenge_reveal_end"])
    before = pot.c.token.balance_of(ver.address)
    b = settle_batch(pot, 0, [], verdicts=[ChallengeVerdict(oid2, ver.address, True, pot.users[4].address)])
    pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert pot.c.token.balance_of(ver.address) == before + 40
    contract_balances_ok(pot, orders=[oid, oid2], stakers=[ver.address],
                         challenges=[(oid, ver.address), (oid2, ver.address)])
