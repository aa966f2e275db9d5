"""Every custom error (and the external functions) the other contract tests leave untouched.

Issue 2: a test for each function's success path and for each revert. This file fills the gaps
left by test_orders / test_stakes_challenges / test_multisig: the constructors' checks, the
governance setters' refusals (seen through ``ActionFailed(reason)``), the paper path's id bound,
the committee-only StakeRegistry calls, ChallengeManager's late windows, and the views.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from contracts.helpers import (SALT, TEST_CID, action_reverts, contract_balances_ok, deploy_contract, goto,
                               member_senders, place, reverts, settle_batch, sign)
from contracts.test_multisig import _act
from contracts.test_stakes_challenges import _approve, _challenge_setup
from pot.chain.clients import (AGGREGATOR, MINER, VALIDATOR, VERIFIER, Action, ChallengeManagerClient,
                               RewardMultisigClient, challenge_commitment)
from pot.chain.errors import decode_error_data
from pot.protocol import eip712
from pot.protocol.settlement import ChallengeVerdict, Settlement, Slash

ZERO = "0x" + "00" * 20
U96 = 2**96


def _addr(tag: str) -> str:
    return Account.from_key(keccak(text=tag)).address


def _accounts(n: int, tag: str = "m"):
    return [Account.from_key(keccak(text=f"reverts-{tag}-{i}")) for i in range(n)]


# ---------------------------------------------------------------- constructors

def _ctor_args(pot):
    c = pot.c
    tok, ms, ob, sr, cm = c.token.address, c.multisig.address, c.orders.address, c.stakes.address, c.challenges.address
    mem = [m.address for m in pot.members]
    return {
        "StakeRegistry": [tok, ms, ob, [1, 1, 1, 1], 10],
        "OrderBook": [tok, ms, sr, 10, 10, 10],
        "ChallengeManager": [tok, ob, sr, ms, 40],
        "RewardMultisig": [ob, sr, cm, mem, 3, pot.treasury],
    }


@pytest.mark.parametrize("name,zero_at", [
    ("StakeRegistry", 0), ("StakeRegistry", 1), ("StakeRegistry", 2),
    ("OrderBook", 0), ("OrderBook", 1), ("OrderBook", 2),
    ("ChallengeManager", 0), ("ChallengeManager", 1), ("ChallengeManager", 2), ("ChallengeManager", 3),
    ("RewardMultisig", 0), ("RewardMultisig", 1), ("RewardMultisig", 2), ("RewardMultisig", 5),
])
def test_constructor_zero_address(pot, name, zero_at):
    args = _ctor_args(pot)[name]
    deploy_contract(pot, name, *args)  # the same arguments without the zero deploy fine
    args[zero_at] = ZERO
    with reverts("ZeroAddress"):
        deploy_contract(pot, name, *args)


def test_multisig_constructor_membership_checks(pot):
    ob, sr, cm, mem, _, tr = _ctor_args(pot)["RewardMultisig"]
    with reverts("ZeroAddress"):  # a zero member
        deploy_contract(pot, "RewardMultisig", ob, sr, cm, mem[:2] + [ZERO], 2, tr)
    with reverts("AlreadyMember"):
        deploy_contract(pot, "RewardMultisig", ob, sr, cm, mem[:3] + [mem[0]], 3, tr)
    for members, k in ((mem, 0), (mem, 5), (mem, 2), ([], 0), ([], 1)):
        with reverts("InvalidThreshold"):
            deploy_contract(pot, "RewardMultisig", ob, sr, cm, members, k, tr)
    many = [a.address for a in _accounts(129)]
    with reverts("TooManyMembers") as info:
        deploy_contract(pot, "RewardMultisig", ob, sr, cm, many, 65, tr)
    assert info.value.args_ == (129, 128)
    # the contracts themselves cannot sign: none of them may be a member
    for bad in (ob, sr, cm):
        with reverts("BadMember"):
            deploy_contract(pot, "RewardMultisig", ob, sr, cm, mem[:2] + [bad], 2, tr)


def test_add_member_past_max_members(pot):
    """A full committee (MAX_MEMBERS = 128) refuses a 129th member even under threshold."""
    ob, sr, cm, _, _, tr = _ctor_args(pot)["RewardMultisig"]
    accs = _accounts(128)
    addr = deploy_contract(pot, "RewardMultisig", ob, sr, cm, [a.address for a in accs], 65, tr)
    ms = RewardMultisigClient(pot.w3, addr, {addr: "RewardMultisig"})
    assert ms.call("MAX_MEMBERS") == 128 and len(ms.members()) == 128 and ms.threshold() == 65
    assert ms.epoch() == 1
    action = Action(1, addr, bytes.fromhex(ms.encode("addMember", _addr("129th"))[2:]))
    sigs = [action.sign(ms.domain, a.key) for a in accs[:65]]
    with action_reverts("TooManyMembers"):
        ms.execute_action(pot.deployer, action, sigs)
    assert not ms.action_nonce_used(1)  # the failed action left nothing behind


def test_token_constructor_supply_bound(pot):
    deploy_contract(pot, "PoTToken", pot.users[0].address, U96 - 1)
    with reverts("Error") as info:
        deploy_contract(pot, "PoTToken", pot.users[0].address, U96)
    assert info.value.args_ == ("supply exceeds uint96",)


# ---------------------------------------------------------------- RewardMultisig

def test_proposal_ids_come_from_the_digest(pot):
    """The paper path's id is the digest's upper 96 bits: two batches for one nonce are two
    proposals, neither can squat the other, and executeReward checks the batch against the id."""
    ms = pot.c.multisig
    m = member_senders(pot)
    a, b = Settlement(pot.next_nonce()), None
    b = Settlement(a.nonce, deadline=a.deadline - 1)  # same nonce, another batch
    ida, idb = ms.proposal_id(a), ms.proposal_id(b)
    assert ida != idb and ida < 2**96 and idb < 2**96
    assert tuple(ms.call("proposalState", ida)) == (0, False)
    ms.propose_reward(m[0], a)
    ms.propose_reward(m[1], b)
    ev = ms.confirm_reward(m[1], ida).event("RewardConfirmed")
    assert ev["id"] == ida and ev["member"] == m[1].address
    assert tuple(ms.call("proposalState", ida)) == (1, True)
    with reverts("BatchMismatch"):  # another batch than the id's
        ms.execute_reward(pot.deployer, ida, b)
    for s in (m[0], m[2]):
        ms.confirm_reward(s, ida)
    ms.execute_reward(pot.deployer, ida, a)
    assert ms.nonce_used(a.nonce) and tuple(ms.call("proposalState", ida)) == (0, False)
    for s in m[:3]:
        ms.confirm_reward(s, idb)
    with reverts("NonceUsed"):  # at most one batch per nonce
        ms.execute_reward(pot.deployer, idb, b)


def test_governance_refusals(pot):
    ms = pot.c.multisig
    me = ms.address
    mem = [m.address for m in pot.members]
    for k in (0, 5):  # zero, more than the members
        with action_reverts("InvalidThreshold"):
            _act(pot, me, "setThreshold", k)
    with action_reverts("AlreadyMember"):
        _act(pot, me, "addMember", mem[1])
    with action_reverts("ZeroAddress"):
        _act(pot, me, "addMember", ZERO)
    with action_reverts("ZeroAddress"):
        _act(pot, me, "setTreasury", ZERO)
    with action_reverts("NotMember"):
        _act(pot, me, "removeMember", _addr("outsider"))
    with action_reverts("Revert"):  # calldata without a selector: no fallback, empty revert data
        a = Action(pot.next_nonce(), me, b"\x01", epoch=ms.epoch())
        ms.execute_action(pot.deployer, a, [a.sign(ms.domain, k.key) for k in pot.members[:3]])
    # the threshold check in removeMember: 4 of 4 cannot shrink to 3 members
    _act(pot, me, "setThreshold", 4)
    epoch = ms.call("epoch")
    with action_reverts("InvalidThreshold") as info:
        _act(pot, me, "removeMember", mem[3], signers=pot.members)
    assert decode_error_data(bytes(info.value.args_[0])).args_ == (4, 3)
    assert ms.members() == mem and ms.call("isMember", mem[3]) and ms.call("epoch") == epoch
    _act(pot, me, "setThreshold", 3, signers=pot.members)
    _act(pot, me, "removeMember", mem[3])
    assert not ms.call("isMember", mem[3]) and ms.call("epoch") == epoch + 1
    # an action nonce is spent once, in a space of its own: settlements keep theirs
    action = Action(pot.next_nonce(), me, bytes.fromhex(ms.encode("setParam", b"\x01" * 32, 9)[2:]),
                    epoch=ms.epoch())
    sigs = [action.sign(ms.domain, k.key) for k in pot.members[:3]]
    assert ms.execute_action(pot.deployer, action, sigs).event("ActionExecuted")["nonce"] == action.nonce
    with reverts("NonceUsed"):
        ms.execute_action(pot.deployer, action, sigs)
    same_nonce = Settlement(action.nonce, epoch=ms.epoch())
    assert not ms.nonce_used(action.nonce) and ms.action_nonce_used(action.nonce)
    ms.execute_signed(pot.deployer, same_nonce, sign(pot, same_nonce, pot.members[:3]))
    assert ms.nonce_used(action.nonce)
    # an action of another epoch, or past its deadline, does not execute
    old = Action(pot.next_nonce(), me, action.data, epoch=ms.epoch() - 1)
    with reverts("WrongEpoch"):
        ms.execute_action(pot.deployer, old, [old.sign(ms.domain, k.key) for k in pot.members[:3]])
    late = Action(pot.next_nonce(), me, action.data, epoch=ms.epoch(), deadline=1)
    with reverts("Expired"):
        ms.execute_action(pot.deployer, late, [late.sign(ms.domain, k.key) for k in pot.members[:3]])


def test_add_member_keeps_threshold_a_majority(pot):
    """addMember re-checks the threshold: k = 3 is a majority of 5 members but not of 6."""
    ms = pot.c.multisig
    _act(pot, ms.address, "addMember", _addr("fifth"))
    with action_reverts("InvalidThreshold") as info:
        _act(pot, ms.address, "addMember", _addr("sixth"))
    assert decode_error_data(bytes(info.value.args_[0])).args_ == (3, 6)
    _act(pot, ms.address, "setThreshold", 4)
    _act(pot, ms.address, "addMember", _addr("sixth"), signers=pot.members[:4])
    assert len(ms.members()) == 6 and ms.threshold() == 4


# RewardMultisig storage: slots 0-1 are EIP712's name/version fallbacks, slot 2 packs
# treasury (bits 0..159) | threshold (160..167) | epoch (168..199, a uint32), slot 7 is _proposals.
_MS_PACKED_SLOT = 2
_MS_PROPOSALS_SLOT = 7


def _set_epoch(pot, epoch: int) -> None:
    ms, w3 = pot.c.multisig, pot.w3
    word = int.from_bytes(w3.eth.get_storage_at(ms.address, _MS_PACKED_SLOT), "big")
    assert word & (2**160 - 1) == int(pot.treasury, 16) and (word >> 160) & 0xFF == ms.threshold()
    assert (word >> 168) & 0xFFFFFFFF == ms.call("epoch") and word >> 200 == 0
    word = (word & ~(0xFFFFFFFF << 168)) | (epoch << 168)
    w3.provider.make_request("anvil_setStorageAt",
                             [ms.address, hex(_MS_PACKED_SLOT), "0x" + word.to_bytes(32, "big").hex()])
    assert ms.call("epoch") == epoch


def test_membership_changes_past_every_epoch_width(pot):
    """Regression: ``epoch`` was a uint8 bumped with checked ``++epoch`` on every add/remove, so after
    255 membership changes the committee was frozen. It is now a uint32 bumped unchecked that
    skips 0 (a stored proposal is nonzero because its epoch is): it goes past 255 and 65,535, and
    wraps to 1."""
    ms = pot.c.multisig
    new = _addr("after-255")
    _set_epoch(pot, 255)
    _act(pot, ms.address, "addMember", new)
    assert ms.call("isMember", new) and ms.call("epoch") == 256
    _set_epoch(pot, 2**16 - 1)
    _act(pot, ms.address, "removeMember", new)
    assert ms.call("epoch") == 2**16
    _set_epoch(pot, 2**32 - 1)
    _act(pot, ms.address, "addMember", new)
    assert ms.call("isMember", new) and ms.call("epoch") == 1


def test_proposal_slot_packs_wide_epoch(pot):
    """A proposal is one slot: digest[159:64] << 160 | epoch << 128 | approvals (128 bits). An
    epoch is kept whole, and one that differs only in its high bytes still makes it stale."""
    ms, w3 = pot.c.multisig, pot.w3
    m = member_senders(pot)
    _set_epoch(pot, 0x12345678)
    batch = Settlement(pot.next_nonce(), epoch=0x12345678)
    pid = ms.propose_reward(m[0], batch).event("RewardProposed")["id"]
    key = keccak(pid.to_bytes(32, "big") + _MS_PROPOSALS_SLOT.to_bytes(32, "big"))

    def word() -> int:
        return int.from_bytes(w3.eth.get_storage_at(ms.address, int.from_bytes(key, "big")), "big")

    digest = int.from_bytes(ms.settlement_digest(batch), "big")
    assert pid == digest >> 160
    assert word() >> 160 == (digest >> 64) & (2**96 - 1)
    assert (word() >> 128) & 0xFFFFFFFF == 0x12345678 and word() & (2**128 - 1) == 0
    for s in m[:3]:
        ms.confirm_reward(s, pid)
    positions = [ms.members().index(s.address) for s in m[:3]]
    assert word() & (2**128 - 1) == sum(1 << p for p in positions)
    assert word() >> 128 == (((digest >> 64) & (2**96 - 1)) << 32) | 0x12345678  # the rest untouched
    assert tuple(ms.call("proposalState", pid)) == (3, True)
    _set_epoch(pot, 0x00005678)  # same low bytes: a narrower comparison would let it through
    with reverts("StaleProposal"):
        ms.execute_reward(pot.deployer, pid, batch)
    _set_epoch(pot, 0x12345678)
    ms.execute_reward(pot.deployer, pid, batch)
    assert ms.nonce_used(batch.nonce) and word() == 0
    assert tuple(ms.call("proposalState", pid)) == (0, False)


def test_unrecoverable_signature(pot):
    """v outside {27, 28}: ecrecover yields address(0), which OpenZeppelin's ECDSA refuses."""
    ms = pot.c.multisig
    batch = Settlement(pot.next_nonce())
    good = sign(pot, batch)
    with reverts("ECDSAInvalidSignature"):
        ms.execute_signed(pot.deployer, batch, [good[0][:64] + b"\x1d", good[1], good[2]])
    with reverts("ECDSAInvalidSignature"):  # r = 0
        ms.execute_signed(pot.deployer, batch, [b"\0" * 32 + good[0][32:], good[1], good[2]])


