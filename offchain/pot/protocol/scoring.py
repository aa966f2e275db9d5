"""What scoring one revealed model can come to (ARCHITECTURE.md §3), and what each outcome reports.

Validators, verifiers and the committee's PoT.Verify all score models, and all must treat a
failure alike, or honest nodes disagree and get slashed:

- :class:`Scored`: the validation function gave a score.
- :class:`Invalid`: a deterministic failure, the same on every honest machine: the file does not
  hash to its mid, does not parse, does not match the order's spec, exceeds a limit. It scores 0,
  with the reason.
- :class:`Abstain`: a failure of this machine, not of the model: out of memory, out of time, the
  file cannot be fetched now, the scorer crashed. It never scores 0 (that would slash honest
  validators whose machines coped); the node sends nothing for that model. ``retry`` says whether
  asking again later may help (a fetch) or would only repeat the same failure (a time limit).

Neither kind of failure stops the scoring of the other models of an order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Scores are integers the validation function defines: ppm for accuracy, up to 8,000,000 for
#: lm-bits-per-byte (8 bits minus the bits per byte, in millionths). Every one fits a uint64.
MAX_SCORE = 2**64 - 1


@dataclass(frozen=True)
class Scored:
    score: int

    def __post_init__(self) -> None:
        if type(self.score) is not int or not 0 <= self.score <= MAX_SCORE:
            raise ValueError(f"a score is an integer in [0, 2**64), got {self.score!r}")


@dataclass(frozen=True)
class Invalid:
    reason: str

    #: what a validator reports and PoT.Verify records for a model that is deterministically bad
    score = 0


@dataclass(frozen=True)
class Abstain:
    reason: str
    retry: bool = False


Outcome = Scored | Invalid | Abstain


def reported_score(outcome: Outcome) -> int | None:
    """The score to commit or send for this outcome; None: send nothing (abstain)."""
    if isinstance(outcome, Abstain):
        return None
    return outcome.score


def to_json(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Scored):
        return {"outcome": "scored", "score": outcome.score}
    if isinstance(outcome, Invalid):
        return {"outcome": "invalid", "reason": outcome.reason}
    return {"outcome": "abstain", "reason": outcome.reason, "retry": outcome.retry}


def from_json(d: Any) -> Outcome:
    """The inverse of :func:`to_json`; anything else is an Abstain (the scorer misbehaved)."""
    kind = d.get("outcome") if isinstance(d, dict) else None
    try:
        if kind == "scored":
            return Scored(d["score"])
        if kind == "invalid" and isinstance(d.get("reason"), str):
            return Invalid(d["reason"])
        if kind == "abstain" and isinstance(d.get("reason"), str):
            return Abstain(d["reason"], bool(d.get("retry")))
    except (KeyError, ValueError):
        pass
    return Abstain(f"scorer gave an unreadable outcome: {str(d)[:200]}")
