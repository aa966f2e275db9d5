"""Ledger rules, default cases and attacks, driven through ``apply`` only."""

from ledger_world import (CHALLENGE_END, CLIENT, COMMITTEE, CONFIG, CREVEAL_END, DOMAIN, MINERS, RELEASE_END,
                          REVEAL_END, T0, T3, TRAIN_END, VALIDATE_END, VALIDATORS, VERIFIER_, VREVEAL_END, commit,
                          happy_ops, mid, order, reveal, salt, staked_ledger, vcommit, vreveal)

from pot.ledger import LedgerStateMachine
from pot.protocol import (CancelRequest, ChallengeCommitted, ChallengeRevealed, ClaimCommit, ClaimReveal, Domain,
                          OrderPlaced, Reason, SettlementExecuted, SettlementSignature, StakeChanged,
                          TestDataReleased, Tick, ValidationCommit, ValidationReveal, VerifyResult, decode,
                          encode, vid)


def run(led, ops):
    for t, op in ops:
        r = led.apply(op, t)
        assert r.ok, (op, r.text)


def rejected(led, op, t, reason):
    before = led.digest()
    r = led.apply(op, t)
    assert not r.ok and r.reason_enum is reason, (r.reason_enum, r.text)
    assert led.digest() == before   # a rejected op changes nothing
    return r


def settle(led, t, nonce_expected=1):
    r = led.apply(Tick(), t)
    assert r.ok and r.nonces == (nonce_expected,), r.text
    pend = led.pending_settlements()[-1]
    for a in COMMITTEE[:CONFIG.threshold]:
        sig = pend["settlement"].sign(CONFIG.multisig_domain, a.key)
        assert led.apply(SettlementSignature(pend["nonce"], a.addr, sig), t).ok
    pend = led.pending_settlements()[-1]
    assert pend["ready"] and len(pend["signatures"]) == CONFIG.threshold == 3
    return pend["settlement"]


def test_happy_cycle_to_settlement_and_execution():
    led = staked_ledger()
    run(led, happy_ops())
    assert led.apply(Tick(), CREVEAL_END - 1).nonces == ()
    s = settle(led, CREVEAL_END)
    assert s.orders[0].winner == MINERS[0].addr and s.orders[0].total(len(s.members)) == order().reward
    assert led.node_info(VALIDATORS[0].addr)["locked"] == 200
    assert led.apply(SettlementExecuted(1, (1,), b"\x0e" * 32), CREVEAL_END + 5).ok
    assert led.node_info(VALIDATORS[0].addr)["locked"] == 0
    assert led.pending_settlements() == [] and led.order_cycle_data(1)["status"] == "settled"
    rejected(led, SettlementExecuted(1, (1,), b"\x0e" * 32), CREVEAL_END + 6, Reason.DUPLICATE)
    assert led.model_link(mid(0)).startswith("bafy") and len(led.fetch_validations(1)) == 4


def test_windows_are_enforced():
    led = staked_ledger()
    run(led, [(T0, OrderPlaced(order()))])
    rejected(led, commit(MINERS[0], 1, mid(0)), TRAIN_END, Reason.WRONG_WINDOW)
    run(led, [(TRAIN_END - 1, commit(MINERS[0], 1, mid(0)))])
    rejected(led, reveal(MINERS[0], 1, mid(0)), REVEAL_END, Reason.WRONG_WINDOW)
    run(led, [(REVEAL_END - 1, reveal(MINERS[0], 1, mid(0)))])
    rejected(led, vcommit(VALIDATORS[0], 1, mid(0), 5), REVEAL_END, Reason.WRONG_WINDOW)  # no t3 yet
    rejected(led, TestDataReleased(1, "t", RELEASE_END), RELEASE_END, Reason.WRONG_WINDOW)
    run(led, [(T3, TestDataReleased(1, "t", T3))])
    rejected(led, vcommit(VALIDATORS[0], 1, mid(0), 5), VALIDATE_END, Reason.WRONG_WINDOW)
    run(led, [(VALIDATE_END - 1, vcommit(VALIDATORS[0], 1, mid(0), 5))])
    rejected(led, vreveal(VALIDATORS[0], 1, mid(0), 5), VREVEAL_END, Reason.WRONG_WINDOW)
    rejected(led, Tick(), VALIDATE_END - 2, Reason.TIME_BACKWARDS)
    rejected(led, ChallengeCommitted(1, VERIFIER_.addr, b"\x01" * 32, 5), VREVEAL_END - 1, Reason.WRONG_WINDOW)


