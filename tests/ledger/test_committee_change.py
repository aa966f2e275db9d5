"""Committee changes in the ledger (docs/COMMITTEE.md §"Deciding a change"): the vote op, the
decision at k votes and the settlement pause, the chain's confirmation, voiding at the deadline,
the switch to the new committee and the re-issue of the old epoch's settlements."""

from __future__ import annotations

import pytest
from ledger_world import (COMMITTEE, CONFIG, MINERS, MULTISIG, VALIDATORS, VERIFIER_, VREVEAL_END, Actor,
                          happy_ops)

from pot.ledger import Ledger
from pot.ledger.ledger import FINAL_REASONS
from pot.pbft.crypto import public_key
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.eip712 import Domain
from pot.protocol.epoch import Joining, MemberChange, make_change, member_vote
from pot.protocol.types import Reason

MSG, MS = CONFIG.message_domain, CONFIG.multisig_domain
KEYS = tuple(public_key(a.key) for a in COMMITTEE)
EPS = tuple(f"127.0.0.1:{7000 + i}" for i in range(4))
SEATED = CONFIG.__class__(**{**CONFIG.__dict__, "member_keys": KEYS, "member_endpoints": EPS})
NEW = Actor("fresh-member")
JOIN = Joining(public_key(NEW.key), "10.0.0.9:7009", "http://10.0.0.9:8009")
T_VOTE = 5000
DEADLINE = T_VOTE + 600


def replace_change(led: Ledger, deadline: int = DEADLINE, join: Joining = JOIN):
    """Member 3 is replaced by NEW."""
    return make_change(led.committee(), "replace", [COMMITTEE[3].addr, join.account], deadline=deadline), (join,)


def vote(led: Ledger, who: Actor, change_joins, t: int = T_VOTE) -> T.Result:
    change, joins = change_joins
    return led.apply(member_vote(change, joins, who.key, message_domain=MSG, multisig_domain=MS), t)


def ledger(**kw) -> Ledger:
    led = Ledger(SEATED, **kw)
    for a in COMMITTEE:
        assert led.apply(T.StakeChanged(a.addr, T.AGGREGATOR, 1000), 0).ok
    return led


def decided(led: Ledger, cj=None, t: int = T_VOTE) -> tuple:
    cj = cj or replace_change(led)
    for a in COMMITTEE[:3]:
        res = vote(led, a, cj, t)
        assert res.ok, res
    assert "decided" in res.text
    return cj


def epoch_changed(members, k: int, epoch: int = 2) -> T.EpochChanged:
    return T.EpochChanged(epoch, b"".join(bytes.fromhex(m[2:]) for m in members), k)


def test_votes_only_from_current_members_for_the_current_epoch_and_a_valid_change():
    led = ledger()
    cj = replace_change(led)
    outsider = vote(led, NEW, cj)
    assert outsider.reason_enum == Reason.NOT_AUTHORIZED and outsider.reason_enum in FINAL_REASONS
    change, joins = cj
    wrong_epoch = (change.__class__(2, change.removed, change.added, change.threshold, change.deadline), joins)
    assert vote(led, COMMITTEE[0], wrong_epoch).reason_enum == Reason.INVALID
    # next_committee refuses it: removing a non-member
    bogus = (change.__class__(1, (NEW.addr,), (), 3, DEADLINE), ())
    res = vote(led, COMMITTEE[0], bogus)
    assert res.reason_enum == Reason.INVALID and "not a member" in res.text
    assert vote(led, COMMITTEE[0], replace_change(led, deadline=T_VOTE)).reason_enum == Reason.WRONG_WINDOW
    assert vote(led, COMMITTEE[0], replace_change(led, deadline=T_VOTE + 10**6)).reason_enum == Reason.INVALID
    # the action signature must be the voter's, for this multisig
    other = Domain.multisig(CONFIG.chain_id, "0x" + "cd" * 20)
    res = led.apply(member_vote(*cj, COMMITTEE[0].key, message_domain=MSG, multisig_domain=other), T_VOTE)
    assert res.reason_enum == Reason.BAD_SIGNATURE
    # the joining key must be the added account's
    forged = (change, (Joining(public_key(COMMITTEE[0].key), "10.0.0.9:7009", "http://10.0.0.9:8009"),))
    with pytest.raises(ValueError):
        member_vote(*forged, COMMITTEE[0].key, message_domain=MSG, multisig_domain=MS)
    assert led.committee_changes() == []
    assert vote(led, COMMITTEE[0], cj).ok
    assert [c["voters"] for c in led.committee_changes()] == [[COMMITTEE[0].addr]]


