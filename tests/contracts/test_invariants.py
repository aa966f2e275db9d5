"""Hypothesis: random sequences of user and committee actions keep ARCHITECTURE.md §2's invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.helpers import contract_balances_ok, place, settle_batch, sign
from pot.chain.clients import MINER
from pot.chain.errors import ChainRevert

ops = st.lists(st.tuples(st.sampled_from(["place", "settle", "settle_over", "reclaim", "register", "unregister",
                                          "withdraw", "slash", "replay", "wait"]),
                         st.integers(0, 3), st.integers(1, 500)), min_size=3, max_size=12)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(seq=ops)
def test_random_sequences_keep_invariants(pot_fresh, seq):
    pot = pot_fresh()
    c = pot.c
    stakers, executed, total_before = set(), [], c.token.call("totalSupply")
    for op, who, amount in seq:
        u = pot.users[who]
        try:
            if op == "place":
                place(pot, u, reward=amount)
            elif op in ("settle", "settle_over") and c.orders.order_count():
                oid = 1 + amount % c.orders.order_count()
                reward = c.orders.get_order(oid)["reward"]
                pay = reward + (1 if op == "settle_over" else 0)
                b = settle_batch(pot, oid, [(pot.users[3].address, pay // 2), (u.address, pay - pay // 2)])
                pot.node.increase_time(400)
                res = c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
                executed.append(b)
                if op == "settle_over":  # skipped, never paid: the order stays as it was
                    assert res.event("OrderSkipped")["orderId"] == oid, "a batch paying more than the escrow applied"
            elif op == "reclaim" and c.orders.order_count():
                c.orders.reclaim(u, 1 + amount % c.orders.order_count())
            elif op == "register":
                c.token.ensure_allowance(u, c.stakes.address, 2**96 - 1)
                c.stakes.register(u, MINER, 100 + amount)
                stakers.add(u.address)
            elif op == "unregister":
                c.stakes.request_unregister(u)
            elif op == "withdraw":
                c.stakes.withdraw(u)
            elif op == "slash" and c.orders.order_count():
                from pot.protocol.settlement import Slash

                oid = 1 + amount % c.orders.order_count()
                b = settle_batch(pot, 0, [], slashes=[Slash(oid, u.address, amount, pot.treasury)])
                c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
                executed.append(b)
            elif op == "replay" and executed:
                b = executed[amount % len(executed)]
                c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
                raise AssertionError("a settlement executed twice")
            elif op == "wait":
                pot.node.increase_time(amount * 4)
        except ChainRevert:
            pass
        contract_balances_ok(pot, stakers=[p.address for p in pot.users])
        assert c.token.call("totalSupply") == total_before