def test_multisig_views(pot):
    c, ms = pot.c, pot.c.multisig
    assert ms.call("orderBook") == c.orders.address
    assert ms.call("stakeRegistry") == c.stakes.address
    assert ms.call("challengeManager") == c.challenges.address
    assert ms.call("isMember", pot.members[0].address) and not ms.call("isMember", pot.users[0].address)
    assert bytes(ms.call("domainSeparator")) == eip712.domain_separator(ms.domain)
    _fields, name, version, chain_id, verifying, _, _ = ms.call("eip712Domain")
    assert (name, version, chain_id, verifying) == ("PoT RewardMultisig", "1", ms.domain.chain_id, ms.address)
    batch = settle_batch(pot, 3, [(pot.users[1].address, 5)], slashes=[Slash(3, pot.users[2].address, 1, pot.treasury)],
                         verdicts=[ChallengeVerdict(3, pot.users[3].address, True, ZERO)])
    struct_hash = bytes(ms.call("hashSettlement", batch.as_abi()))
    assert eip712.typed_digest(ms.domain, struct_hash) == ms.settlement_digest(batch) == batch.digest(ms.domain)


# ---------------------------------------------------------------- StakeRegistry

def test_committee_stake_calls(pot):
    st, u = pot.c.stakes, pot.users[0]
    _approve(pot, u)
    st.register(u, MINER, 500)
    S = st.address
    with action_reverts("ZeroAmount"):
        _act(pot, S, "lock", u.address, 0)
    with action_reverts("LockExceedsStake"):
        _act(pot, S, "lock", pot.users[1].address, 1)  # nothing staked
    _act(pot, S, "lock", u.address, 300)
    with action_reverts("ZeroAmount"):
        _act(pot, S, "unlock", u.address, 0)
    with action_reverts("UnlockExceedsLocked") as info:
        _act(pot, S, "unlock", u.address, 301)
    staker, amount, locked = decode_error_data(bytes(info.value.args_[0])).args_
    assert (to_checksum_address(staker), amount, locked) == (u.address, 301, 300)
    res = _act(pot, S, "unlock", u.address, 300)
    assert res.event("Unlocked")["locked"] == 0 and st.staker(u.address)["locked"] == 0
    # slashes inside a settlement never revert: a zero receiver or amount, or no stake, takes nothing
    oid, _ = place(pot, pot.users[2])
    # a slash naming no order is refused like an unknown order (the first one skipped the time check)
    b = settle_batch(pot, 0, [], slashes=[Slash(0, u.address, 1, pot.treasury)])
    with reverts("UnknownOrder"):
        pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    goto(pot, pot.c.orders.windows(oid)["release_end"])
    for slash in (Slash(oid, u.address, 1, ZERO), Slash(oid, u.address, 0, pot.treasury),
                  Slash(oid, pot.users[1].address, 1, pot.treasury)):
        b = settle_batch(pot, 0, [], slashes=[slash])
        res = pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
        assert [e.name for e in res.events if e.name.startswith("Slash")] == ["SlashSkipped"]
    assert st.staker(u.address)["stake"] == 500
    contract_balances_ok(pot, stakers=[u.address])


