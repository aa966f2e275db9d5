"""Issue 9: every attack that worked against the first contracts, replayed as an outsider would
(a fresh deployment, the exported ABIs, keys of its own) and now refused.

Each test plays the attack first, then checks what the attacker gets now. On the old contracts
they fail: a member's proposal captured the honest batch's nonce and was confirmed by nonce; a
staker withdrew before the settlement that slashed it; one reclaimed order or withdrawn stake
reverted the whole batch; signatures named no epoch or deadline; nonces were shared.
"""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak

from contracts.helpers import (MID, SALT, TEST_CID, contract_balances_ok, goto, member_senders, place, reverts,
                               settle_batch, sign)
from contracts.test_multisig import _act
from contracts.test_stakes_challenges import _approve, _challenge_setup
from pot.chain.clients import VALIDATOR, challenge_commitment, data_commitment
from pot.protocol.settlement import ChallengeVerdict, OrderSettlement, Payout, Settlement, Slash

ZERO = "0x" + "00" * 20


def _finalizable(pot, oid):
    goto(pot, pot.c.orders.call("finalizableAt", oid))


def _released(pot, client, reward=1000):
    """An order whose test data came; its windows are over."""
    oid, _ = place(pot, client, reward=reward)
    goto(pot, pot.c.orders.windows(oid)["reveal_end"])
    pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)
    return oid


def _skipped(res) -> dict[int, int]:
    return {e["orderId"]: e["reason"] for e in res.events if e.name == "OrderSkipped"}


# ---------------------------------------------------------------- 1. one member steals on the paper path

def test_member_cannot_capture_the_honest_batch_on_the_paper_path(pot):
    """The attack: member 0 proposes, under the ledger's next nonce, a batch paying every escrow
    to itself and slashing an innocent validator's stake to itself; the honest members confirm
    "the proposal for that nonce". Now the id is the batch digest's upper 96 bits: the honest
    members confirm the id of the batch THEIR ledger computed, the thief's batch never gets k."""
    ms, c = pot.c.multisig, pot.c
    m = member_senders(pot)
    thief, honest = m[0], m[1:]
    innocent, winner = pot.users[3], pot.users[4].address
    _approve(pot, innocent)
    c.stakes.register(innocent, VALIDATOR, 500)
    oid = _released(pot, pot.users[0])
    _finalizable(pot, oid)
    nonce = pot.next_nonce()
    honest_batch = settle_batch(pot, oid, [(winner, 1000)], nonce=nonce)
    steal = Settlement(nonce, orders=(OrderSettlement(oid, thief.address, MID, 0, (Payout(thief.address, 1000),)),),
                       slashes=(Slash(oid, innocent.address, 500, thief.address),))
    sid = ms.propose_reward(thief, steal).event("RewardProposed")["id"]
    ms.confirm_reward(thief, sid)
    # the honest replicas: propose their own batch if nobody did (no squatting), confirm its id
    hid = honest_batch.proposal_id(ms.domain)
    assert hid != sid and not ms.proposal_state(hid)[1]
    ms.propose_reward(honest[0], honest_batch)
    for s in honest:
        ms.confirm_reward(s, hid)
    with reverts("NotEnoughApprovals"):
        ms.execute_reward(pot.deployer, sid, steal)
    with reverts("BatchMismatch"):  # the thief's batch under the honest id
        ms.execute_reward(pot.deployer, hid, steal)
    before = c.token.balance_of(winner)
    ms.execute_reward(pot.deployer, hid, honest_batch)
    assert c.token.balance_of(winner) == before + 1000
    assert c.stakes.staker(innocent.address)["stake"] == 500
    for s in honest:  # and the thief's batch can never execute: its nonce is used
        ms.confirm_reward(s, sid)
    with reverts("NonceUsed"):
        ms.execute_reward(pot.deployer, sid, steal)
    contract_balances_ok(pot, stakers=[innocent.address])


# ---------------------------------------------------------------- 2. a validator escapes its slash