def test_stake_unknown_order_and_authorisation():
    led = staked_ledger()
    run(led, [(T0, OrderPlaced(order()))])
    rejected(led, commit(MINERS[0], 2, mid(0)), T0, Reason.UNKNOWN_ORDER)
    rejected(led, commit(CLIENT, 1, mid(0)), T0, Reason.NOT_ENOUGH_STAKE)
    run(led, [(T0, StakeChanged(MINERS[0].addr, 0, 0))])   # unregistered
    rejected(led, commit(MINERS[0], 1, mid(0)), T0, Reason.NOT_ENOUGH_STAKE)
    rejected(led, CancelRequest(1, MINERS[1].addr).sign(DOMAIN, MINERS[1].key), TRAIN_END, Reason.NOT_AUTHORIZED)
    rejected(led, CancelRequest(1, CLIENT.addr).sign(DOMAIN, CLIENT.key), TRAIN_END - 1, Reason.WRONG_WINDOW)
    rejected(led, OrderPlaced(order()), T0, Reason.DUPLICATE)
    rejected(led, OrderPlaced(order(2, reward=0)), T0, Reason.INVALID)


def test_later_commit_replaces_earlier_and_replay_of_old_commit_is_refused():
    led = staked_ledger()
    run(led, [(T0, OrderPlaced(order())), (T0, commit(MINERS[0], 1, mid(0))), (T0 + 1, commit(MINERS[0], 1, mid(5)))])
    rejected(led, commit(MINERS[0], 1, mid(0)), T0 + 2, Reason.REPLAY)
    rejected(led, reveal(MINERS[0], 1, mid(0)), TRAIN_END, Reason.COMMITMENT_MISMATCH)
    run(led, [(TRAIN_END, reveal(MINERS[0], 1, mid(5)))])
    rejected(led, reveal(MINERS[0], 1, mid(5)), TRAIN_END, Reason.REPLAY)


def test_attack_model_stolen_after_reveal():
    led = staked_ledger()
    run(led, [(T0, OrderPlaced(order())), (T0, commit(MINERS[0], 1, mid(0))), (T0, commit(MINERS[1], 1, mid(1))),
              (TRAIN_END, reveal(MINERS[0], 1, mid(0)))])
    # the thief saw mid(0) and its salt in the reveal; its own commitment binds a different content
    stolen = ClaimReveal(1, MINERS[1].addr, mid(0), salt(MINERS[0].name, 1, mid(0)), "bafystolen").sign(DOMAIN, MINERS[1].key)
    rejected(led, stolen, TRAIN_END + 1, Reason.COMMITMENT_MISMATCH)
    # a thief with no commitment at all, and a late commit naming the victim's model
    rejected(led, reveal(MINERS[2], 1, mid(0)), TRAIN_END + 1, Reason.NO_COMMITMENT)
    rejected(led, commit(MINERS[2], 1, mid(0)), TRAIN_END + 1, Reason.WRONG_WINDOW)
    # copying the victim's commitment and its opening under another address cannot match either
    copied = ClaimCommit(1, MINERS[2].addr, commit(MINERS[0], 1, mid(0)).message.commitment)
    led2 = staked_ledger()
    run(led2, [(T0, OrderPlaced(order())), (T0, commit(MINERS[0], 1, mid(0))),
               (T0, copied.sign(DOMAIN, MINERS[2].key)), (TRAIN_END, reveal(MINERS[0], 1, mid(0)))])
    forged = ClaimReveal(1, MINERS[2].addr, mid(0), salt(MINERS[0].name, 1, mid(0)), "x").sign(DOMAIN, MINERS[2].key)
    rejected(led2, forged, TRAIN_END, Reason.COMMITMENT_MISMATCH)


def test_attack_copied_validation_and_self_validation():
    led = staked_ledger()
    run(led, happy_ops()[:6])   # order, 2 commits, 2 reveals, t3
    honest = vcommit(VALIDATORS[0], 1, mid(0), 900_000)
    run(led, [(T3, honest)])
    copier = ValidationCommit(1, VALIDATORS[2].addr, mid(0), honest.message.commitment).sign(DOMAIN, VALIDATORS[2].key)
    run(led, [(T3, copier)])   # the copy is accepted as a commitment, but it can never be opened:
    lifted = ValidationReveal(1, VALIDATORS[2].addr, mid(0), 900_000, salt(VALIDATORS[0].name, 1, mid(0)), 10)
    rejected(led, lifted.sign(DOMAIN, VALIDATORS[2].key), VALIDATE_END, Reason.COMMITMENT_MISMATCH)
    # a miner scoring its own model
    run(led, [(T3, StakeChanged(MINERS[0].addr, 3, 1000))])
    rejected(led, vcommit(MINERS[0], 1, mid(0), 10**6), T3, Reason.NOT_AUTHORIZED)
    rejected(led, vcommit(VALIDATORS[1], 1, mid(7), 1), T3, Reason.UNKNOWN_MODEL)
    rejected(led, vreveal(VALIDATORS[1], 1, mid(0), 1), VALIDATE_END, Reason.NO_COMMITMENT)
    run(led, [(T3, vcommit(VALIDATORS[1], 1, mid(0), 5))])
    rejected(led, vreveal(VALIDATORS[1], 1, mid(0), 5, stake=10**9), VALIDATE_END, Reason.NOT_ENOUGH_STAKE)


