"""Timeline boundaries and every finalize rule / default case of ARCHITECTURE.md §3."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_world import (CHALLENGE_END, CLIENT, COMMITTEE, CREVEAL_END, MINERS, RELEASE_END, REVEAL_END, T0,
                          T3, TRAIN_END, TREASURY, VALIDATE_END, VALIDATORS, VERIFIER_, VREVEAL_END, mid, order,
                          salt)

from pot.protocol import (Challenge, ClaimCommit, ClaimReveal, NeedsVerification, OrderCycle, Params, Phase,
                          ValidationReveal, claim_commitment, disputed_models, finalize, model_type_from_bytes,
                          model_type_to_bytes, phase, timeline, vid)
from pot.protocol.settlement import ZERO_ADDRESS

P = Params()
COMM = [a.addr for a in COMMITTEE]
R = 10**18


def test_timeline_boundaries_half_open():
    o = order()
    tl = timeline(o, T3)
    assert (tl.train_end, tl.reveal_end, tl.release_end) == (TRAIN_END, REVEAL_END, RELEASE_END)
    assert (tl.validate_end, tl.validation_reveal_end, tl.challenge_end, tl.challenge_reveal_end) == \
        (VALIDATE_END, VREVEAL_END, CHALLENGE_END, CREVEAL_END)
    expect = [(T0 - 1, Phase.NOT_STARTED), (T0, Phase.TRAINING), (TRAIN_END - 1, Phase.TRAINING),
              (TRAIN_END, Phase.MODEL_REVEAL), (REVEAL_END, Phase.TEST_RELEASE), (T3, Phase.VALIDATION),
              (VALIDATE_END, Phase.VALIDATION_REVEAL), (VREVEAL_END, Phase.CHALLENGE),
              (CHALLENGE_END, Phase.CHALLENGE_REVEAL), (CREVEAL_END - 1, Phase.CHALLENGE_REVEAL),
              (CREVEAL_END, Phase.FINALIZATION)]
    for t, p in expect:
        assert phase(o, T3, t) is p, t
    assert phase(o, None, RELEASE_END - 1) is Phase.TEST_RELEASE
    assert phase(o, None, RELEASE_END) is Phase.FINALIZATION
    assert timeline(o, None).final == RELEASE_END and tl.final == CREVEAL_END


def test_model_type_round_trip():
    b = model_type_to_bytes("classification-accuracy-v1")
    assert len(b) == 32 and model_type_from_bytes(b) == "classification-accuracy-v1"
    for bad in ("", "x" * 33, "é"):
        with pytest.raises(ValueError):
            model_type_to_bytes(bad)
    with pytest.raises(ValueError):
        model_type_from_bytes(b"a\x00b" + b"\x00" * 29)


def claim(i, oid=1):
    m = MINERS[i]
    return ClaimCommit(oid, m.addr, claim_commitment(oid, m.addr, mid(i), salt(i)))


def rev(i, oid=1):
    return ClaimReveal(oid, MINERS[i].addr, mid(i), salt(i), f"cid{i}")


def val(v, i, score, stake=100, oid=1):
    return ValidationReveal(oid, VALIDATORS[v].addr, mid(i), score, salt(v, i), stake)


def cycle(**kw):
    base = dict(order=order(reward=R), t3=T3, claims=(claim(0), claim(1)), reveals=(rev(0), rev(1)))
    base.update(kw)
    return OrderCycle(**base)


def payouts(s, i=0):
    """Everything order ``i`` pays, by address: the per-member tax and the payouts."""
    o = s.orders[i]
    out = {m: o.per_member for m in s.members} if o.per_member else {}
    for p in o.payouts:
        out[p.to] = out.get(p.to, 0) + p.amount
    return out


def test_honest_cycle_split():
    c = cycle(validations=(val(0, 0, 900), val(1, 0, 900, stake=300), val(0, 1, 800), val(1, 1, 800, stake=300)))
    s = finalize(c, nonce=7, params=P, committee=COMM)
    p = payouts(s)
    tax_each = R * 500 // 10000 // 4
    assert all(p[a] == tax_each for a in COMM)
    pool = R * 1500 // 10000
    assert p[VALIDATORS[0].addr] == pool * 100 // 400 and p[VALIDATORS[1].addr] == pool * 300 // 400
    assert p[MINERS[0].addr] == R - 4 * tax_each - pool
    assert s.orders[0].winner == MINERS[0].addr and s.orders[0].winning_mid == mid(0)
    assert s.nonce == 7 and not s.slashes and not s.verdicts and s.orders[0].total(len(COMM)) == R
    assert s.orders[0].payouts[0].to == MINERS[0].addr  # the winner first: the contract checks it


def test_tie_goes_to_earlier_commitment():
    c = cycle(claims=(claim(1), claim(0)), validations=(val(0, 0, 500), val(0, 1, 500)))
    assert finalize(c, nonce=1, params=P, committee=COMM).orders[0].winner == MINERS[1].addr


def test_disagreement_needs_verify_then_verified_score_stands_and_wrong_validator_is_slashed():
    c = cycle(validations=(val(0, 0, 900), val(1, 0, 990), val(0, 1, 950)))
    assert disputed_models(c) == [mid(0)]
    with pytest.raises(NeedsVerification):
        finalize(c, nonce=1, params=P, committee=COMM)
    s = finalize(cycle(validations=c.validations, verified={mid(0): 900}), nonce=1, params=P, committee=COMM)
    assert s.orders[0].winner == MINERS[1].addr   # 950 beats the verified 900
    assert [(x.staker, x.amount, x.to) for x in s.slashes] == [(VALIDATORS[1].addr, 100, TREASURY)]


def test_unvalidated_model_needs_verify():
    c = cycle(validations=(val(0, 0, 900),))
    assert disputed_models(c) == [mid(1)]
    s = finalize(cycle(validations=c.validations, verified={mid(1): 901}), nonce=1, params=P, committee=COMM)
    assert s.orders[0].winner == MINERS[1].addr
    assert VALIDATORS[0].addr not in payouts(s)    # nobody validated the winner: the miner keeps the pool


def test_challenges_upheld_rejected_unrevealed_and_dangling():
    wrong = val(0, 0, 999)
    right = val(1, 1, 800)
    h1, h2 = VERIFIER_.addr, CLIENT.addr
    chs = (Challenge(1, h1, b"\x01" * 32, 50, vid(1, wrong.validator, wrong.mid)),
           Challenge(1, h2, b"\x02" * 32, 50, vid(1, wrong.validator, wrong.mid)),
           Challenge(1, MINERS[2].addr, b"\x03" * 32, 50, vid(1, right.validator, right.mid)),
           Challenge(1, VALIDATORS[2].addr, b"\x04" * 32, 50, None),
           Challenge(1, COMMITTEE[0].addr, b"\x05" * 32, 50, b"\x09" * 32))
    c = cycle(validations=(wrong, right), challenges=chs)
    assert set(disputed_models(c)) == {mid(0), mid(1)}
    s = finalize(cycle(validations=(wrong, right), challenges=chs, verified={mid(0): 700, mid(1): 800}),
                 nonce=1, params=P, committee=COMM)
    assert [(x.to, x.amount) for x in s.slashes] == [(h1, 25), (h2, 25), (TREASURY, 50)]
    assert [(v.challenger, v.upheld, v.validator) for v in s.verdicts] == [
        (h1, True, wrong.validator), (h2, True, wrong.validator), (MINERS[2].addr, False, right.validator),
        (VALIDATORS[2].addr, False, TREASURY), (COMMITTEE[0].addr, False, TREASURY)]
    assert s.orders[0].winner == MINERS[1].addr
    assert payouts(s)[VALIDATORS[1].addr] == R * 1500 // 10000


def test_default_no_claims_or_cancel_full_refund():
    for c in (cycle(claims=(), reveals=(), t3=None), cycle(cancelled=True, claims=(), reveals=())):
        s = finalize(c, nonce=1, params=P, committee=COMM)
        assert payouts(s) == {CLIENT.addr: R} and s.orders[0].winner == ZERO_ADDRESS


def test_default_no_valid_reveal_refund_minus_tax():
    s = finalize(cycle(reveals=()), nonce=1, params=P, committee=COMM)
    tax_each = R * 500 // 10000 // 4
    assert payouts(s)[CLIENT.addr] == R - 4 * tax_each


def test_default_no_test_release_split_among_revealers_dust_to_earliest():
    r = 10**6 + 7
    c = cycle(order=order(reward=r), t3=None, claims=(claim(2), claim(0), claim(1)), reveals=(rev(0), rev(2)))
    p = payouts(finalize(c, nonce=1, params=P, committee=COMM))
    tax_each = r * 500 // 10000 // 4
    pool = r - 4 * tax_each
    assert p[MINERS[0].addr] == pool // 2 and p[MINERS[2].addr] == pool // 2 + pool % 2
    assert MINERS[1].addr not in p


amounts = st.integers(1, 10**30)


@settings(max_examples=150, deadline=None)
@given(reward=amounts, n_comm=st.integers(0, 7), tax=st.integers(0, 3000), vbps=st.integers(0, 7000),
       stakes=st.lists(st.integers(1, 10**24), min_size=0, max_size=3),
       scores=st.lists(st.integers(0, 10**6), min_size=2, max_size=2))
def test_payouts_always_sum_to_escrow(reward, n_comm, tax, vbps, stakes, scores):
    params = Params(tax_bps=tax, validator_bps=vbps)
    vals = tuple(val(v, 0, scores[0], stake=s) for v, s in enumerate(stakes)) + (val(0, 1, scores[1]),)
    c = cycle(order=order(reward=reward), validations=vals, verified={} if stakes else {mid(0): scores[0]})
    s = finalize(c, nonce=1, params=params, committee=COMM[:n_comm] + [f"0x{i:040x}" for i in range(n_comm - 4)])
    o = s.orders[0]
    assert o.total(len(s.members)) == reward and all(p.amount > 0 for p in o.payouts)
    assert o.payouts[0].to == o.winner


def test_payouts_per_order_are_bounded_whatever_the_swarm():
    """A sybil swarm of validators or revealing miners cannot make one order's payouts unbounded:
    the first ``max_paid_validators`` correct validations share the pool, and without a test release
    the first ``max_paid_miners`` reveals share the reward."""
    p = Params(max_paid_validators=2, max_paid_miners=2)
    vals = tuple(val(v, 0, 900) for v in range(3)) + (val(0, 1, 800),)
    s = finalize(cycle(validations=vals), nonce=1, params=p, committee=COMM)
    paid = payouts(s)
    assert VALIDATORS[0].addr in paid and VALIDATORS[1].addr in paid and VALIDATORS[2].addr not in paid
    assert s.orders[0].total(len(COMM)) == R and not s.slashes
    c = cycle(t3=None, claims=(claim(0), claim(1), claim(2)), reveals=(rev(0), rev(1), rev(2)))
    s = finalize(c, nonce=1, params=p, committee=COMM)
    assert MINERS[2].addr not in payouts(s) and s.orders[0].total(len(COMM)) == R


def test_verify_deadline_excludes_undetermined_models_without_slashing():
    """PoT.Verify found no 2f+1 agreement in time: the model cannot win, its validators are neither
    paid nor slashed, and a challenge against them gets its cStake back."""
    wrong_or_not = val(0, 0, 999)
    ch = Challenge(1, VERIFIER_.addr, b"\x01" * 32, 50, vid(1, wrong_or_not.validator, wrong_or_not.mid))
    c = cycle(validations=(wrong_or_not, val(1, 0, 500), val(0, 1, 800)), challenges=(ch,))
    with pytest.raises(NeedsVerification):
        finalize(c, nonce=1, params=P, committee=COMM)
    s = finalize(cycle(validations=c.validations, challenges=(ch,), excluded=frozenset({mid(0)})),
                 nonce=1, params=P, committee=COMM)
    assert s.orders[0].winner == MINERS[1].addr and not s.slashes
    assert [(v.challenger, v.upheld) for v in s.verdicts] == [(VERIFIER_.addr, True)]
    assert VALIDATORS[1].addr not in payouts(s)


def test_plan_splits_under_the_gas_budget_deterministically():
    """Orders ready together settle in as many settlements as the worst-case gas model needs,
    each under the budget, consecutive nonces, every order exactly once, same result every time."""
    from pot.protocol.finalize import plan
    from pot.protocol.gas import settlement_gas

    cycles = [cycle(order=order(order_id=i, reward=R), claims=(claim(0, i), claim(1, i)), reveals=(rev(0, i), rev(1, i)),
                    validations=(val(0, 0, 900, oid=i), val(1, 1, 800, oid=i))) for i in range(1, 41)]
    p = Params(settlement_gas_budget=1_000_000)
    out = plan(cycles, first_nonce=5, params=p, committee=COMM, threshold=3, epoch=2, deadline=99)
    assert len(out) > 1 and [s.nonce for s in out] == list(range(5, 5 + len(out)))
    assert all(settlement_gas(s, 3) <= p.settlement_gas_budget for s in out)
    assert [oid for s in out for oid in s.order_ids] == list(range(1, 41))
    assert all(s.epoch == 2 and s.deadline == 99 for s in out)
    assert out == plan(cycles, first_nonce=5, params=p, committee=COMM, threshold=3, epoch=2, deadline=99)
    one = plan(cycles, first_nonce=1, params=Params(), committee=COMM, threshold=3)
    assert len(one) == 1 and len(one[0].orders) == 40