def test_validator_cannot_withdraw_before_the_settlement_that_slashes_it(pot):
    """The attack: reveal a wrong validation, requestUnregister at once, withdraw before the
    settlement lands (which then reverted SlashExceedsStake under every nonce). Now the unbonding
    period outlasts any order's lifetime plus its grace: the stake is still there when the
    settlement is due, and the settlement slashes it."""
    c, liar = pot.c, pot.users[3]
    _approve(pot, liar)
    c.stakes.register(liar, VALIDATOR, 500)
    oid = _released(pot, pot.users[0])
    # ... the liar reveals its wrong validation off-chain, inside the order, and runs
    end = c.stakes.request_unregister(liar).event("UnregisterRequested")["unbondingEnd"]
    assert end > c.orders.call("reclaimableAt", oid)  # unbonding outlasts the order + its grace
    goto(pot, c.orders.call("reclaimableAt", oid))
    with reverts("UnbondingNotOver"):
        c.stakes.withdraw(liar)
    b = settle_batch(pot, oid, [(pot.users[4].address, 1000)],
                     slashes=[Slash(oid, liar.address, 300, pot.users[5].address)])
    c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert c.stakes.staker(liar.address)["stake"] == 200
    goto(pot, end)
    before = c.token.balance_of(liar.address)
    c.stakes.withdraw(liar)
    assert c.token.balance_of(liar.address) == before + 200
    contract_balances_ok(pot, stakers=[liar.address])


def test_the_exposure_bound_holds_through_every_parameter_change(pot):
    """maxOrderLifetime + settlementGrace < unbondingPeriod, whichever parameter moves, and no
    order may outlive maxOrderLifetime."""
    c = pot.c
    life, grace, unbond = (c.orders.call("maxOrderLifetime"), c.orders.call("settlementGrace"),
                           c.stakes.call("unbondingPeriod"))
    assert life + grace < unbond
    from contracts.helpers import action_reverts
    with action_reverts("ExposureOutlivesUnbonding"):
        _act(pot, c.stakes.address, "setUnbondingPeriod", life + grace)
    with action_reverts("ExposureOutlivesUnbonding"):
        _act(pot, c.orders.address, "setSettlementGrace", unbond - life)
    with action_reverts("ExposureOutlivesUnbonding"):
        _act(pot, c.orders.address, "setMaxOrderLifetime", unbond - grace)
    _act(pot, c.orders.address, "setMaxOrderLifetime", unbond - grace - 1)
    # an order's windows: train + validate + challenge + 4 x reveal <= maxOrderLifetime
    _act(pot, c.orders.address, "setMaxOrderLifetime", 699)
    with reverts("OrderTooLong") as info:
        place(pot, pot.users[0], d=100)  # 3 x 100 + 4 x 100 = 700
    assert info.value.args_ == (700, 699)


def test_a_slash_takes_what_is_there_and_the_batch_applies(pot):
    """A staker slashed twice in one batch (or whose stake shrank before) loses what it has; the
    batch's other orders still pay, and no token is created or lost."""
    c, v = pot.c, pot.users[3]
    _approve(pot, v)
    c.stakes.register(v, VALIDATOR, 150)
    oid = _released(pot, pot.users[0])
    _finalizable(pot, oid)
    b = settle_batch(pot, oid, [(pot.users[4].address, 1000)],
                     slashes=[Slash(oid, v.address, 100, pot.treasury), Slash(oid, v.address, 100, pot.users[5].address)])
    before5 = c.token.balance_of(pot.users[5].address)
    res = c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert [e["amount"] for e in res.events if e.name == "Slashed"] == [100, 50]
    assert c.token.balance_of(pot.users[5].address) == before5 + 50 and c.stakes.staker(v.address)["stake"] == 0
    assert res.event("OrderSettled")["orderId"] == oid
    contract_balances_ok(pot, stakers=[v.address])


# ---------------------------------------------------------------- 3. batches were all-or-nothing

