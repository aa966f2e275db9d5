"""The verifier: recompute every revealed validation and challenge a wrong one on-chain.

From the validation reveals on it recomputes each model's score with the order's validation
function (the same deterministic code validators run). In the challenge window it commits a
challenge (``ChallengeManager.commitChallenge``, locking cStake) against the wrong validation
with the most vStake behind it — the chain takes one challenge per verifier and order — and
reveals it in the challenge-reveal window. The commitment binds the verifier's address, so a
watcher cannot copy the reveal. An upheld challenge returns cStake and pays a share of the
slashed vStake; a rejected one forfeits cStake, so the verifier challenges only what it
recomputed itself.

The challenge's salt and target go to ``<state_dir>/verifier/<address>/order-<id>.json`` before
the commit transaction, so a restarted verifier still reveals its on-chain challenge (an
unrevealed one forfeits cStake); the file goes once the order reached finalization.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pot.protocol import types as T
from pot.protocol.ids import challenge_commitment, vid
from pot.protocol.scoring import Abstain
from pot.protocol.timeline import Phase
from pot.roles.base import Worker, key_order, order_key, run_worker
from pot.roles.config import VerifierConfig
from pot.roles.events import Kind
from pot.roles.outcome import verifier_outcome
from pot.roles.scoring import Scorer


@dataclass
class OpenChallenge:
    vid: bytes
    salt: bytes
    validator: str
    mid: bytes
    reported: int
    recomputed: int
    revealed: bool = False
    committed: bool = False   # the chain holds the commitment (False: sent, outcome unknown)

    def commitment(self, order_id: int, challenger: str) -> bytes:
        return challenge_commitment(order_id, challenger, self.vid, self.salt)


class Verifier(Worker):
    role = "verifier"
    config_class = VerifierConfig
    stake_role = T.VERIFIER

    def __init__(self, config: VerifierConfig | None = None, **kw) -> None:
        super().__init__(config, **kw)
        if self.chain is None:
            raise ValueError("a verifier challenges on-chain: it needs chain access")
        self.scorer = Scorer(self.store, self.config.scoring_limits)
        self.challenges: dict[int, OpenChallenge] = {}
        self.checked: set[int] = set()
        self.done_orders: set[int] = set()
        self._load_state()

    # -- state (the salt must survive a restart until the reveal) ----------------------------

    def _save_order(self, order_id: int) -> None:
        ch = self.challenges.get(order_id)
        if ch is None or not self.state.enabled:
            return
        self.state.save(order_key(order_id), {
            "orderId": order_id, "vid": "0x" + ch.vid.hex(), "salt": "0x" + ch.salt.hex(),
            "validator": ch.validator, "mid": "0x" + ch.mid.hex(), "reported": ch.reported,
            "recomputed": ch.recomputed, "committed": ch.committed, "revealed": ch.revealed})

    def _load_state(self) -> None:
        for key, d in self.state.load_all().items():
            oid = key_order(key)
            if oid is None:
                continue
            try:
                ch = OpenChallenge(bytes.fromhex(d["vid"][2:]), bytes.fromhex(d["salt"][2:]), d["validator"],
                                   bytes.fromhex(d["mid"][2:]), int(d["reported"]), int(d["recomputed"]),
                                   bool(d.get("revealed")), bool(d.get("committed")))
            except (KeyError, TypeError, ValueError) as exc:
                self.emit(Kind.ERROR, oid, error=f"state {key}: bad challenge entry: {exc}")
                continue
            self.challenges[oid] = ch
            self.checked.add(oid)
            if ch.committed:
                self.watch(oid)
            self.emit(Kind.RESUMED, oid, vid=ch.vid, validator=ch.validator, committed=ch.committed,
                      revealed=ch.revealed)

    def _forget(self, order_id: int) -> None:
        self.done_orders.add(order_id)
        self.state.remove(order_key(order_id))

    async def _on_chain(self, order_id: int, ch: OpenChallenge) -> bool | None:
        """Whether the chain holds this challenge's commitment (None: it holds another one)."""
        c = self.chain.contracts
        got = await self.chain.call(c.challenges.get_challenge, order_id, self.address)
        if not got["stake"]:
            return False
        return True if bytes(got["commitment"]) == ch.commitment(order_id, self.address) else None

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
            outcome = await self.scorer.score(v.mid, m.model_cid, cyc.test_cid, cyc.order.model_type_name,
                                              cyc.order.spec_cid)
            if isinstance(outcome, Abstain):
                # a challenge stakes cStake on the recomputed score: never on one we do not have
                self.emit(Kind.ABSTAIN, oid, mid=v.mid, reason=outcome.reason, retry=outcome.retry)
                continue
            mine = outcome.score
            if oid not in self.checked:
                self.emit(Kind.CHECKED, oid, validator=v.validator, mid=v.mid, reported=v.score, recomputed=mine)
            if mine != v.score:
                wrong.append((v, mine))
        self.checked.add(oid)
        return wrong

    async def challenge(self, order_id: int, target: T.ValidationReveal, recomputed: int) -> None:
        ch = OpenChallenge(vid(order_id, target.validator, target.mid), os.urandom(32), target.validator,
                           target.mid, target.score, recomputed)
        # remembered (on disk too) before the transaction: a crash between the two must not lose the salt
        self.challenges[order_id] = ch
        self._save_order(order_id)
        await self._commit(order_id, ch)

    async def _commit(self, order_id: int, ch: OpenChallenge) -> None:
        """Send the (saved) challenge's commitment on-chain, locking cStake."""
        c = self.chain.contracts
        c_stake = await self.chain.call(c.challenges.call, "challengeStake")
        if c_stake:
            await self.chain.call(c.token.ensure_allowance, self.chain.sender, c.challenges.address, c_stake)
        try:
            res = await self.chain.call(c.challenges.commit_challenge, self.chain.sender, order_id,
                                        ch.commitment(order_id, self.address))
        except Exception as exc:  # noqa: BLE001 - ChainRevert names the contract's reason
            try:
                landed = await self._on_chain(order_id, ch)
            except Exception:  # noqa: BLE001 - cannot tell: keep the salt, look again next tick
                self.emit(Kind.REJECTED, order_id, exc=exc, what=Kind.CHALLENGE_COMMIT, reason=type(exc).__name__,
                          text=str(exc))
                return
            if landed:
                ch.committed = True
                self._save_order(order_id)
                return
            del self.challenges[order_id]
            self.state.remove(order_key(order_id))
            self.emit(Kind.REJECTED, order_id, exc=exc, what=Kind.CHALLENGE_COMMIT, reason=type(exc).__name__,
                      text=str(exc))
            return
        ch.committed = True
        self._save_order(order_id)
        self.watch(order_id)
        self.emit(Kind.CHALLENGE_COMMIT, order_id, validator=ch.validator, mid=ch.mid,
                  reported=ch.reported, recomputed=ch.recomputed, c_stake=c_stake, tx=res.tx_hash)

    async def _resume_commit(self, order_id: int, ch: OpenChallenge) -> None:
        """A challenge saved but not known to be on-chain (a restart mid-transaction): the chain
        says whether it landed; if not, the same commitment is sent again."""
        landed = await self._on_chain(order_id, ch)
        if landed:
            ch.committed = True
            self._save_order(order_id)
        elif landed is None:  # the chain holds a commitment this state cannot open
            self.emit(Kind.ERROR, order_id, error="the on-chain challenge is not the one in the state directory")
            ch.committed = True  # nothing else can be done: one challenge per verifier and order
        else:
            await self._commit(order_id, ch)

    async def reveal(self, order_id: int) -> None:
        ch = self.challenges[order_id]
        c = self.chain.contracts
        try:
            res = await self.chain.call(c.challenges.reveal_challenge, self.chain.sender, order_id, ch.vid, ch.salt)
        except Exception as exc:  # noqa: BLE001
            self.emit(Kind.REJECTED, order_id, exc=exc, what=Kind.CHALLENGE_REVEAL, reason=type(exc).__name__,
                      text=str(exc))
            return
        ch.revealed = True
        self._save_order(order_id)
        self.emit(Kind.CHALLENGE_REVEAL, order_id, vid=ch.vid, validator=ch.validator, tx=res.tx_hash)

    def outcome_of(self, order_id: int, outcome: dict) -> list:
        return verifier_outcome(outcome, self.address)

    async def close(self) -> None:
        self.scorer.close()
        await super().close()

    async def _step(self) -> None:
        if not await self.ensure_staked():
            return
        views = await self.gateway.orders("active")
        for oid in set(self.challenges) - {v.order.order_id for v in views} - self.done_orders:
            self._forget(oid)  # settled or cancelled while we were away
        for view in views:
            oid = view.order.order_id
            if oid in self.done_orders or view.t3 is None:
                continue
            ph = self.track_phase(view.order, view.t3)
            if ph is Phase.CHALLENGE and oid in self.challenges and not self.challenges[oid].committed:
                await self._resume_commit(oid, self.challenges[oid])
            elif ph is Phase.CHALLENGE and oid not in self.challenges:
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
                self._forget(oid)


async def run(config: VerifierConfig) -> int | None:
    """``pot verifier run``: the verifier against the committee's API, until SIGINT/SIGTERM."""
    return await run_worker(Verifier, config)