def test_stake_parameters(pot):
    st, S = pot.c.stakes, pot.c.stakes.address
    assert (st.call("MINER"), st.call("VALIDATOR"), st.call("VERIFIER"), st.call("AGGREGATOR")) == \
        (MINER, VALIDATOR, VERIFIER, AGGREGATOR) == (1, 2, 4, 8)
    assert st.call("token") == pot.c.token.address and st.call("multisig") == pot.c.multisig.address
    assert [st.call("minStake", r) for r in (1, 2, 4, 8)] == list(pot.params.min_stakes)
    assert st.required_stake(MINER | AGGREGATOR) == 1100 and st.required_stake(0) == 0
    with reverts("InvalidRoles"):  # minStake is per single role
        st.call("minStake", MINER | VALIDATOR)
    with action_reverts("InvalidRoles"):
        _act(pot, S, "setMinStake", 3, 1)
    with action_reverts("SafeCastOverflowedUintDowncast"):
        _act(pot, S, "setMinStake", MINER, U96)
    assert _act(pot, S, "setMinStake", MINER, 250).event("MinStakeChanged")["amount"] == 250
    assert st.call("minStake", MINER) == 250 and st.required_stake(MINER | VALIDATOR) == 350
    for period in (2**48, 2**48 - 1, 365 * 86_400 + 1):  # 2^48 - 1 made requestUnregister overflow
        with action_reverts("UnbondingPeriodTooLong"):
            _act(pot, S, "setUnbondingPeriod", period)
    # never down to where stake could leave before an order's settlement is due
    lifetime, grace = pot.c.orders.call("maxOrderLifetime"), pot.c.orders.call("settlementGrace")
    with action_reverts("ExposureOutlivesUnbonding"):
        _act(pot, S, "setUnbondingPeriod", lifetime + grace)
    _act(pot, S, "setUnbondingPeriod", lifetime + grace + 5)
    assert st.call("unbondingPeriod") == lifetime + grace + 5
    u = pot.users[0]
    _approve(pot, u)
    st.register(u, MINER, 250)
    end = st.request_unregister(u).event("UnregisterRequested")["unbondingEnd"]
    assert end - st.w3.eth.get_block("latest")["timestamp"] == lifetime + grace + 5  # the new period applies
    with reverts("Unbonding"):  # no re-registering while leaving
        st.register(u, VALIDATOR, 100)
    with reverts("SafeCastOverflowedUintDowncast"):
        st.register(pot.users[1], MINER, U96)



