"""The verifier: recompute every revealed validation and challenge a wrong one on-chain.

From the validation reveals on it recomputes each model's score with the order's validation
function (the same deterministic code validators run). In the challenge window it commits a
challenge (``ChallengeManager.commitChallenge``, locking cStake) against the wrong validation
with the most vStake behind it — the chain takes one challenge per verifier and order — and
reveals it in the challenge-reveal window. The commitment binds the verifier's address, so a
watcher cannot copy the reveal. An upheld challenge returns cStake and pays a share of the
slashed vStake; a rejected one forfeits cStake, so the verifier challenges only what it
recomputed itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pot.protocol import types as T
from pot.protocol.ids import challenge_commitment, vid
from pot.protocol.timeline import Phase
from pot.roles.base import Worker, run_worker
from pot.roles.config import VerifierConfig
from pot.roles.scoring import Scorer, Unavailable


@dataclass
class OpenChallenge:
    vid: bytes
    salt: bytes
    validator: str
    mid: bytes
    reported: int
    recomputed: int
    revealed: bool = False


class Verifier(Worker):
    role = "verifier"
    config_class = VerifierConfig
    stake_role = T.VERIFIER

    def __init__(self, config: VerifierConfig | None = None, **kw) -> None:
        super().__init__(config, **kw)
        if self.chain is None:
            raise ValueError("a verifier challenges on-chain: it needs chain access")
        self.scorer = Scorer(self.store)
        self.challenges: dict[int, OpenChallenge] = {}
        self.checked: set[int] = set()
        self.done_orders: set[int] = set()

    async def wrong_validations(self, view) -> list[tuple[T.ValidationReveal, int]]:
        """(validation, recomputed score) for every revealed validation whose score is wrong."""
        oid = view.order.order_id
        cyc = await self.gateway.cycle(oid)
        if cyc is None or cyc.test_cid is None:
            return []
        wrong = []
        for v in await self.gateway.validations(oid):
            m = cyc.model(v.mid)
            if m is None:
                continue
            try:
                mine, _note = await self.scorer.score(v.mid, m.model_cid, cyc.test_cid, cyc.order.model_type_name)
            except Unavailable as exc:
                self.emit("unavailable", oid, mid=v.mid, error=str(exc))
                continue
            if oid not in self.checked:
                self.emit("checked", oid, validator=v.validator, mid=v.mid, reported=v.score, recomputed=mine)
            if mine != v.score:
                wrong.append((v, mine))
        self.checked.add(oid)
        return wrong

    async def challenge(self, order_id: int, target: T.ValidationReveal, recomputed: int) -> None:
        c = self.chain.contracts
        salt = os.urandom(32)
        v_id = vid(order_id, target.validator, target.mid)
        commitment = challenge_commitment(order_id, self.address, v_id, salt)
        c_stake = await self.chain.call(c.challenges.call, "challengeStake")
        if c_stake:
            await self.chain.call(c.token.ensure_allowance, self.chain.sender, c.challenges.address, c_stake)
        # remembered before the transaction: a crash between the two must not lose the salt
        self.challenges[order_id] = OpenChallenge(v_id, salt, target.validator, target.mid, target.score, recomputed)
        try:
            res = await self.chain.call(c.challenges.commit_challenge, self.chain.sender, order_id, commitment)
        except Exception as exc:  # noqa: BLE001 - ChainRevert names the contract's reason
            del self.challenges[order_id]
            self.emit("rejected", order_id, what="challenge-commit", reason=type(exc).__name__, text=str(exc))
            return
        self.emit("challenge-commit", order_id, validator=target.validator, mid=target.mid,
                  reported=target.score, recomputed=recomputed, c_stake=c_stake, tx=res.tx_hash)

    async def reveal(self, order_id: int) -> None:
        ch = self.challenges[order_id]
        c = self.chain.contracts
        try:
            res = await self.chain.call(c.challenges.reveal_challenge, self.chain.sender, order_id, ch.vid, ch.salt)
        except Exception as exc:  # noqa: BLE001
            self.emit("rejected", order_id, what="challenge-reveal", reason=type(exc).__name__, text=str(exc))
            return
        ch.revealed = True
        self.emit("challenge-reveal", order_id, vid=ch.vid, validator=ch.validator, tx=res.tx_hash)

    async def _step(self) -> None:
        if not await self.ensure_staked():
            return
        for view in await self.gateway.orders("active"):
            oid = view.order.order_id
            if oid in self.done_orders or view.t3 is None:
                continue
            ph = self.track_phase(view.order, view.t3)
            if ph is Phase.CHALLENGE and oid not in self.challenges:
                wrong = [(v, s) for v, s in await self.wrong_validations(view) if v.validator != self.address]
                if wrong:
                    # one challenge per order on-chain: the one with the most stake behind it
                    target, mine = max(wrong, key=lambda vs: vs[0].v_stake)
                    await self.challenge(oid, target, mine)
                else:
                    self.done_orders.add(oid)
            elif ph is Phase.CHALLENGE_REVEAL and oid in self.challenges and not self.challenges[oid].revealed:
                await self.reveal(oid)
            elif ph is Phase.FINALIZATION:
                self.done_orders.add(oid)


async def run(config: VerifierConfig) -> None:
    """``pot verifier run``: the verifier against the committee's API, until SIGINT/SIGTERM."""
    await run_worker(Verifier, config)