def test_attack_replay_and_other_deployment():
    led = staked_ledger()
    run(led, [(T0, OrderPlaced(order()))])
    m = MINERS[0]
    msg = commit(m, 1, mid(0)).message
    for other in (Domain.messages(56, CONFIG.order_book), Domain.messages(31337, "0x" + "99" * 20)):
        rejected(led, msg.sign(other, m.key), T0, Reason.BAD_SIGNATURE)
    rejected(led, msg.sign(DOMAIN, MINERS[1].key), T0, Reason.BAD_SIGNATURE)
    run(led, [(T0, msg.sign(DOMAIN, m.key))])
    rejected(led, msg.sign(DOMAIN, m.key), T0 + 1, Reason.REPLAY)


def test_disputed_model_waits_for_2f_plus_1_verify_results():
    led = staked_ledger()
    ops = happy_ops()
    ops[-1] = (VALIDATE_END, vreveal(VALIDATORS[1], 1, mid(1), 850_000))  # validator 1 disagrees on model 1
    ops[-5] = (T3 + 1, vcommit(VALIDATORS[1], 1, mid(1), 850_000))
    run(led, ops)
    r = led.apply(Tick(), CREVEAL_END)
    assert r.ok and r.nonces == ()
    assert [p["mid"] for p in led.pending_verifications()] == [mid(1)]
    rejected(led, VerifyResult(1, mid(0), 1, COMMITTEE[0].addr).sign(DOMAIN, COMMITTEE[0].key), CREVEAL_END,
             Reason.NOT_PENDING)
    rejected(led, VerifyResult(1, mid(1), 1, MINERS[0].addr).sign(DOMAIN, MINERS[0].key), CREVEAL_END,
             Reason.NOT_AUTHORIZED)
    votes = [800_000, 800_000, 850_000, 800_000]
    for a, s in zip(COMMITTEE, votes):
        assert led.apply(VerifyResult(1, mid(1), s, a.addr).sign(DOMAIN, a.key), CREVEAL_END).ok
        if a is COMMITTEE[1]:
            rejected(led, VerifyResult(1, mid(1), 7, a.addr).sign(DOMAIN, a.key), CREVEAL_END, Reason.DUPLICATE)
    assert led.pending_verifications() == []
    s = settle(led, CREVEAL_END + 1)
    assert [(x.staker, x.amount) for x in s.slashes] == [(VALIDATORS[1].addr, 100)]


def test_challenge_flow_and_settlement_signature_checks():
    led = staked_ledger()
    ops = happy_ops()
    run(led, ops)
    bad = vid(1, VALIDATORS[0].addr, mid(0))
    run(led, [(VREVEAL_END, ChallengeCommitted(1, VERIFIER_.addr, b"\x01" * 32, 40))])
    rejected(led, ChallengeCommitted(1, VERIFIER_.addr, b"\x02" * 32, 40), VREVEAL_END, Reason.DUPLICATE)
    rejected(led, ChallengeRevealed(1, VERIFIER_.addr, bad), CHALLENGE_END - 1, Reason.WRONG_WINDOW)
    rejected(led, ChallengeRevealed(1, CLIENT.addr, bad), CHALLENGE_END, Reason.NO_COMMITMENT)
    run(led, [(CHALLENGE_END, ChallengeRevealed(1, VERIFIER_.addr, bad))])
    led.apply(Tick(), CREVEAL_END)
    for a in COMMITTEE:
        led.apply(VerifyResult(1, mid(0), 900_000, a.addr).sign(DOMAIN, a.key), CREVEAL_END)
    assert led.apply(Tick(), CREVEAL_END).nonces == (1,)
    pend = led.pending_settlements()[0]
    s = pend["settlement"]
    assert [(v.upheld, v.validator) for v in s.verdicts] == [(False, VALIDATORS[0].addr)]
    rejected(led, SettlementSignature(2, COMMITTEE[0].addr, b"\x01" * 65), CREVEAL_END, Reason.UNKNOWN_NONCE)
    rejected(led, SettlementSignature(1, CLIENT.addr, s.sign(CONFIG.multisig_domain, CLIENT.key)), CREVEAL_END,
             Reason.NOT_AUTHORIZED)
    wrong_domain = s.sign(Domain.multisig(1, CONFIG.reward_multisig), COMMITTEE[0].key)
    rejected(led, SettlementSignature(1, COMMITTEE[0].addr, wrong_domain), CREVEAL_END, Reason.BAD_SIGNATURE)
    good = s.sign(CONFIG.multisig_domain, COMMITTEE[0].key)
    assert led.apply(SettlementSignature(1, COMMITTEE[0].addr, good), CREVEAL_END).ok
    rejected(led, SettlementSignature(1, COMMITTEE[0].addr, good), CREVEAL_END, Reason.DUPLICATE)
    rejected(led, SettlementExecuted(1, (2,), b"\x00" * 32), CREVEAL_END, Reason.INVALID)
    rejected(led, commit(MINERS[2], 1, mid(2)), CREVEAL_END, Reason.ORDER_CLOSED)


