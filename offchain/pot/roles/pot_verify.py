"""PoT.Verify (ARCHITECTURE.md §4): when validations of a model disagree or one is challenged, every
replica recomputes the score itself, outside the replicated state machine, and submits a signed
``VerifyResult``; the ledger takes a result once 2f+1 replicas agree."""

from __future__ import annotations

import logging
from typing import Any

from pot.ledger import Ledger
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.eip712 import Domain
from pot.protocol.scoring import Abstain, Invalid
from pot.roles.scoring import Scorer

log = logging.getLogger("pot.aggregator")


class PotVerify:
    """``await step()`` scores every model the ledger waits on that this replica has not yet scored."""

    def __init__(self, *, ledger: Ledger, scorer: Scorer, domain: Domain, address: str, key: bytes, fire,
                 stats: dict[str, Any]) -> None:
        self.ledger = ledger
        self.scorer = scorer
        self.domain = domain
        self.address = address
        self._key = key
        self._fire = fire
        self.stats = stats
        self._verified: set[tuple[int, bytes]] = set()

    async def step(self) -> None:
        for p in self.ledger.pending_verifications():
            key = (p["orderId"], p["mid"])
            if key in self._verified:
                continue
            if p["modelCid"] is None or p["testCid"] is None:
                continue
            # in the scoring process: this loop (PBFT, the API) never waits on PyTorch
            outcome = await self.scorer.score(p["mid"], p["modelCid"], p["testCid"], p["modelType"], p["specCid"])
            if isinstance(outcome, Abstain):
                log.warning("order=%d PoT.Verify of %s abstains%s: %s", p["orderId"], p["mid"].hex()[:16],
                            " (will retry)" if outcome.retry else "", outcome.reason)
                if not outcome.retry:
                    self._verified.add(key)  # no VerifyResult from this replica; the others decide
                continue
            score = outcome.score
            note = outcome.reason if isinstance(outcome, Invalid) else ""
            log.info("order=%d PoT.Verify mid=%s score=%d%s", p["orderId"], p["mid"].hex()[:16], score,
                     f" ({note})" if note else "")
            msg = T.VerifyResult(p["orderId"], p["mid"], score, self.address).sign(self.domain, self._key)
            self._verified.add(key)
            self.stats["verify_results"] += 1
            self._fire(codec.encode(msg), f"order={p['orderId']} VerifyResult")
