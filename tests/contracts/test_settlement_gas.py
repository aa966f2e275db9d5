"""The ledger's worst-case gas model (pot.protocol.gas) against what settlements really cost.

The ledger splits what is ready to settle under ``settlementGasBudget`` with this model, so it
must be above any real execution (every recipient fresh, every slot cold) and not so far above
that settlements come out needlessly small. Gas is deterministic: these are exact ceilings.
"""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak

from contracts.helpers import MID, SALT, TEST_CID, goto, place, sign
from contracts.test_stakes_challenges import _approve
from pot.chain.clients import VALIDATOR, VERIFIER, challenge_commitment
from pot.protocol.finalize import Params, plan
from pot.protocol.gas import settlement_gas
from pot.protocol.settlement import ChallengeVerdict, OrderSettlement, Payout, Settlement, Slash


def _fresh(tag: str, n: int) -> list[str]:
    return [Account.from_key(keccak(text=f"gas-{tag}-{i}")).address for i in range(n)]


def _orders_with_test_data(pot, n: int, reward: int = 10_000) -> list[int]:
    c, client = pot.c, pot.users[0]
    oids = [place(pot, client, reward=reward)[0] for _ in range(n)]
    goto(pot, max(c.orders.windows(o)["reveal_end"] for o in oids))
    for o in oids:
        c.orders.release_test_data(client, o, TEST_CID, SALT)
    return oids


def test_model_is_above_a_worst_case_settlement_and_close_to_it(pot):
    """Every recipient fresh (the committee too: nobody was paid before), real slashes of cold
    stakes to fresh receivers, real verdicts paying fresh validators."""
    c = pot.c
    oids = _orders_with_test_data(pot, 24)
    verifiers = pot.users[1:3]
    for v in verifiers:
        _approve(pot, v)
        c.stakes.register(v, VERIFIER, 100)
    w = c.orders.windows(oids[-1])
    goto(pot, w["challenge_end"] - 10)
    for o, v in zip(oids[:2], verifiers):
        c.challenges.commit_challenge(v, o, challenge_commitment(o, v.address, keccak(b"x"), SALT))
    stakers = pot.users[3:7]
    for s in stakers:
        _approve(pot, s)
        c.stakes.register(s, VALIDATOR, 200)
    goto(pot, max(c.orders.call("finalizableAt", o) for o in oids))
    members = tuple(m.address for m in pot.members)
    winners, vals, hunters = _fresh("w", 24), _fresh("v", 72), _fresh("h", 4)
    orders = tuple(OrderSettlement(o, winners[i], MID, 25, (Payout(winners[i], 10_000 - 4 * 25 - 60),)
                                   + tuple(Payout(vals[3 * i + j], 20) for j in range(3)))
                   for i, o in enumerate(oids))
    slashes = tuple(Slash(oids[0], s.address, 150, h) for s, h in zip(stakers, hunters))
    verdicts = tuple(ChallengeVerdict(o, v.address, False, f) for o, v, f in zip(oids[:2], verifiers, _fresh("f", 2)))
    batch = Settlement(pot.next_nonce(), members=members, orders=orders, slashes=slashes, verdicts=verdicts)
    assert all(o.total(len(members)) == 10_000 for o in orders)
    res = c.multisig.execute_signed(pot.deployer, batch, sign(pot, batch))
    assert res.event("SettlementExecuted")["orders"] == 24 and len(res.events_named("Slashed")) == 4
    model = settlement_gas(batch, 3)
    assert res.gas_used <= model <= 1.35 * res.gas_used, (res.gas_used, model)


def test_plan_keeps_every_settlement_under_the_budget_on_chain(pot):
    """The ledger's own split (plan) of 40 ready orders under a 1M budget: every settlement it
    makes executes on Anvil for less than the budget, and together they settle every order once."""
    from pot.protocol import types as T
    from pot.protocol.finalize import OrderCycle
    from pot.protocol.ids import claim_commitment, model_type_to_bytes

    c = pot.c
    oids = _orders_with_test_data(pot, 40)
    goto(pot, max(c.orders.call("finalizableAt", o) for o in oids))
    members = tuple(m.address for m in pot.members)
    winners, pool = _fresh("pw", 40), _fresh("pool", 5)
    cycles = []
    for i, oid in enumerate(oids):
        o = c.orders.get_order(oid)
        order = T.Order(oid, pot.users[0].address, o["reward"], o["t0"], o["train_duration"], o["reveal_duration"],
                        o["validate_duration"], o["challenge_duration"], model_type_to_bytes("classification-accuracy-v1"),
                        "bafy-spec", bytes(o["data_commitment"]))
        mid = keccak(f"m{i}".encode())
        cycles.append(OrderCycle(order, o["t3"], (T.ClaimCommit(oid, winners[i], claim_commitment(oid, winners[i], mid, SALT)),),
                                 (T.ClaimReveal(oid, winners[i], mid, SALT, "cid"),),
                                 tuple(T.ValidationReveal(oid, pool[(i + j) % 5], mid, 7, SALT, 10) for j in range(3))))
    params = Params(settlement_gas_budget=1_000_000, treasury=pot.treasury)
    out = plan(cycles, first_nonce=pot.next_nonce(), params=params, committee=members, threshold=3)
    assert len(out) >= 3
    settled = []
    for s in out:
        res = c.multisig.execute_signed(pot.deployer, s, sign(pot, s))
        assert res.gas_used <= settlement_gas(s, 3) <= params.settlement_gas_budget
        settled += [e["orderId"] for e in res.events_named("OrderSettled")]
    assert sorted(settled) == sorted(oids)
    assert c.token.balance_of(c.orders.address) == 0
