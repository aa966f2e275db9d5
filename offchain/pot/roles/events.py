"""What the workers and a replica report as they go: typed events, for the demo's display, for
tests and for logs. A display decides by an event's ``kind`` and, for failures, by the type of
the exception it carries (``Event.exc``), never by matching the text of a message.

``describe`` says what an event means in plain words ("order 6: you won — 80 POT paid in tx
0x…"): what ``pot miner run`` and the other workers print.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class Kind(enum.StrEnum):
    """A worker's event kinds (StrEnum: ``Kind.REJECTED == "rejected"``)."""
    # every worker
    STARTED = "started"
    STOPPED = "stopped"
    STAKED = "staked"
    PHASE = "phase"
    RESUMED = "resumed"
    REJECTED = "rejected"          # the ledger or the chain refused what the worker sent
    RATE_LIMITED = "rate-limited"  # the committee asked the worker to slow down (HTTP 429)
    ERROR = "error"                # a step failed; ``exc`` says how
    UNAVAILABLE = "unavailable"    # a model or test set could not be fetched yet
    ABSTAIN = "abstain"            # this machine could not score a model (resource failure): no score sent
    MISSED = "missed"
    PUBLISHED = "published"        # content handed to the committee (2f+1 replicas hold it)
    # what a settled order meant for this worker (roles.outcome)
    WON = "won"                    # miner: the winner
    LOST = "lost"                  # miner: another model won
    PAID = "paid"                  # validator: its share of the reward
    SLASHED = "slashed"            # validator: vStake taken for a wrong score
    CHALLENGE_UPHELD = "challenge-upheld"
    CHALLENGE_REJECTED = "challenge-rejected"
    SETTLED = "settled"            # any other ending (refund, split, nothing for this worker)
    # client
    TASK_PREPARED = "task-prepared"  # own data decoded and checked, before anything is uploaded
    ORDER_PLACED = "order-placed"
    TEST_RELEASED = "test-released"
    NO_WINNER = "no-winner"
    MODEL_FETCHED = "model-fetched"
    # miner
    ORDER_PICKED = "order-picked"
    ORDER_SKIPPED = "order-skipped"
    TRAINING = "training"
    TRAINED = "trained"
    COMMIT = "commit"
    REVEAL = "reveal"
    # validator
    SCORE = "score"
    VALIDATION_COMMIT = "validation-commit"
    VALIDATION_REVEAL = "validation-reveal"
    # verifier
    CHECKED = "checked"
    CHALLENGE_COMMIT = "challenge-commit"
    CHALLENGE_REVEAL = "challenge-reveal"
    # the demo's thief
    STEAL = "steal"


@dataclass(frozen=True)
class Event:
    """Something a worker did or saw."""
    role: str
    address: str
    kind: Kind
    order_id: int | None
    time: int
    data: dict[str, Any] = field(default_factory=dict)
    #: the failure behind an ERROR, REJECTED (by the chain) or RATE_LIMITED event
    exc: BaseException | None = None

    def __str__(self) -> str:
        order = f" order={self.order_id}" if self.order_id is not None else ""
        fields = " ".join(f"{k}={_fmt(v)}" for k, v in self.data.items())
        return f"{self.role} {self.address[:10]}{order} {self.kind}" + (f" {fields}" if fields else "")