def test_one_order_that_cannot_settle_never_blocks_the_others(pot):
    """The attack: the client of one order reclaims after the grace, a challenger takes its cStake
    back before a late verdict, a slashed staker withdrew: the batch reverted for every order.
    Now each is skipped with its reason and everything else applies, exactly."""
    c, client = pot.c, pot.users[0]
    late = _released(pot, client, reward=700)             # its client will reclaim
    ok = _released(pot, client, reward=300)               # an honest order in the same batch
    oid_ch, ver, w = _challenge_setup(pot)                # a challenge whose verifier reclaims
    goto(pot, w["challenge_end"] - 10)
    c.challenges.commit_challenge(ver, oid_ch, challenge_commitment(oid_ch, ver.address, keccak(b"v"), SALT))
    gone = pot.users[5]                                    # a staker that withdrew
    _approve(pot, gone)
    c.stakes.register(gone, VALIDATOR, 100)
    c.stakes.request_unregister(gone)
    goto(pot, max(c.orders.call("reclaimableAt", o) for o in (late, ok, oid_ch)) + 1)
    c.orders.reclaim(client, late)
    c.challenges.reclaim_stake(ver, oid_ch)
    goto(pot, c.stakes.staker(gone.address)["unbonding_end"])
    c.stakes.withdraw(gone)
    winner, validator = pot.users[4].address, pot.users[6].address
    b = Settlement(pot.next_nonce(), members=tuple(m.address for m in pot.members),
                   orders=(OrderSettlement(late, winner, MID, 10, (Payout(winner, 660),)),
                           OrderSettlement(ok, winner, MID, 5, (Payout(winner, 250), Payout(validator, 30))),
                           OrderSettlement(oid_ch, winner, MID, 0, (Payout(winner, 1000),))),
                   slashes=(Slash(ok, gone.address, 100, pot.treasury),),
                   verdicts=(ChallengeVerdict(oid_ch, ver.address, False, validator),))
    members = [m.address for m in pot.members]
    before = {a: c.token.balance_of(a) for a in [winner, validator, pot.treasury, *members]}
    res = c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert _skipped(res) == {late: 1}                      # NotOpen: reclaimed
    assert res.event("SlashSkipped")["staker"] == gone.address
    assert res.event("VerdictSkipped")["challenger"] == ver.address
    assert res.event("SettlementExecuted")["orders"] == 2
    assert c.token.balance_of(winner) == before[winner] + 250 + 1000   # one transfer, two orders
    assert c.token.balance_of(validator) == before[validator] + 30
    assert [c.token.balance_of(m) for m in members] == [before[m] + 5 for m in members]
    assert c.token.balance_of(pot.treasury) == before[pot.treasury]
    transfers = [e for e in res.events if e.name == "Transfer" and e["from"] == c.orders.address]
    assert len(transfers) == 2 + len(members)  # merged per recipient
    contract_balances_ok(pot, stakers=[gone.address, ver.address], challenges=[(oid_ch, ver.address)])


def test_a_batch_cannot_name_a_winner_it_does_not_pay(pot):
    oid = _released(pot, pot.users[0])
    _finalizable(pot, oid)
    b = settle_batch(pot, oid, [(pot.users[1].address, 1000)], winner=pot.users[2].address)
    res = pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert _skipped(res) == {oid: 3} and not [e for e in res.events if e.name == "OrderSettled"]


# ---------------------------------------------------------------- 5. nothing expired

def test_signatures_are_bound_to_the_epoch_and_a_deadline(pot):
    """The attack: a signature made before a member was removed worked again after it was
    re-added, and a signed batch never expired."""
    ms = pot.c.multisig
    oid = _released(pot, pot.users[0])
    _finalizable(pot, oid)
    now = pot.w3.eth.get_block("latest")["timestamp"]
    b = settle_batch(pot, oid, [(pot.users[1].address, 1000)], deadline=now + 50)
    sigs = sign(pot, b)
    member = pot.members[3].address
    _act(pot, ms.address, "removeMember", member)
    _act(pot, ms.address, "addMember", member)
    assert ms.members()[-1] == member and ms.epoch() == 3
    with reverts("WrongEpoch"):
        ms.execute_signed(pot.deployer, b, sigs)
    fresh = b.with_terms(epoch=3, deadline=now + 50)
    goto(pot, now + 51)
    with reverts("Expired"):
        ms.execute_signed(pot.deployer, fresh, sign(pot, fresh))
    again = b.with_terms(epoch=3, deadline=now + 1000)   # the ledger re-issues: same nonce
    ms.execute_signed(pot.deployer, again, sign(pot, again))
    with reverts("NonceUsed"):                           # and no other version can follow
        ms.execute_signed(pot.deployer, fresh.with_terms(epoch=3, deadline=now + 2000),
                          sign(pot, fresh.with_terms(epoch=3, deadline=now + 2000)))