def test_default_cases_through_the_ledger():
    led = staked_ledger()
    run(led, [(T0, OrderPlaced(order(1))), (T0, OrderPlaced(order(2))), (T0, OrderPlaced(order(3))),
              (T0, OrderPlaced(order(4))),
              (T0, commit(MINERS[0], 2, mid(0))),                                 # 2: claim, no reveal
              (T0, commit(MINERS[0], 3, mid(0))), (T0, commit(MINERS[1], 3, mid(1))),  # 3: reveals, no t3
              (TRAIN_END, reveal(MINERS[0], 3, mid(0))), (TRAIN_END, reveal(MINERS[1], 3, mid(1))),
              (TRAIN_END, CancelRequest(1, CLIENT.addr).sign(DOMAIN, CLIENT.key))])   # 1: cancelled
    rejected(led, CancelRequest(2, CLIENT.addr).sign(DOMAIN, CLIENT.key), TRAIN_END, Reason.INVALID)
    r = led.apply(Tick(), TRAIN_END)
    assert r.nonces == (1,)
    s1 = led.settlement(1)
    assert {p.to: p.amount for p in s1.orders[0].payouts} == {CLIENT.addr: order().reward}
    rejected(led, TestDataReleased(1, "t", T3), T3, Reason.ORDER_CLOSED)
    r = led.apply(Tick(), RELEASE_END)
    s2 = led.settlement(r.nonces[0])
    by_order = {o.order_id: {p.to: p.amount for p in o.payouts} for o in s2.orders}
    assert sorted(by_order) == [2, 3, 4]
    tax_each = order().reward * 500 // 10000 // 4
    assert by_order[2][CLIENT.addr] == order().reward - 4 * tax_each
    assert by_order[3][MINERS[0].addr] + by_order[3][MINERS[1].addr] == order().reward - 4 * tax_each
    assert by_order[4] == {CLIENT.addr: order().reward}   # nobody ever claimed: full refund


def test_fetch_orders_sorted_by_reward_per_second():
    led = staked_ledger()
    run(led, [(T0, OrderPlaced(order(1, reward=100, train=10))), (T0, OrderPlaced(order(2, reward=300, train=10))),
              (T0, OrderPlaced(order(3, reward=300, train=30))), (T0, OrderPlaced(order(4, reward=1000, train=1)))])
    assert [o.order_id for o in led.fetch_orders(now=T0 + 5)] == [2, 1, 3]
    assert [o.order_id for o in led.fetch_orders(limit=1, now=T0)] == [4]
    data = led.order_cycle_data(2)
    assert data["phase"] == "training" and data["timeline"]["train_end"] == T0 + 10


def test_state_machine_adapter():
    led = staked_ledger()
    sm = LedgerStateMachine(led)
    ops = happy_ops()
    out = sm.execute([encode(op) for _t, op in ops[:3]] + [b"\xff", encode(ops[1][1])], T0 + 20)
    res = [decode(x) for x in out]
    assert [r.ok for r in res] == [True, True, True, False, False]
    assert res[3].reason_enum is Reason.MALFORMED and res[4].reason_enum is Reason.REPLAY
    other = LedgerStateMachine(staked_ledger())
    other.restore(sm.snapshot())
    assert other.digest() == sm.digest()


