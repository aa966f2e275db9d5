"""Chain logs -> the ledger's chain-event ops (what the committee's primary proposes).

The contracts hold the value flow; the ledger must learn of orders, test releases, stakes,
challenges and executed settlements from them. ``ops_from_events`` is a pure translation of
decoded logs (plus, for stakes, the registry's state at the log's block, so the op carries the
account's resulting roles and total stake however many calls produced it). ``ChainBridge``
follows a deployment with a confirmation depth and returns new ops in chain order.

Every replica can rebuild the same ops from its own RPC node, which is how the aggregator checks
a primary's proposal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from eth_utils import to_checksum_address

from pot.chain.events import ChainEvent, EventFollower, order_from_event
from pot.protocol import types as T

#: StakeRegistry events after which an account's roles or total stake may differ.
STAKE_EVENTS = ("Registered", "StakeAdded", "UnregisterRequested", "Withdrawn", "Slashed")

#: (address, block) -> (roles, stake, unbonding_end): the registry's state after that block.
StakerAt = Callable[[str, int], tuple[int, int, int]]
#: block -> (members, threshold): RewardMultisig's committee after that block.
CommitteeAt = Callable[[int], tuple[list[str], int]]


def ops_from_events(events: Iterable[ChainEvent], staker_at: StakerAt,
                    committee_at: CommitteeAt | None = None) -> list[T.Op]:
    """The ledger ops for ``events`` (oldest first), in chain order. ``committee_at`` reads the
    committee an ``EpochChanged`` leads to (the event carries only the epoch)."""
    events = list(events)
    settled: dict[str, list[int]] = {}
    for ev in events:
        if ev.contract == "OrderBook" and ev.name == "OrderSettled":
            settled.setdefault(ev.tx_hash, []).append(int(ev["orderId"]))
    ops: list[T.Op] = []
    seen_stake: set[tuple[str, int]] = set()
    for ev in events:
        key = (ev.contract, ev.name)
        if key == ("OrderBook", "OrderPlaced"):
            ops.append(T.OrderPlaced(order_from_event(ev)))
        elif key == ("OrderBook", "TestDataReleased"):
            ops.append(T.TestDataReleased(int(ev["orderId"]), ev["testCid"], int(ev["t3"])))
        elif ev.contract == "StakeRegistry" and ev.name in STAKE_EVENTS:
            account = to_checksum_address(ev["staker"])
            if (account, ev.block_number) in seen_stake:
                continue  # the state read at this block already covers every log in it
            seen_stake.add((account, ev.block_number))
            roles, stake, unbonding_end = staker_at(account, ev.block_number)
            # a staker on its way out takes no new work: whatever it committed to could only be
            # slashed until it withdraws, so the ledger sees it without roles from the request on
            ops.append(T.StakeChanged(account, 0 if unbonding_end else roles, stake))
        elif key == ("ChallengeManager", "ChallengeCommitted"):
            ops.append(T.ChallengeCommitted(int(ev["orderId"]), ev["challenger"], bytes(ev["commitment"]),
                                            int(ev["stake"])))
        elif key == ("ChallengeManager", "ChallengeRevealed"):
            ops.append(T.ChallengeRevealed(int(ev["orderId"]), ev["challenger"], bytes(ev["vid"])))
        elif key == ("RewardMultisig", "EpochChanged"):
            if committee_at is None:
                raise ValueError("an EpochChanged log needs committee_at to read the committee it leads to")
            members, threshold = committee_at(ev.block_number)
            ops.append(T.EpochChanged(int(ev["epoch"]), b"".join(bytes.fromhex(m[2:]) for m in members),
                                      int(threshold)))
        elif key == ("RewardMultisig", "SettlementExecuted"):
            ops.append(T.SettlementExecuted(int(ev["nonce"]), tuple(settled.get(ev.tx_hash, ())),
                                            bytes.fromhex(ev.tx_hash[2:])))
    return ops


class ChainBridge:
    """Follows one deployment and turns its confirmed logs into ledger ops (blocking web3 calls:
    run ``poll`` in a thread from asyncio code)."""

    def __init__(self, w3, deployment, *, from_block: int | None = None, confirmations: int = 0) -> None:
        from pot.chain.compile import load_artifact

        self.w3 = w3
        self.follower = EventFollower(w3, deployment, from_block=from_block, confirmations=confirmations)
        self._stakes = w3.eth.contract(address=deployment.stake_registry,
                                       abi=load_artifact("StakeRegistry")["abi"])
        self._multisig = w3.eth.contract(address=deployment.reward_multisig,
                                         abi=load_artifact("RewardMultisig")["abi"])

    @property
    def next_block(self) -> int:
        return self.follower.next_block

    def staker_at(self, account: str, block: int) -> tuple[int, int, int]:
        stake, _locked, roles, unbonding_end = self._stakes.functions.stakerOf(account).call(
            block_identifier=block)
        return int(roles), int(stake), int(unbonding_end)

    def committee_at(self, block: int) -> tuple[list[str], int]:
        return committee_at(self._multisig, block)

    def poll(self) -> list[T.Op]:
        return ops_from_events(self.follower.poll(), self.staker_at, self.committee_at)


def committee_at(multisig, block: int) -> tuple[list[str], int]:
    """RewardMultisig's members and threshold after ``block`` (a web3 contract object): what every
    replica's node answers alike for a confirmed block."""
    members = multisig.functions.members().call(block_identifier=block)
    threshold = multisig.functions.threshold().call(block_identifier=block)
    return [to_checksum_address(m) for m in members], int(threshold)