def test_unbonding_outlasts_orders_placed_under_longer_bounds(pot):
    """maxOrderLifetime lowered, then the unbonding period: refused while an order placed under
    the old bound may still be settled after a staker asking to leave now would be gone (it was
    accepted: the bound was checked against the current parameters only)."""
    ob, S = pot.c.orders, pot.c.stakes.address
    lifetime, grace = ob.call("maxOrderLifetime"), ob.call("settlementGrace")
    short = lifetime // 7
    oid, _ = place(pot, pot.users[0], d=short)  # 7 windows: the whole lifetime
    _act(pot, ob.address, "setMaxOrderLifetime", short)
    period = short + grace + 1  # above the new bound
    with action_reverts("OrdersOutliveUnbonding") as info:
        _act(pot, S, "setUnbondingPeriod", period)
    latest = ob.call("latestReclaimAt")
    assert decode_error_data(bytes(info.value.args_[0])).args_[0] == latest >= ob.call("reclaimableAt", oid)
    goto(pot, latest - period + 1)  # a staker leaving now stays past `latest`
    _act(pot, S, "setUnbondingPeriod", period)
    assert pot.c.stakes.call("unbondingPeriod") == period


# ---------------------------------------------------------------- OrderBook

def test_release_test_data_not_open(pot):
    client = pot.users[0]
    oid, _ = place(pot, client, reward=700)
    goto(pot, pot.c.orders.windows(oid)["train_end"])
    b = settle_batch(pot, oid, [(client.address, 700)], winner=ZERO)  # a cancel with no claims, at trainEnd
    pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    goto(pot, pot.c.orders.windows(oid)["reveal_end"])
    with reverts("NotOpen") as info:
        pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)
    assert info.value.args_ == (oid, 2)  # Status.Settled


