"""Chain events through the replicated committee: a ChainAttestation counts once per member, an
event applies once f+1 members attested the identical (ref, op), and never otherwise."""

from dataclasses import replace

from ledger_world import COMMITTEE, CONFIG, DOMAIN, MINERS, T0, order

from pot.ledger import Ledger
from pot.protocol import (ChainAttestation, OrderPlaced, Reason, SettlementExecuted, StakeChanged, Tick,
                          ValidationCommit, encode)
from pot.protocol.types import MINER

ATTESTED = replace(CONFIG, attested_chain_events=True)
REF = b"\x07" * 32


def attest(member, op, ref=REF, key=None):
    return ChainAttestation(member.addr, ref, encode(op)).sign(DOMAIN, key or member.key)


def test_f_attestations_are_not_enough_f_plus_1_apply_once():
    led = Ledger(ATTESTED)
    assert CONFIG.f == 1 and ATTESTED.attest_quorum == 2
    op = OrderPlaced(order(1))
    r = led.apply(attest(COMMITTEE[0], op), T0)
    assert r.ok and "1/2" in r.text and led.order(1) is None
    r = led.apply(attest(COMMITTEE[1], op), T0)
    assert r.ok and "applied" in r.text and led.order(1) == op.order
    # the third and fourth members are late: the event is decided, nothing changes
    seq = led.seq
    for m in COMMITTEE[2:]:
        r = led.apply(attest(m, op), T0)
        assert r.reason_enum is Reason.DUPLICATE
    assert led.seq == seq and led.chain_event(REF) == {"applied": True, "attesters": []}
    assert led._chain_open == {}, "a decided event still counts against its attesters' bound"


def test_a_forged_event_by_one_replica_never_applies():
    led = Ledger(ATTESTED)
    real = StakeChanged(MINERS[0].addr, MINER, 500)
    forged = StakeChanged(MINERS[0].addr, MINER, 10**30)   # the liar inflates a stake
    assert led.apply(attest(COMMITTEE[3], forged), T0).ok
    assert led.node_info(MINERS[0].addr) is None
    # honest members attest what really happened at that position: theirs wins, the forgery stays 1 vote
    assert led.apply(attest(COMMITTEE[0], real), T0).ok
    assert led.node_info(MINERS[0].addr) is None
    assert "applied" in led.apply(attest(COMMITTEE[1], real), T0).text
    assert led.node_info(MINERS[0].addr)["stake"] == 500
    # an invented event at a position nobody else saw stays pending forever
    invented = OrderPlaced(order(9))
    assert led.apply(attest(COMMITTEE[3], invented, ref=b"\x99" * 32), T0).ok
    assert led.order(9) is None


def test_duplicates_non_members_bad_signatures_and_non_events_are_refused():
    led = Ledger(ATTESTED)
    op = OrderPlaced(order(1))
    a = attest(COMMITTEE[0], op)
    assert led.apply(a, T0).ok
    seq = led.seq
    assert led.apply(a, T0).reason_enum is Reason.DUPLICATE               # the same message again
    other = OrderPlaced(order(2))
    assert led.apply(attest(COMMITTEE[0], other), T0).reason_enum is Reason.DUPLICATE  # same ref, other op
    assert led.apply(attest(MINERS[0], op), T0).reason_enum is Reason.NOT_AUTHORIZED
    wrong_key = attest(COMMITTEE[1], op, key=COMMITTEE[2].key)
    assert led.apply(wrong_key, T0).reason_enum is Reason.BAD_SIGNATURE
    vc = ValidationCommit(1, MINERS[0].addr, b"\x01" * 32, b"\x02" * 32)
    for raw, why in ((encode(vc), Reason.INVALID), (b"\x30\x01", Reason.MALFORMED)):
        bad = ChainAttestation(COMMITTEE[1].addr, REF, raw).sign(DOMAIN, COMMITTEE[1].key)
        assert led.apply(bad, T0).reason_enum is why
    assert led.apply(attest(COMMITTEE[1], Tick()), T0).reason_enum is Reason.INVALID
    assert led.seq == seq and led.order(1) is None


