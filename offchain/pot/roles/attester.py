"""The chain follower: each replica follows its own RPC node past the confirmation depth and
attests every event as a ledger op (``ChainAttestation``); the ledger applies an event once f+1
members attested it identically (ARCHITECTURE.md §4), so no single replica's node is trusted."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pot.chain.compile import load_artifact
from pot.chain.events import EventFollower
from pot.ledger import Ledger
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.eip712 import Domain
from pot.protocol.ids import keccak
from pot.roles.bridge import committee_at, ops_from_events

log = logging.getLogger("pot.aggregator")


def event_ref(block_number: int, index: int) -> bytes:
    """Identity of the ``index``-th ledger op made from block ``block_number``'s logs: every
    replica following the same chain at the same depth numbers them alike."""
    return keccak(b"pot-chain-event" + block_number.to_bytes(32, "big") + index.to_bytes(32, "big"))


class Attester:
    """``await step()`` polls the chain once and attests what is new, in chain order."""

    def __init__(self, *, w3, deployment, ledger: Ledger, domain: Domain, address: str, key: bytes, fire,
                 confirmations: int, stats: dict[str, Any], state_path=None) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.ledger = ledger
        self.domain = domain
        self.address = address
        self._key = key
        self._fire = fire
        self.stats = stats
        # Its position survives restarts (state_path) and moves only past events attested here.
        self.follower = EventFollower(w3, deployment, confirmations=confirmations, state_path=state_path)
        self._stakes = w3.eth.contract(address=deployment.stake_registry, abi=load_artifact("StakeRegistry")["abi"])
        self._multisig = w3.eth.contract(address=deployment.reward_multisig, abi=load_artifact("RewardMultisig")["abi"])

    async def step(self) -> None:
        events, end = await asyncio.to_thread(self.follower.fetch)
        if not events:
            self.follower.advance(end)
            return
        by_block: dict[int, list] = {}
        for ev in events:
            by_block.setdefault(ev.block_number, []).append(ev)
        waits = []
        for block, evs in sorted(by_block.items()):
            ops = await asyncio.to_thread(ops_from_events, evs, self._staker_at, self._committee_at)
            for i, op in enumerate(ops):
                ref = event_ref(block, i)
                st = self.ledger.chain_event(ref)
                if st["applied"] or self.address in st["attesters"]:
                    continue  # fetched again after a failure (or attested by us): nothing to add
                att = T.ChainAttestation(self.address, ref, codec.encode(op)).sign(self.domain, self._key)
                self.stats["attested"] += 1
                log.info("attest block=%d #%d %s%s", block, i, type(op).__name__, _order_of(op))
                waits.append(self._fire(codec.encode(att), f"attestation block={block} #{i}", timeout=60.0))
        # the next poll starts after these are in: attestations enter the ledger in chain order;
        # one that did not commit (the committee is down or changing views) is sent again from
        # the same block on, never skipped (an error above, e.g. the node no longer serving a
        # block's state, leaves the position where it was too)
        results = await asyncio.gather(*waits)
        if all(r is not None for r in results):
            self.follower.advance(end)

    def _staker_at(self, account: str, block: int) -> tuple[int, int, int]:
        # the registry's state at the event's block: what every replica's node answers alike
        stake, _locked, roles, unbonding_end = self._stakes.functions.stakerOf(account).call(block_identifier=block)
        return int(roles), int(stake), int(unbonding_end)


    def _committee_at(self, block: int) -> tuple[list[str], int]:
        return committee_at(self._multisig, block)


def _order_of(op) -> str:
    oid = T.event_order_id(op)
    return f" order={oid}" if oid is not None else ""