# ---------------------------------------------------------------- 6. also seen

def test_no_verdict_or_slash_before_the_challenge_reveals_end(pot):
    c = pot.c
    oid, ver, w = _challenge_setup(pot)
    goto(pot, w["challenge_end"] - 10)
    c.challenges.commit_challenge(ver, oid, b"\x07" * 32)
    early = settle_batch(pot, 0, [], verdicts=[ChallengeVerdict(oid, ver.address, False, pot.treasury)])
    with reverts("TooEarly"):  # the verifier may still reveal
        c.multisig.execute_signed(pot.deployer, early, sign(pot, early))
    v = pot.users[3]
    _approve(pot, v)
    c.stakes.register(v, VALIDATOR, 100)
    slash = settle_batch(pot, 0, [], slashes=[Slash(oid, v.address, 10, pot.treasury)])
    with reverts("TooEarly"):
        c.multisig.execute_signed(pot.deployer, slash, sign(pot, slash))
    goto(pot, w["challenge_reveal_end"])
    for b in (early, slash):
        c.multisig.execute_signed(pot.deployer, b, sign(pot, b))


def test_before_the_release_window_ends_only_a_whole_refund_settles(pot):
    """settle was allowed at trainEnd whatever the batch paid, while the test data could still come."""
    c, client = pot.c, pot.users[0]
    oid, _ = place(pot, client, reward=1000)
    goto(pot, c.orders.windows(oid)["train_end"])
    split = settle_batch(pot, oid, [(pot.users[1].address, 600), (pot.users[2].address, 400)])
    with reverts("TooEarly"):
        c.multisig.execute_signed(pot.deployer, split, sign(pot, split))
    refund = settle_batch(pot, oid, [(client.address, 1000)], winner=ZERO)
    before = c.token.balance_of(client.address)
    c.multisig.execute_signed(pot.deployer, refund, sign(pot, refund))
    assert c.token.balance_of(client.address) == before + 1000


def test_grace_changes_leave_open_orders_alone(pot):
    """settlementGrace 0 let clients reclaim at once; 2^32 - 1 locked reclaims: now an order keeps
    the grace it was placed with."""
    c = pot.c
    oid, _ = place(pot, pot.users[0])
    at = c.orders.call("reclaimableAt", oid)
    _act(pot, c.orders.address, "setSettlementGrace", 0)
    assert c.orders.call("reclaimableAt", oid) == at and c.orders.get_order(oid)["settlement_grace"] == 500
    oid2, _ = place(pot, pot.users[0])
    assert c.orders.get_order(oid2)["settlement_grace"] == 0


def test_zero_test_commitment_and_free_challenges_are_refused(pot):
    c = pot.c
    with reverts("ZeroTestCommitment"):
        place(pot, pot.users[0], commitment=b"\0" * 32)
    place(pot, pot.users[0], commitment=data_commitment(pot.users[0].address, TEST_CID, SALT))
    from contracts.helpers import deploy_contract
    with reverts("ZeroChallengeStake"):
        deploy_contract(pot, "ChallengeManager", c.token.address, c.orders.address, c.stakes.address,
                        c.multisig.address, 0)


def test_the_multisig_refuses_the_pot_contracts_as_members(pot):
    from contracts.helpers import action_reverts
    ms = pot.c.multisig
    for bad in (ms.address, pot.c.orders.address, pot.c.stakes.address, pot.c.challenges.address):
        with action_reverts("BadMember"):
            _act(pot, ms.address, "addMember", bad)
    outsider = Account.from_key(keccak(text="attacks-outsider")).address
    _act(pot, ms.address, "addMember", outsider)