def test_bare_chain_events_are_refused_when_attestation_is_on():
    led = Ledger(ATTESTED)
    r = led.apply(OrderPlaced(order(1)), T0)
    assert r.reason_enum is Reason.NOT_AUTHORIZED and "ChainAttestations" in r.text
    assert Ledger(CONFIG).apply(OrderPlaced(order(1)), T0).ok   # a trusted single process still can


def test_a_refused_event_is_still_decided_once_and_replays_the_same(tmp_path):
    path = str(tmp_path / "l.sqlite")
    led = Ledger(ATTESTED, path)
    op = OrderPlaced(order(1))
    for m in COMMITTEE[:2]:
        led.apply(attest(m, op), T0)
    dup_ref = b"\x08" * 32   # the same order reported again at another position
    led.apply(attest(COMMITTEE[0], op, ref=dup_ref), T0)
    r = led.apply(attest(COMMITTEE[1], op, ref=dup_ref), T0)
    assert r.ok and "refused by the ledger (DUPLICATE" in r.text
    assert led.apply(Tick(at=T0 + 1), T0 + 1).ok
    digest = led.digest()
    led.close()
    again = Ledger(ATTESTED, path)
    assert again.digest() == digest


def test_attested_and_trusted_ledgers_are_different_ledgers():
    # schema 2 names the mode in every configuration: two ledgers that take chain events
    # differently never share a digest (or a database)
    assert CONFIG.as_json()["attestedChainEvents"] is False
    assert Ledger(CONFIG).digest() != Ledger(ATTESTED).digest()
    assert encode(Tick()) != encode(Tick(at=1))


def test_chain_event_query():
    led = Ledger(ATTESTED)
    op = OrderPlaced(order(1))
    assert led.chain_event(REF) == {"applied": False, "attesters": []}
    led.apply(attest(COMMITTEE[2], op), T0)
    assert led.chain_event(REF) == {"applied": False, "attesters": [COMMITTEE[2].addr]}
    led.apply(attest(COMMITTEE[0], op), T0)
    assert led.chain_event(REF) == {"applied": True, "attesters": []}


def test_replayed_attestations_of_settled_orders_cannot_fill_a_members_bound():
    """Attack: anyone who saw a member's old attestations replays them once their orders settled
    and left the working state. Each replay opened a vote nobody else would ever join and counted
    against the member's bound of open attestations; 4,096 of them and the member could attest
    nothing new, f+1 members so silenced and the ledger took no chain event at all."""
    from ledger_world import CREVEAL_END

    led = Ledger(ATTESTED)
    old = []
    for oid in (1, 2):
        old.append(attest(COMMITTEE[0], OrderPlaced(order(oid)), ref=bytes([oid]) * 32))
        assert "1/2" in led.apply(old[-1], T0).text
        assert "applied" in led.apply(attest(COMMITTEE[1], OrderPlaced(order(oid)), ref=bytes([oid]) * 32), T0).text
    # nobody claims them: they finalize (refunds), settle and leave for the archive
    assert led.apply(Tick(at=CREVEAL_END + 1000), CREVEAL_END + 1000).ok
    [p] = led.pending_settlements()
    done = SettlementExecuted(p["nonce"], tuple(p["orderIds"]), b"\x44" * 32)
    executed = [attest(m, done, ref=b"\x55" * 32) for m in COMMITTEE[:2]]
    t = CREVEAL_END + 1001
    for a in executed:
        assert led.apply(a, t).ok
    assert led.order_cycle_data(1)["status"] != "open" and led._chain_open == {}
    # the replays: refused, and the member's bound untouched
    for a in old + executed:
        r = led.apply(a, t)
        assert not r.ok and r.reason_enum in (Reason.ORDER_CLOSED, Reason.NOT_PENDING), r.text
    assert led._chain_open == {}, "a replayed attestation counts against its member's bound"