def test_duplicate_votes_and_differing_changes_counted_apart():
    led = ledger()
    a = replace_change(led)
    b = replace_change(led, deadline=DEADLINE + 1)  # another deadline: another action, another change
    assert vote(led, COMMITTEE[0], a).ok
    assert vote(led, COMMITTEE[0], a).reason_enum == Reason.REPLAY
    res = vote(led, COMMITTEE[0], b)
    assert res.reason_enum == Reason.DUPLICATE and "one open vote" in res.text
    assert vote(led, COMMITTEE[1], b).ok
    # the same change with another endpoint for the new member is refused, not counted
    moved = (a[0], (Joining(JOIN.public_key, "10.0.0.10:7009", JOIN.api_url),))
    assert vote(led, COMMITTEE[2], moved).reason_enum == Reason.INVALID
    # ... and so is one with another API URL: workers follow the committee to the URL decided
    elsewhere = (a[0], (Joining(JOIN.public_key, JOIN.endpoint, "https://elsewhere.example"),))
    assert vote(led, COMMITTEE[2], elsewhere).reason_enum == Reason.INVALID
    counts = {c["deadline"]: (c["status"], len(c["voters"])) for c in led.committee_changes()}
    assert counts == {DEADLINE: ("voting", 1), DEADLINE + 1: ("voting", 1)}
    assert vote(led, COMMITTEE[2], a).ok
    assert {c["deadline"]: len(c["voters"]) for c in led.committee_changes()} == {DEADLINE: 2, DEADLINE + 1: 1}
    assert led.pending_committee() is None


def settling_ledger() -> Ledger:
    """Order 1 through its cycle, up to (not including) the Tick that settles it."""
    led = Ledger(SEATED)
    stakers = [(m, T.MINER) for m in MINERS] + [(v, T.VALIDATOR) for v in VALIDATORS] + [(VERIFIER_, T.VERIFIER)]
    for who, role in stakers + [(a, T.AGGREGATOR) for a in COMMITTEE]:
        assert led.apply(T.StakeChanged(who.addr, role, 1000), 0).ok
    for t, op in happy_ops():
        assert led.apply(op, t).ok
    return led


def test_decision_pauses_settling_until_void_at_the_deadline():
    led = settling_ledger()
    after = VREVEAL_END + 100  # the order is due
    cj = decided(led, replace_change(led, deadline=after + 50), after)
    [c] = led.committee_changes()
    assert c["status"] == "decided" and len(c["signatures"]) == 3
    # k action signatures that recover to the voters, over the on-chain action
    from pot.protocol.eip712 import recover_digest
    digest = cj[0].action(MULTISIG).digest(MS)
    assert {"0x" + recover_digest(digest, s).hex() for s in c["signatures"]} == {v.lower() for v in c["voters"]}
    assert vote(led, COMMITTEE[3], cj, after).reason_enum == Reason.NOT_PENDING
    res = led.apply(T.Tick(), after)
    assert res.ok and not res.nonces and "paused" in res.text
    assert led.pending_settlements() == []
    # the deadline passes unconfirmed: the change is void and settling resumes in the same tick
    res = led.apply(T.Tick(), after + 51)
    assert res.nonces == (1,), res
    assert led.pending_settlements()[0]["settlement"].epoch == 1
    assert [c["status"] for c in led.committee_changes()] == ["void"]
    assert led.pending_committee() is None


def test_undecided_changes_lapse_and_their_voters_may_vote_again():
    led = ledger()
    a = replace_change(led)
    assert vote(led, COMMITTEE[0], a).ok
    assert led.apply(T.Tick(), DEADLINE + 1).ok
    assert led.committee_changes() == []
    b = replace_change(led, deadline=DEADLINE + 500)
    assert vote(led, COMMITTEE[0], b, t=DEADLINE + 2).ok


def test_confirmation_needs_the_chain_to_show_the_decided_committee():
    led = ledger()
    cj = decided(led)
    nxt = [COMMITTEE[0].addr, COMMITTEE[1].addr, COMMITTEE[2].addr, NEW.addr]
    wrong = led.apply(epoch_changed(nxt[:3] + [COMMITTEE[3].addr], 3), T_VOTE + 1)
    assert wrong.reason_enum == Reason.INVALID and led.pending_committee() is None
    assert led.apply(epoch_changed(nxt, 2), T_VOTE + 1).reason_enum == Reason.INVALID  # k differs
    assert led.apply(epoch_changed(nxt, 3, epoch=3), T_VOTE + 1).reason_enum == Reason.INVALID
    # the chain's order (swap-and-pop) does not matter; the ledger keeps PBFT order
    res = led.apply(epoch_changed(list(reversed(nxt)), 3), T_VOTE + 1)
    assert res.ok, res
    pending = led.pending_committee()
    assert pending.epoch == 2 and pending.members == tuple(nxt) and pending.threshold == 3
    assert pending.keys == KEYS[:3] + (JOIN.public_key,) and pending.endpoints == EPS[:3] + (JOIN.endpoint,)
    assert led.committee().epoch == 1  # nothing switches before PBFT's boundary
    assert led.apply(epoch_changed(nxt, 3), T_VOTE + 2).reason_enum == Reason.DUPLICATE
    # confirmed changes never void: still paused after the deadline, until the switch
    assert "paused" in led.apply(T.Tick(), DEADLINE + 1).text
    assert cj


