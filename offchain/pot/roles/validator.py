"""The validator: score every revealed model on the released test set, commit, then reveal.

In ``[t3, validateEnd)`` it fetches each revealed model (checked against its mid) and the test
set, scores it with the order's validation function and sends ``ValidationCommit`` (the score
stays hidden, so no validator can copy another's). In the reveal window it sends
``ValidationReveal`` with its vStake behind the score. A validator never scores its own model.

``dishonest_offset`` exists for the demo's adversary only: it shifts every reported score,
which verifiers catch and the committee slashes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pot.protocol import types as T
from pot.protocol.ids import validation_commitment
from pot.protocol.timeline import Phase
from pot.roles.base import Worker, run_worker
from pot.roles.config import ValidatorConfig
from pot.roles.scoring import Scorer, Unavailable

PPM = 1_000_000


@dataclass
class Validation:
    score: int           # what this validator reports
    true_score: int      # what it computed
    salt: bytes
    revealed: bool = False


class Validator(Worker):
    role = "validator"
    config_class = ValidatorConfig
    stake_role = T.VALIDATOR

    def __init__(self, config: ValidatorConfig | None = None, **kw) -> None:
        super().__init__(config, **kw)
        self.scorer = Scorer(self.store)
        self.validations: dict[tuple[int, bytes], Validation] = {}
        self.done_orders: set[int] = set()

    def reported(self, score: int) -> int:
        return min(PPM, max(0, score + self.config.dishonest_offset))

    async def validate_order(self, view) -> None:
        """Score and commit every model of the order not yet committed."""
        cyc = await self.gateway.cycle(view.order.order_id)
        if cyc is None or cyc.test_cid is None:
            return
        oid = cyc.order.order_id
        for m in cyc.models:
            if m.miner == self.address or (oid, m.mid) in self.validations:
                continue
            try:
                true_score, note = await self.scorer.score(m.mid, m.model_cid, cyc.test_cid, cyc.order.model_type_name)
            except Unavailable as exc:
                self.emit("unavailable", oid, mid=m.mid, error=str(exc))
                continue
            score = self.reported(true_score)
            self.emit("score", oid, mid=m.mid, score=true_score, reported=score, **({"note": note} if note else {}))
            salt = os.urandom(32)
            commitment = validation_commitment(oid, self.address, m.mid, score, salt)
            res = await self.send("validation-commit", T.ValidationCommit(oid, self.address, m.mid, commitment),
                                  oid, mid=m.mid)
            if res.ok:
                self.validations[(oid, m.mid)] = Validation(score, true_score, salt)

    async def reveal_order(self, order_id: int) -> None:
        for (oid, mid), v in self.validations.items():
            if oid != order_id or v.revealed:
                continue
            msg = T.ValidationReveal(oid, self.address, mid, v.score, v.salt, self.config.v_stake)
            res = await self.send("validation-reveal", msg, oid, mid=mid, score=v.score, v_stake=self.config.v_stake)
            v.revealed = res.ok or res.reason_enum in (T.Reason.DUPLICATE, T.Reason.REPLAY)

    async def _step(self) -> None:
        if not await self.ensure_staked():
            return
        for view in await self.gateway.orders("active"):
            oid = view.order.order_id
            if oid in self.done_orders or view.t3 is None:
                continue
            ph = self.track_phase(view.order, view.t3)
            if ph is Phase.VALIDATION:
                await self.validate_order(view)
            elif ph is Phase.VALIDATION_REVEAL:
                await self.reveal_order(oid)
            elif ph in (Phase.CHALLENGE, Phase.CHALLENGE_REVEAL, Phase.FINALIZATION):
                self.done_orders.add(oid)


async def run(config: ValidatorConfig) -> None:
    """``pot validator run``: the validator against the committee's API, until SIGINT/SIGTERM."""
    await run_worker(Validator, config)
