"""Hypothesis over random op sequences: conservation, windows, determinism, snapshots."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_world import (CLIENT, COMMITTEE, CONFIG, CREVEAL_END, DOMAIN, MINERS, T0, T3, VALIDATORS, VERIFIER_,
                          commit, happy_ops, mid, order, reveal, staked_ledger, vcommit, vreveal)

from pot.ledger import Ledger
from pot.protocol.types import Reason
from pot.protocol import (CancelRequest, ChallengeCommitted, ChallengeRevealed, ClaimCommit, ClaimReveal, Phase,
                          Signed, StakeChanged, TestDataReleased, Tick, ValidationCommit, ValidationReveal,
                          VerifyResult, phase, vid)

EXPECTED_PHASE = {ClaimCommit: Phase.TRAINING, ClaimReveal: Phase.MODEL_REVEAL,
                  ValidationCommit: Phase.VALIDATION, ValidationReveal: Phase.VALIDATION_REVEAL}


def _pool():
    ops = [op for _t, op in happy_ops(1) + happy_ops(2, scores=(700_000, 700_000))]
    ops += [commit(MINERS[2], 1, mid(9)), reveal(MINERS[2], 1, mid(9)), commit(MINERS[0], 1, mid(8)),
            vcommit(VALIDATORS[2], 1, mid(0), 1), vreveal(VALIDATORS[2], 1, mid(0), 1),
            vcommit(VALIDATORS[2], 2, mid(1), 5), vreveal(VALIDATORS[2], 2, mid(1), 5, stake=10**6),
            CancelRequest(1, CLIENT.addr).sign(DOMAIN, CLIENT.key), CancelRequest(3, CLIENT.addr).sign(DOMAIN, CLIENT.key),
            TestDataReleased(2, "late", T3 + 10), StakeChanged(MINERS[1].addr, 0, 0),
            ChallengeCommitted(1, VERIFIER_.addr, b"\x01" * 32, 10),
            ChallengeRevealed(1, VERIFIER_.addr, vid(1, VALIDATORS[0].addr, mid(0))),
            ChallengeCommitted(2, CLIENT.addr, b"\x02" * 32, 10), ChallengeRevealed(2, CLIENT.addr, b"\x03" * 32)]
    ops += [VerifyResult(o, mid(i), s, a.addr).sign(DOMAIN, a.key)
            for o in (1, 2) for i in (0, 1, 9) for s in (900_000, 700_000) for a in COMMITTEE]
    ops += [Tick()] * 6
    from pot.protocol import OrderPlaced
    ops += [OrderPlaced(order(3, reward=12345))]
    return ops


POOL = _pool()
steps = st.lists(st.tuples(st.integers(0, len(POOL) - 1), st.integers(0, 40)), min_size=5, max_size=120)


def drive(seq):
    led = staked_ledger()
    t = T0 - 5
    log = []
    for i, dt in seq:
        t += dt
        op = POOL[i]
        r = led.apply(op, t)
        if r.ok:
            log.append((t, op))
    # run the clock out so every order finalizes (or waits for PoT.Verify)
    for extra in (CREVEAL_END + 100, CREVEAL_END + 200):
        if t < extra:
            t = extra
            assert led.apply(Tick(), t).ok
            log.append((t, Tick()))
    return led, log


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_random_histories(seq):
    led, log = drive(seq)
    # 1. no participant message was accepted outside its window
    for t, op in log:
        if isinstance(op, Signed) and type(op.message) in EXPECTED_PHASE:
            t3 = led.order_state(op.message.order_id).row.t3
            assert phase(led.order(op.message.order_id), t3, t) is EXPECTED_PHASE[type(op.message)]
    # 2. every settled order pays exactly its escrow, and each order settles once
    seen = set()
    for nonce in led.settlement_nonces():
        s = led.settlement(nonce)
        for o in s.orders:
            assert o.total(len(s.members)) == led.order(o.order_id).reward
            assert o.order_id not in seen
            seen.add(o.order_id)
    # 3. replaying the accepted ops from scratch gives the same digest
    again = staked_ledger()
    for t, op in log:
        assert again.apply(op, t).ok
    assert again.digest() == led.digest()
    # 4. a snapshot restored elsewhere gives the same digest and the same answers
    other = Ledger.restore(led.snapshot(), CONFIG)
    assert other.digest() == led.digest()
    assert other.pending_verifications() == led.pending_verifications()
    assert [o.order_id for o in other.fetch_orders(now=T0)] == [o.order_id for o in led.fetch_orders(now=T0)]


SCRIPT = sorted(happy_ops(1) + happy_ops(2, scores=(700_000, 700_000))
                + [(T3 + 2, vcommit(VALIDATORS[2], 1, mid(0), 1)), (T3 + 52, vreveal(VALIDATORS[2], 1, mid(0), 1))],
                key=lambda x: x[0])
extras = st.lists(st.tuples(st.integers(0, len(POOL) - 1), st.integers(T0 - 5, CREVEAL_END + 60)), max_size=80)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extras, st.sets(st.integers(0, len(SCRIPT) - 1), max_size=4))
def test_random_interleavings_of_a_full_cycle(extra, dropped):
    """The honest script (with one disputed model) plus random noise and dropped steps."""
    timed = [(t, op) for k, (t, op) in enumerate(SCRIPT) if k not in dropped] + [(t, POOL[i]) for i, t in extra]
    timed.sort(key=lambda x: x[0])
    led = staked_ledger()
    log = []
    for t, op in timed + [(CREVEAL_END + 100, Tick())]:
        if led.apply(op, t).ok:
            log.append((t, op))
    for p in led.pending_verifications():   # the committee recomputes, then finalization goes on
        for a in COMMITTEE[:3]:
            op = VerifyResult(p["orderId"], p["mid"], 900_000, a.addr).sign(DOMAIN, a.key)
            res = led.apply(op, CREVEAL_END + 101)
            if res.reason_enum is Reason.REPLAY:
                continue   # the random noise already delivered this very vote (POOL holds them all)
            assert res.ok, res.text
            log.append((CREVEAL_END + 101, op))
    led.apply(Tick(), CREVEAL_END + 102)
    log.append((CREVEAL_END + 102, Tick()))
    assert led.pending_verifications() == []
    for nonce in led.settlement_nonces():
        s = led.settlement(nonce)
        for o in s.orders:
            assert o.total(len(s.members)) == led.order(o.order_id).reward
    for t, op in log:
        if isinstance(op, Signed) and type(op.message) in EXPECTED_PHASE:
            t3 = led.order_state(op.message.order_id).row.t3
            assert phase(led.order(op.message.order_id), t3, t) is EXPECTED_PHASE[type(op.message)]
    again = staked_ledger()
    for t, op in log:
        assert again.apply(op, t).ok
    assert again.digest() == led.digest() == Ledger.restore(led.snapshot(), CONFIG).digest()
