"""``Ledger.precheck`` runs apply's own rules on a copy-on-write view: it never changes the
state, it answers what apply answers, and its final refusals are ones apply gives at any later
time (the API refuses those before consensus)."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_world import CONFIG, CREVEAL_END, DOMAIN, MINERS, T0, TRAIN_END, commit, mid, order, reveal, staked_ledger
from test_properties import POOL

from pot.ledger import Ledger
from pot.ledger.ledger import FINAL_REASONS
from pot.protocol import ClaimCommit, OrderPlaced, Tick, address_of_key
from pot.protocol.types import Reason

steps = st.lists(st.tuples(st.integers(0, len(POOL) - 1), st.integers(0, 40), st.integers(0, 60)),
                 min_size=5, max_size=100)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_precheck_changes_nothing_and_agrees_with_apply(seq):
    led, ref = staked_ledger(), staked_ledger()
    t = T0 - 5
    for i, dt, ahead in seq:
        t += dt
        op = POOL[i]
        pre = led.precheck(op, t)
        assert led.digest() == ref.digest(), "precheck changed the state"
        before = led.snapshot()
        res = led.apply(op, t)
        assert ref.apply(op, t) == res
        if not pre.ok and pre.reason_enum in FINAL_REASONS:
            # final: the op executing later (it waited in PBFT) is refused too
            assert not Ledger.restore(before, CONFIG).apply(op, t + ahead).ok, (type(op).__name__, pre)
        if res.reason_enum is Reason.WRONG_WINDOW and pre.reason_enum is not Reason.WRONG_WINDOW:
            continue  # not open yet at t: precheck lets it wait in PBFT (or finds what else is wrong)
        assert (pre.ok, pre.reason) == (res.ok, res.reason), (type(op).__name__, pre, res)
    assert led.digest() == ref.digest()


def test_throwaway_signers_and_closed_windows_are_final_refusals():
    led = staked_ledger()
    assert led.apply(OrderPlaced(order(1)), T0).ok
    stranger = os.urandom(32)
    msg = ClaimCommit(1, address_of_key(stranger), b"\x05" * 32).sign(DOMAIN, stranger)
    assert led.precheck(msg, T0 + 1).reason_enum is Reason.NOT_ENOUGH_STAKE
    unknown = ClaimCommit(99, address_of_key(stranger), b"\x05" * 32).sign(DOMAIN, stranger)
    assert led.precheck(unknown, T0 + 1).reason_enum is Reason.UNKNOWN_ORDER
    c = commit(MINERS[0], 1, mid(0))
    assert led.precheck(c, TRAIN_END).reason_enum is Reason.WRONG_WINDOW       # training is over
    assert led.precheck(c, T0 + 1).ok and led.apply(c, T0 + 1).ok
    assert led.precheck(c, T0 + 2).reason_enum is Reason.REPLAY
    # a reveal sent a moment early passes (it may execute after trainEnd); the ledger then decides
    assert led.precheck(reveal(MINERS[0], 1, mid(0)), T0 + 2).ok
    assert {Reason.NOT_ENOUGH_STAKE, Reason.UNKNOWN_ORDER, Reason.REPLAY, Reason.WRONG_WINDOW} <= FINAL_REASONS


def test_precheck_of_a_tick_over_many_orders_leaves_them_open():
    led = staked_ledger()
    for oid in range(1, 51):
        assert led.apply(OrderPlaced(order(oid)), T0).ok
    before = led.digest()
    res = led.precheck(Tick(), CREVEAL_END + 1000)
    assert res.ok and res.nonces
    assert led.digest() == before and led.pending_settlements() == []
    assert led.apply(Tick(), CREVEAL_END + 1000) == res
