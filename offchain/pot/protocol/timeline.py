"""The task-cycle timeline (ARCHITECTURE.md §3, CONVENTIONS.md): every window is half-open ``[start, end)``.

The same formulas live in Solidity (OrderBook / ChallengeManager); nowhere else in Python.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pot.protocol.types import Order


class Phase(str, enum.Enum):
    NOT_STARTED = "not-started"            # ledger time before t0 (clock skew)
    TRAINING = "training"                  # [t0, trainEnd): ClaimCommit
    MODEL_REVEAL = "model-reveal"          # [trainEnd, revealEnd): ClaimReveal
    TEST_RELEASE = "test-release"          # [revealEnd, t3 or releaseEnd): client releases test data
    VALIDATION = "validation"              # [t3, validateEnd): ValidationCommit
    VALIDATION_REVEAL = "validation-reveal"  # [validateEnd, validationRevealEnd): ValidationReveal
    CHALLENGE = "challenge"                # [validationRevealEnd, challengeEnd): on-chain commit
    CHALLENGE_REVEAL = "challenge-reveal"  # [challengeEnd, challengeRevealEnd): on-chain reveal
    FINALIZATION = "finalization"          # at/after challengeRevealEnd, or releaseEnd without t3


@dataclass(frozen=True)
class Timeline:
    t0: int
    train_end: int
    reveal_end: int
    release_end: int
    t3: int | None
    validate_end: int | None
    validation_reveal_end: int | None
    challenge_end: int | None
    challenge_reveal_end: int | None

    @property
    def final(self) -> int:
        """When the order may be finalized: challengeRevealEnd, or releaseEnd when the test data
        never came (the client defaulted)."""
        return self.challenge_reveal_end if self.challenge_reveal_end is not None else self.release_end


def timeline(order: Order, t3: int | None) -> Timeline:
    train_end = order.t0 + order.train_duration
    reveal_end = train_end + order.reveal_duration
    release_end = reveal_end + order.reveal_duration
    if t3 is None:
        return Timeline(order.t0, train_end, reveal_end, release_end, None, None, None, None, None)
    validate_end = t3 + order.validate_duration
    validation_reveal_end = validate_end + order.reveal_duration
    challenge_end = validation_reveal_end + order.challenge_duration
    return Timeline(order.t0, train_end, reveal_end, release_end, t3, validate_end,
                    validation_reveal_end, challenge_end, challenge_end + order.reveal_duration)


def phase(order: Order, t3: int | None, now: int) -> Phase:
    """The phase of ``order`` at ledger time ``now`` (``t3`` = test release time, if any)."""
    tl = timeline(order, t3)
    if now < tl.t0:
        return Phase.NOT_STARTED
    if now < tl.train_end:
        return Phase.TRAINING
    if now < tl.reveal_end:
        return Phase.MODEL_REVEAL
    if tl.t3 is None:
        return Phase.TEST_RELEASE if now < tl.release_end else Phase.FINALIZATION
    if now < tl.t3:
        return Phase.TEST_RELEASE
    if now < tl.validate_end:
        return Phase.VALIDATION
    if now < tl.validation_reveal_end:
        return Phase.VALIDATION_REVEAL
    if now < tl.challenge_end:
        return Phase.CHALLENGE
    if now < tl.challenge_reveal_end:
        return Phase.CHALLENGE_REVEAL
    return Phase.FINALIZATION


def t3_valid(order: Order, t3: int) -> bool:
    """releaseTestData is only valid inside ``[revealEnd, releaseEnd)``."""
    tl = timeline(order, None)
    return tl.reveal_end <= t3 < tl.release_end