def test_a_staker_leaving_takes_no_new_work():
    """Issue 9: from requestUnregister on (the bridge reports the staker with no roles), the ledger
    refuses its messages, so nothing new is exposed to a stake on its way out."""
    led = staked_ledger()
    run(led, happy_ops()[:5])   # order, commits, reveals
    run(led, [(T3, TestDataReleased(1, "bafytest", T3)), (T3, StakeChanged(VALIDATORS[0].addr, 0, 1000))])
    rejected(led, vcommit(VALIDATORS[0], 1, mid(0), 900_000), T3 + 1, Reason.NOT_ENOUGH_STAKE)
    run(led, [(T3 + 1, vcommit(VALIDATORS[1], 1, mid(0), 900_000))])


def test_an_expired_settlement_is_reissued_under_its_nonce():
    """A settlement that did not execute by its deadline gets a new deadline under the SAME nonce
    (so at most one version ever executes) and collects fresh signatures."""
    led = staked_ledger()
    run(led, happy_ops())
    s = settle(led, CREVEAL_END)
    assert s.deadline == CREVEAL_END + CONFIG.params.settlement_ttl and s.epoch == CONFIG.epoch == 1
    assert led.apply(Tick(), s.deadline).nonces == ()          # not expired yet: deadline is inclusive
    assert led.pending_settlements()[0]["signatures"]
    r = led.apply(Tick(), s.deadline + 1)
    assert r.ok and "re-issued settlements [1]" in r.text
    [p] = led.pending_settlements()
    again = p["settlement"]
    assert again.nonce == s.nonce and again.deadline == s.deadline + 1 + CONFIG.params.settlement_ttl
    assert again.orders == s.orders and p["signatures"] == [] and p["digest"] != s.digest(CONFIG.multisig_domain)
    old_sig = s.sign(CONFIG.multisig_domain, COMMITTEE[0].key)
    rejected(led, SettlementSignature(1, COMMITTEE[0].addr, old_sig), s.deadline + 2, Reason.BAD_SIGNATURE)
    sig = again.sign(CONFIG.multisig_domain, COMMITTEE[0].key)
    assert led.apply(SettlementSignature(1, COMMITTEE[0].addr, sig), s.deadline + 2).ok


def test_an_order_the_contract_skipped_is_closed():
    """The settlement executed but the contract skipped an order (its client reclaimed it first):
    the ledger closes it as skipped, releases its vStakes, and settles the others."""
    led = staked_ledger()
    run(led, sorted(happy_ops(1) + happy_ops(2), key=lambda x: x[0]))
    settle(led, CREVEAL_END)
    assert led.pending_settlements()[0]["orderIds"] == [1, 2]
    rejected(led, SettlementExecuted(1, (1, 3), b"\x0e" * 32), CREVEAL_END + 1, Reason.INVALID)
    r = led.apply(SettlementExecuted(1, (2,), b"\x0e" * 32), CREVEAL_END + 1)
    assert r.ok and "1 orders skipped" in r.text
    assert led.order_cycle_data(1)["status"] == "skipped" and led.order_cycle_data(2)["status"] == "settled"
    assert led.node_info(VALIDATORS[0].addr)["locked"] == 0


def test_verify_deadline_excludes_what_2f_plus_1_never_agreed_on():
    """PoT.Verify found no 2f+1 agreement by verify_timeout: the disputed model is excluded (not
    scored 0, nobody slashed for it) and the order settles with the rest."""
    led = staked_ledger()
    def validator1_on_model0(op) -> bool:
        m = getattr(op, "message", None)
        return getattr(m, "validator", None) == VALIDATORS[1].addr and getattr(m, "mid", None) == mid(0)

    ops = [(t, op) for t, op in happy_ops() if not validator1_on_model0(op)]
    ops += [(T3 + 1, vcommit(VALIDATORS[1], 1, mid(0), 123)), (VALIDATE_END, vreveal(VALIDATORS[1], 1, mid(0), 123))]
    ops.sort(key=lambda x: x[0])
    run(led, ops)
    assert led.apply(Tick(), CREVEAL_END).nonces == ()
    assert led.order_cycle_data(1)["status"] == "verifying"
    for a, score in zip(COMMITTEE[:2], (900_000, 900_000)):   # only 2 of the 3 needed
        assert led.apply(VerifyResult(1, mid(0), score, a.addr).sign(DOMAIN, a.key), CREVEAL_END + 1).ok
    assert led.apply(Tick(), CREVEAL_END + CONFIG.params.verify_timeout - 1).nonces == ()
    r = led.apply(Tick(), CREVEAL_END + CONFIG.params.verify_timeout)
    assert r.ok and r.nonces == (1,)
    s = led.settlement(1)
    assert s.orders[0].winner == MINERS[1].addr and not s.slashes
    assert led.order_cycle_data(1)["excluded"] == ["0x" + mid(0).hex()]
