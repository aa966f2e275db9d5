"""The validator: score every revealed model on the released test set, commit, then reveal.

In ``[t3, validateEnd)`` it fetches each revealed model (checked against its mid) and the test
set, scores it with the order's validation function and sends ``ValidationCommit`` (the score
stays hidden, so no validator can copy another's). In the reveal window it sends
``ValidationReveal`` with its vStake behind the score. A validator never scores its own model.

``dishonest_offset`` exists for the demo's adversary only: it shifts every reported score,
which verifiers catch and the committee slashes.

Each score and its salt go to ``<state_dir>/validator/<address>/order-<id>.json`` before the
ValidationCommit is sent, so a restarted validator still reveals what it committed to (a
commitment it cannot open costs it the validation); the file goes once the reveal window closed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pot.protocol import types as T
from pot.protocol.ids import validation_commitment
from pot.protocol.scoring import Abstain, Invalid
from pot.protocol.timeline import Phase
from pot.roles.base import Worker, key_order, order_key, run_worker
from pot.roles.config import ValidatorConfig
from pot.roles.events import Kind
from pot.roles.outcome import validator_outcome
from pot.roles.scoring import Scorer


@dataclass
class Validation:
    score: int           # what this validator reports
    true_score: int      # what it computed
    salt: bytes
    revealed: bool = False
    committed: bool = False   # the ledger took the commit (False: sent, answer unknown)


class Validator(Worker):
    role = "validator"
    config_class = ValidatorConfig
    stake_role = T.VALIDATOR

    def __init__(self, config: ValidatorConfig | None = None, **kw) -> None:
        super().__init__(config, **kw)
        self.scorer = Scorer(self.store, self.config.scoring_limits)
        self.validations: dict[tuple[int, bytes], Validation] = {}
        self.done_orders: set[int] = set()
        self._load_state()

    # -- state (scores and salts must survive a restart until the reveal) -------------------

    def _save_order(self, order_id: int) -> None:
        if not self.state.enabled:
            return
        entries = [{"mid": "0x" + mid.hex(), "score": v.score, "trueScore": v.true_score,
                    "salt": "0x" + v.salt.hex(), "committed": v.committed, "revealed": v.revealed}
                   for (oid, mid), v in self.validations.items() if oid == order_id]
        self.state.save(order_key(order_id), {"orderId": order_id, "validations": entries})

    def _load_state(self) -> None:
        for key, doc in self.state.load_all().items():
            oid = key_order(key)
            if oid is None:
                continue
            n = 0
            for d in doc.get("validations", []):
                try:
                    mid = bytes.fromhex(d["mid"][2:])
                    v = Validation(int(d["score"]), int(d["trueScore"]), bytes.fromhex(d["salt"][2:]),
                                   bool(d.get("revealed")), bool(d.get("committed")))
                except (KeyError, TypeError, ValueError) as exc:
                    self.emit(Kind.ERROR, oid, error=f"state {key}: bad validation entry: {exc}")
                    continue
                self.validations[(oid, mid)] = v
                n += 1
            self.emit(Kind.RESUMED, oid, validations=n)

    def _forget(self, order_id: int) -> None:
        """Nothing more to do for the order (kept in memory for a look, not on disk)."""
        self.done_orders.add(order_id)
        self.state.remove(order_key(order_id))

    def _commit_message(self, oid: int, mid: bytes, v: Validation) -> T.ValidationCommit:
        return T.ValidationCommit(oid, self.address, mid,
                                  validation_commitment(oid, self.address, mid, v.score, v.salt))

    async def _send_commit(self, oid: int, mid: bytes, v: Validation) -> None:
        """Send (or, after a restart, send again: the same message) a saved ValidationCommit."""
        res = await self.send(Kind.VALIDATION_COMMIT, self._commit_message(oid, mid, v), oid, mid=mid)
        if res.ok or res.reason_enum in (T.Reason.REPLAY, T.Reason.DUPLICATE):
            v.committed = True  # REPLAY: this very commit landed before the restart
        else:
            del self.validations[(oid, mid)]  # refused: nothing to open later
        self._save_order(oid)

    def reported(self, score: int, model_type: str) -> int:
        """The score to report: the true one, shifted by the demo adversary's offset within the
        validation function's range (an lm-bits-per-byte score goes above 1,000,000)."""
        from pot.ml.validation import REGISTRY

        return min(REGISTRY[model_type].max_score, max(0, score + self.config.dishonest_offset))

    async def validate_order(self, view) -> None:
        """Score and commit every model of the order not yet committed."""
        cyc = await self.gateway.cycle(view.order.order_id)
        if cyc is None or cyc.test_cid is None:
            return
        oid = cyc.order.order_id
        for m in cyc.models:
            if m.miner == self.address:
                continue
            known = self.validations.get((oid, m.mid))
            if known is not None:
                if not known.committed:
                    await self._send_commit(oid, m.mid, known)
                continue
            outcome = await self.scorer.score(m.mid, m.model_cid, cyc.test_cid, cyc.order.model_type_name,
                                              cyc.order.spec_cid)
            if isinstance(outcome, Abstain):
                # this machine could not score it: commit nothing (0 would be a lie), go on with the rest
                self.emit(Kind.ABSTAIN, oid, mid=m.mid, reason=outcome.reason, retry=outcome.retry)
                continue
            true_score = outcome.score
            score = self.reported(true_score, cyc.order.model_type_name)
            note = {"note": outcome.reason} if isinstance(outcome, Invalid) else {}
            self.emit(Kind.SCORE, oid, mid=m.mid, score=true_score, reported=score, **note)
            v = Validation(score, true_score, os.urandom(32))
            # on disk before it is sent: a commitment the validator cannot open loses the validation
            self.validations[(oid, m.mid)] = v
            self._save_order(oid)
            await self._send_commit(oid, m.mid, v)

    async def reveal_order(self, order_id: int) -> None:
        for (oid, mid), v in list(self.validations.items()):
            if oid != order_id or v.revealed:
                continue
            msg = T.ValidationReveal(oid, self.address, mid, v.score, v.salt, self.config.v_stake)
            res = await self.send(Kind.VALIDATION_REVEAL, msg, oid, mid=mid, score=v.score, v_stake=self.config.v_stake)
            v.revealed = res.ok or res.reason_enum in (T.Reason.DUPLICATE, T.Reason.REPLAY)
            if v.revealed:
                self._save_order(oid)
                self.watch(oid)

    def outcome_of(self, order_id: int, outcome: dict) -> list:
        reported = {"0x" + mid.hex(): v.score for (oid, mid), v in self.validations.items()
                    if oid == order_id and v.revealed}
        return validator_outcome(outcome, self.address, reported)

    async def close(self) -> None:
        self.scorer.close()
        await super().close()

    async def _step(self) -> None:
        if not await self.ensure_staked():
            return
        views = await self.gateway.orders("active")
        active = {v.order.order_id for v in views}
        for oid in {k[0] for k in self.validations} - active - self.done_orders:
            self._forget(oid)  # settled or cancelled while we were away
        for view in views:
            oid = view.order.order_id
            if oid in self.done_orders or view.t3 is None:
                continue
            ph = self.track_phase(view.order, view.t3)
            if ph is Phase.VALIDATION:
                await self.validate_order(view)
            elif ph is Phase.VALIDATION_REVEAL:
                await self.reveal_order(oid)
            elif ph in (Phase.CHALLENGE, Phase.CHALLENGE_REVEAL, Phase.FINALIZATION):
                self._forget(oid)  # the reveal window closed: the salts are spent


async def run(config: ValidatorConfig) -> int | None:
    """``pot validator run``: the validator against the committee's API, until SIGINT/SIGTERM."""
    return await run_worker(Validator, config)
