"""A worst-case gas model of one settlement transaction (``executeSigned``).

The ledger splits what is ready to settle into settlements under ``settlementGasBudget`` using
this model, so it must never underestimate: every recipient is assumed fresh (a zero balance
slot: 22,100 gas for the first write), every storage read cold, every calldata byte nonzero.
``tests/contracts/test_settlement_gas.py`` executes worst-case batches on Anvil and checks that
the model is above what they cost, and not far above.

Every constant is the cost of one item with its calldata (16 gas per byte, as if no byte were
zero) and its share of hashing, looping and events.
"""

from __future__ import annotations

from typing import Any

#: the transaction, calldata head, EIP-712 domain and batch hashing, nonce bitmap, event
BASE = 21_000 + 60_000
#: 65 calldata bytes, ecrecover, the member's cold index slot, the loop
PER_SIGNATURE = 65 * 16 + 3_000 + 2_100 + 1_500
#: one OrderSettlement: 6 head words + array header of calldata, two cold order slots, status
#: write, OrderSettled event, struct hash, OrderBook call share
PER_ORDER = 8 * 32 * 16 + 2 * 2_100 + 2_900 + 2_500 + 2_000 + 1_500
#: one packed payout word: calldata, its hash share, two passes and a memory credit
PER_PAYOUT = 32 * 16 + 400
#: one recipient: its calldata word and a transfer into a fresh balance (cold access, zero to
#: nonzero write, Transfer event, the token call)
PER_RECIPIENT = 32 * 16 + 2_600 + 20_000 + 2_000 + 4_000
#: one Slash: calldata, struct hash, finalizableAt (cold order slots), the staker's cold slot
#: and write, Slashed event, a transfer into a fresh balance
PER_SLASH = 4 * 32 * 16 + 1_000 + 7_000 + 2_100 + 2_900 + 2_000 + PER_RECIPIENT
#: one ChallengeVerdict: calldata, struct hash, the challenge's cold slots and writes, the
#: order's windows, event, up to two transfers into fresh balances
PER_VERDICT = 4 * 32 * 16 + 1_000 + 2 * 2_100 + 2 * 2_900 + 7_000 + 2_500 + 2 * PER_RECIPIENT
#: a budget below this cannot hold one order of a small committee
MIN_BUDGET = 500_000


class Estimate:
    """Worst-case gas of a settlement being built item by item."""

    def __init__(self, committee: tuple[str, ...], threshold: int) -> None:
        self._committee = {m.lower() for m in committee}
        self._recipients: set[str] = set()
        self.items = 0
        self.gas = BASE + threshold * PER_SIGNATURE

    def _cost(self, item: Any) -> tuple[int, set[str]]:
        kind = type(item).__name__
        if kind == "OrderSettlement":
            new = {p.to.lower() for p in item.payouts}
            if item.per_member:
                new |= self._committee
            new -= self._recipients
            return PER_ORDER + PER_PAYOUT * len(item.payouts) + PER_RECIPIENT * len(new), new
        if kind == "Slash":
            return PER_SLASH, set()
        if kind == "ChallengeVerdict":
            return PER_VERDICT, set()
        raise TypeError(f"not a settlement item: {kind}")

    def with_item(self, item: Any) -> int:
        """The estimate if ``item`` were added."""
        return self.gas + self._cost(item)[0]

    def add(self, item: Any) -> None:
        cost, new = self._cost(item)
        self.gas += cost
        self._recipients |= new
        self.items += 1


def settlement_gas(settlement: Any, threshold: int) -> int:
    """Worst-case gas of executing ``settlement`` with ``threshold`` signatures."""
    est = Estimate(settlement.members, threshold)
    for item in (*settlement.orders, *settlement.slashes, *settlement.verdicts):
        est.add(item)
    return est.gas