def _fmt(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()[:16] + "…"
    return str(v)


# --- plain words ------------------------------------------------------------------------------

def short(value: str | bytes | None) -> str:
    """``0x14dC…3c2A`` for an address, ``0x9ceff30f…`` for a hash."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else "0x" + bytes(value).hex()
    if len(text) == 42:
        return f"{text[:6]}…{text[-4:]}"
    return text[:10] + "…" if len(text) > 12 else text


def _pot(wei: int) -> str:
    from pot.protocol.units import format_pot

    return format_pot(wei)


def _ppm(score: int | None) -> str:
    return "?" if score is None else f"{score:,}"


def _pct(share: float | None) -> str:
    return "?" if share is None else f"{100 * share:.2f}%"


def _tx(d: dict[str, Any]) -> str:
    return f" in tx {d['tx']}" if d.get("tx") else ""


_WORDS: dict[Kind, Callable[[dict[str, Any]], str]] = {
    Kind.STAKED: lambda d: f"registered in StakeRegistry with {_pot(d['amount'])} more stake",
    Kind.RESUMED: lambda d: "picked up where the last run stopped (state directory)",
    Kind.REJECTED: lambda d: (f"the network refused your {d.get('message') or d.get('what')}: {d.get('reason')}"
                              + (f" — {d['text']}" if d.get("text") else "")),
    Kind.RATE_LIMITED: lambda d: f"the committee asked to slow down: waiting {d.get('retry_after', 0):.0f} s",
    Kind.ERROR: lambda d: f"failed: {d.get('error')}",
    Kind.UNAVAILABLE: lambda d: f"{d.get('what', 'content')} not available yet: {d.get('why', '')}",
    Kind.ABSTAIN: lambda d: f"could not score model {short(d.get('mid'))} here ({d.get('reason')}): no score sent",
    Kind.MISSED: lambda d: f"missed the {d.get('what')} window (now {d.get('phase')})",
    Kind.PUBLISHED: lambda d: (f"{d['what']} uploaded to the committee ({d['size']:,} bytes, {d['replicas']} "
                               f"replicas hold it)"),
    Kind.ORDER_PLACED: lambda d: f"placed: {_pot(d['reward'])} escrowed, {d.get('train_duration')} s of training",
    Kind.TEST_RELEASED: lambda d: f"test set released on-chain (t3 = {d['t3']})",
    Kind.NO_WINNER: lambda d: "settled without a winner: the reward went back",
    Kind.MODEL_FETCHED: lambda d: (f"winner {short(d['winner'])}'s model fetched to {d['path']}: "
                                   f"{_ppm(d['local_score'])} ppm on your test set, network {_ppm(d['network_score'])}"),
    Kind.ORDER_PICKED: lambda d: (f"picked: reward {_pot(d['reward'])}, {d['train_duration']} s of training"),
    Kind.ORDER_SKIPPED: lambda d: f"skipped: {d['why']}",
    Kind.TRAINING: lambda d: f"training {d['arch']} on {d['samples']:,} samples for {d['seconds']} s",
    Kind.TRAINED: lambda d: (f"training done: {d['epochs']} epochs (stopped by {d['stopped_by']}), best holdout "
                             f"{_pct(d.get('holdout_accuracy'))}"),
    Kind.COMMIT: lambda d: (f"committed a better model {short(d['mid'])}"
                            + (f" (holdout {_pct(d['holdout_accuracy'])})" if "holdout_accuracy" in d else "")),
    Kind.REVEAL: lambda d: f"revealed model {short(d['mid'])}" + (f" (cid {d['cid']})" if d.get("cid") else ""),
    Kind.SCORE: lambda d: (f"scored model {short(d['mid'])}: {_ppm(d['score'])} ppm"
                           + (f", reports {_ppm(d['reported'])}" if d["reported"] != d["score"] else "")
                           + (f" ({d['note']})" if d.get("note") else "")),
    Kind.VALIDATION_COMMIT: lambda d: f"committed its score for {short(d['mid'])} (hidden until the reveal)",
    Kind.VALIDATION_REVEAL: lambda d: (f"revealed {_ppm(d['score'])} ppm for {short(d['mid'])}, "
                                       f"{_pot(d['v_stake'])} vStake behind it"),
    Kind.CHECKED: lambda d: (f"re-scored {short(d['validator'])}'s validation of {short(d['mid'])}: reported "
                             f"{_ppm(d['reported'])}, recomputed {_ppm(d['recomputed'])}"
                             + ("" if d["reported"] == d["recomputed"] else " — WRONG")),
    Kind.CHALLENGE_COMMIT: lambda d: (f"challenged {short(d['validator'])} on-chain (reported {_ppm(d['reported'])}, "
                                      f"recomputed {_ppm(d['recomputed'])}), {_pot(d['c_stake'])} cStake locked"
                                      + _tx(d)),
    Kind.CHALLENGE_REVEAL: lambda d: f"revealed the challenge of {short(d['validator'])}" + _tx(d),
    Kind.WON: lambda d: f"you won — {_pot(d['amount'])} paid" + _tx(d)
                        + (f" ({_ppm(d['score'])} ppm)" if d.get("score") is not None else ""),
    Kind.LOST: lambda d: (f"lost to {short(d['winner'])} ("
                          + (f"{_ppm(d['winner_score'])} vs your {_ppm(d['score'])} ppm)" if d.get("score") is not None
                             else f"{_ppm(d['winner_score'])} ppm; your model {d.get('why', 'was not scored')})")),
    Kind.PAID: lambda d: f"paid {_pot(d['amount'])} for validating the winner" + _tx(d),
    Kind.SLASHED: lambda d: (f"slashed {_pot(d['amount'])}: your score {_ppm(d.get('reported'))} ppm for "
                             f"{short(d.get('mid'))} was wrong (the committee's: {_ppm(d.get('correct'))})" + _tx(d)),
    Kind.CHALLENGE_UPHELD: lambda d: (f"challenge upheld — {short(d['validator'])} was slashed; {_pot(d['amount'])} "
                                      "paid to you and your cStake returned" + _tx(d)),
    Kind.CHALLENGE_REJECTED: lambda d: (f"challenge rejected — {short(d['validator'])}'s score stands; your "
                                        "cStake went to the validator and the treasury" + _tx(d)),
    Kind.SETTLED: lambda d: d["note"] + _tx(d),
}


def describe(ev: Event) -> str | None:
    """The event in plain words, prefixed with its order ("order 6: you won — 80 POT paid in tx
    0x…"); None for events that only matter to a log (phases, start and stop)."""
    if ev.kind is Kind.STARTED:
        return f"{ev.role} {ev.address} started"
    if ev.kind is Kind.STOPPED:
        return f"{ev.role} stopped; what it must remember is saved"
    render = _WORDS.get(ev.kind)
    if render is None:
        return None
    try:
        text = render(ev.data)
    except (KeyError, TypeError, ValueError):  # an event from an older worker: the raw form says it all
        return None
    return f"order {ev.order_id}: {text}" if ev.order_id is not None else text


EventCallback = Callable[[Event], Awaitable[None] | None]


class CommitteeEvent(enum.StrEnum):
    """What a replica reports besides its log lines."""
    VIEW_CHANGED = "view-changed"
    SETTLEMENT_CREATED = "settlement-created"


CommitteeEventCallback = Callable[[CommitteeEvent, dict[str, Any]], None]