def test_order_book_views_and_parameters(pot):
    ob = pot.c.orders
    assert ob.call("token") == pot.c.token.address and ob.call("multisig") == pot.c.multisig.address
    assert ob.call("minRevealDuration") == pot.params.min_reveal_duration
    with reverts("UnknownOrder"):
        ob.windows(1)
    with reverts("UnknownOrder"):
        ob.call("reclaimableAt", 1)
    res = _act(pot, ob.address, "setMinRevealDuration", 5)
    assert res.event("MinRevealDurationChanged")["minRevealDuration"] == 5 and ob.call("minRevealDuration") == 5
    oid, _ = place(pot, pot.users[0], d=5)
    assert ob.get_order(oid)["reveal_duration"] == 5


# ---------------------------------------------------------------- ChallengeManager

def test_challenge_late_windows_and_stake_parameter(pot):
    ch, C = pot.c.challenges, pot.c.challenges.address
    assert ch.call("token") == pot.c.token.address and ch.call("orderBook") == pot.c.orders.address
    assert ch.call("stakeRegistry") == pot.c.stakes.address and ch.call("multisig") == pot.c.multisig.address
    assert ch.call("challengeStake") == pot.params.challenge_stake
    with reverts("OnlyMultisig"):
        ch.transact(pot.users[0], "setChallengeStake", 0)
    with action_reverts("SafeCastOverflowedUintDowncast"):
        _act(pot, C, "setChallengeStake", U96)
    with action_reverts("ZeroChallengeStake"):  # a free challenge costs nothing to lose
        _act(pot, C, "setChallengeStake", 0)
    oid, ver, w = _challenge_setup(pot)
    ver2, late = pot.users[3], pot.users[5]
    for v in (ver2, late):
        _approve(pot, v)
        pot.c.stakes.register(v, VERIFIER, 100)
    with reverts("UnknownOrder"):
        ch.commit_challenge(ver, 99, b"\x01" * 32)
    with reverts("NoChallenge"):  # never committed
        ch.reclaim_stake(ver, oid)
    goto(pot, w["challenge_end"] - pot.c.orders.get_order(oid)["challenge_duration"])
    vid = keccak(b"v")
    ch.commit_challenge(ver, oid, challenge_commitment(oid, ver.address, vid, SALT))  # stakes 40
    _act(pot, C, "setChallengeStake", 1)
    assert ch.call("challengeStake") == 1
    assert ch.commit_challenge(ver2, oid, b"\x02" * 32).event("ChallengeCommitted")["stake"] == 1
    goto(pot, w["challenge_end"])
    with reverts("OutsideWindow"):  # the commit window is over
        ch.commit_challenge(late, oid, b"\x03" * 32)
    goto(pot, w["challenge_reveal_end"])
    with reverts("OutsideWindow"):  # and so is the reveal window
        ch.reveal_challenge(ver, oid, vid, SALT)
    # verdicts: an unrevealed challenge names no validator -> all of it to the treasury;
    # an upheld one returns the stake
    t_before, v2_before = pot.c.token.balance_of(pot.treasury), pot.c.token.balance_of(ver2.address)
    b = settle_batch(pot, 0, [], verdicts=[ChallengeVerdict(oid, ver.address, False, ZERO),
                                           ChallengeVerdict(oid, ver2.address, True, ZERO)])
    res = pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert len([e for e in res.events if e.name == "ChallengeResolved"]) == 2
    assert pot.c.token.balance_of(pot.treasury) == t_before + 40
    assert pot.c.token.balance_of(ver2.address) == v2_before + 1
    assert ch.get_challenge(oid, ver2.address)["status"] == 3
    contract_balances_ok(pot, orders=[oid], stakers=[ver.address, ver2.address, late.address],
                         challenges=[(oid, ver.address), (oid, ver2.address)])