def test_chain_confirms_a_void_change_late():
    """The chain executed it by block time before the deadline; its event reached the ledger after."""
    led = ledger()
    decided(led)
    assert led.apply(T.Tick(), DEADLINE + 1).ok
    nxt = [COMMITTEE[0].addr, COMMITTEE[1].addr, COMMITTEE[2].addr, NEW.addr]
    assert led.apply(epoch_changed(nxt, 3), DEADLINE + 2).ok
    assert led.pending_committee().members == tuple(nxt)


def test_epoch_changed_enters_only_attested():
    from dataclasses import replace
    led = Ledger(replace(SEATED, attested_chain_events=True))
    ev = epoch_changed([a.addr for a in COMMITTEE], 3)
    assert led.apply(ev, 1).reason_enum == Reason.NOT_AUTHORIZED


def test_activation_switches_committee_and_reissues_old_settlements():
    led = settling_ledger()
    due = VREVEAL_END + 100
    res = led.apply(T.Tick(), due)
    assert res.nonces == (1,)
    old = led.pending_settlements()[0]
    for a in COMMITTEE[:2]:
        sig = old["settlement"].sign(MS, a.key)
        assert led.apply(T.SettlementSignature(1, a.addr, sig), due).ok
    decided(led, replace_change(led, deadline=due + 600), due)
    nxt = [COMMITTEE[0].addr, COMMITTEE[1].addr, COMMITTEE[2].addr, NEW.addr]
    assert led.apply(epoch_changed(nxt, 3), due + 2).ok
    # the member who leaves attested a chain event nobody else has yet: its vote goes with it
    ref = b"\x07" * 32
    stake = codec.encode(T.StakeChanged(NEW.addr, T.AGGREGATOR, 1000))
    assert led.apply(T.ChainAttestation(COMMITTEE[3].addr, ref, stake).sign(MSG, COMMITTEE[3].key), due + 2).ok
    assert led.chain_event(ref)["attesters"] == [COMMITTEE[3].addr]
    before = led.digest()
    led.activate_committee()
    assert led.chain_event(ref) == {"applied": False, "attesters": []}
    assert led.digest() != before  # the switch is state: the digest covers it
    assert led.config.epoch == 2 and led.config.committee == tuple(nxt) and led.committee().keys[3] == JOIN.public_key
    assert led.committee().api_urls == ("", "", "", JOIN.api_url)  # the genesis URLs were not configured
    [st] = led.pending_settlements()
    assert st["nonce"] == 1 and st["settlement"].epoch == 2 and st["signers"] == []
    assert st["settlement"].deadline == led.time + CONFIG.params.settlement_ttl
    assert st["settlement"].orders == old["settlement"].orders
    assert led.committee_changes() == [] and led.pending_committee() is None
    # the removed member signs no more; the new one does
    sig3 = st["settlement"].sign(MS, COMMITTEE[3].key)
    assert led.apply(T.SettlementSignature(1, COMMITTEE[3].addr, sig3), due + 3).reason_enum == Reason.NOT_AUTHORIZED
    sig = st["settlement"].sign(MS, NEW.key)
    assert led.apply(T.SettlementSignature(1, NEW.addr, sig), due + 3).ok
    # a vote of the old epoch counts no more; the new epoch's votes are the new members'
    stale = (MemberChange(1, (COMMITTEE[2].addr,), (), 2, due + 600), ())
    assert vote(led, COMMITTEE[0], stale, due + 3).reason_enum == Reason.INVALID
    assert vote(led, COMMITTEE[3], (MemberChange(2, (COMMITTEE[2].addr,), (), 2, due + 600), ()),
                due + 3).reason_enum == Reason.NOT_AUTHORIZED
    assert led.digest() == led.full_digest()


def test_two_ledgers_applying_the_same_ops_agree_and_persist(tmp_path):
    """Digests equal across replicas at every step; the committee survives a reopen and a snapshot."""
    a, b = ledger(path=str(tmp_path / "a.db")), ledger()
    cj = replace_change(a)
    nxt = [COMMITTEE[0].addr, COMMITTEE[1].addr, COMMITTEE[2].addr, NEW.addr]
    ops = [member_vote(*cj, m.key, message_domain=MSG, multisig_domain=MS) for m in COMMITTEE[:3]]
    ops += [epoch_changed(nxt, 3), T.Tick()]
    digests = set()
    for i, op in enumerate(ops):
        ra, rb = a.apply(op, T_VOTE + i), b.apply(op, T_VOTE + i)
        assert ra == rb and ra.ok, ra
        assert a.digest() == b.digest()
        digests.add(a.digest())
    assert len(digests) == len(ops)
    a.activate_committee()
    b.activate_committee()
    assert a.digest() == b.digest() == a.full_digest()
    a.close()
    again = Ledger(CONFIG, str(tmp_path / "a.db"))  # a config naming the genesis committee still opens it
    assert again.digest() == b.digest() and again.config.committee == tuple(nxt)
    assert again.committee().api_urls[3] == JOIN.api_url
    joined = Ledger(CONFIG)  # a new member restores a peer's snapshot, whatever committee it was told
    joined.restore_snapshot(b.snapshot())
    assert joined.digest() == b.digest() and joined.committee() == b.committee()