def test_resolve_zero_treasury(pot):
    """RewardMultisig never passes a zero treasury (its constructor and setTreasury refuse one), so
    this check is reached only through a ChallengeManager whose multisig is a plain account."""
    ms_eoa = pot.users[6]
    addr = deploy_contract(pot, "ChallengeManager", pot.c.token.address, pot.c.orders.address,
                           pot.c.stakes.address, ms_eoa.address, 40)
    ch = ChallengeManagerClient(pot.w3, addr, {addr: "ChallengeManager"})
    oid, ver, w = _challenge_setup(pot)
    pot.c.token.ensure_allowance(ver, addr, 2**96 - 1)
    goto(pot, w["challenge_end"] - 10)
    ch.commit_challenge(ver, oid, b"\x01" * 32)
    with reverts("TooEarly"):  # no verdict before the challenge reveals end
        ch.transact(ms_eoa, "resolve", oid, ver.address, False, ZERO, pot.treasury)
    goto(pot, w["challenge_reveal_end"])
    with reverts("ZeroAddress"):
        ch.transact(ms_eoa, "resolve", oid, ver.address, False, ZERO, ZERO)
    before = pot.c.token.balance_of(pot.treasury)
    ch.transact(ms_eoa, "resolve", oid, ver.address, False, ZERO, pot.treasury)
    assert pot.c.token.balance_of(pot.treasury) == before + 40 and pot.c.token.balance_of(addr) == 0


# ---------------------------------------------------------------- PoTToken (ERC-20 + EIP-2612)

def _permit(pot, owner: Account, spender: str, value: int, nonce: int, deadline: int) -> tuple:
    tok = pot.c.token
    msg = encode_typed_data(full_message={
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                             {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                             {"name": "deadline", "type": "uint256"}]},
        "primaryType": "Permit",
        "domain": {"name": "Proof of Training", "version": "1", "chainId": pot.w3.eth.chain_id,
                   "verifyingContract": tok.address},
        "message": {"owner": owner.address, "spender": spender, "value": value, "nonce": nonce,
                    "deadline": deadline}})
    sig = Account.sign_message(msg, owner.key)
    return (owner.address, to_checksum_address(spender), value, deadline, sig.v, sig.r.to_bytes(32, "big"),
            sig.s.to_bytes(32, "big"))


def test_token_metadata_permit_and_transfer_from(pot):
    tok = pot.c.token
    assert (tok.call("name"), tok.call("symbol"), tok.call("decimals")) == ("Proof of Training", "POT", 18)
    assert tok.call("totalSupply") == pot.params.token_supply
    owner, spender, to = pot.users[0], pot.users[1], pot.users[2].address
    sep = bytes(tok.call("DOMAIN_SEPARATOR"))
    assert sep == eip712.domain_separator(eip712.Domain("Proof of Training", "1", pot.w3.eth.chain_id, tok.address))
    deadline = pot.w3.eth.get_block("latest")["timestamp"] + 1000
    assert tok.call("nonces", owner.address) == 0
    args = _permit(pot, owner.account, spender.address, 300, 0, deadline)
    tok.transact(spender, "permit", *args)  # anyone may submit the owner's permit
    assert tok.allowance(owner.address, spender.address) == 300 and tok.call("nonces", owner.address) == 1
    with reverts("ERC2612InvalidSigner"):  # replay: the nonce moved on
        tok.transact(spender, "permit", *args)
    with reverts("ERC2612ExpiredSignature"):
        tok.transact(spender, "permit", *_permit(pot, owner.account, spender.address, 1, 1, deadline - 2000))
    before = tok.balance_of(to)
    tok.transact(spender, "transferFrom", owner.address, to, 200)
    assert tok.balance_of(to) == before + 200 and tok.allowance(owner.address, spender.address) == 100
    with reverts("ERC20InsufficientAllowance"):
        tok.transact(spender, "transferFrom", owner.address, to, 101)
