"""PoT.Finalize: from an order's cycle data to the settlement the committee signs.

Integer token units throughout; every order's payouts sum exactly to its escrow. The rules
(DESIGN.md §3, CONVENTIONS.md "Default cases", and the choices noted in docs):

- score of a model: the score its validators agree on. Agreement must be unanimous among its
  revealed validations; any disagreement, any revealed challenge against one of them, or no
  validation at all makes the model *disputed*, and then the committee's PoT.Verify result
  (2f+1 equal replicas, ``OrderCycle.verified``) is the score and it stands. Unanimity rather
  than a stake-weighted majority: a majority could be bought by one rich validator, PoT.Verify
  cannot.
- winner: the highest score; a tie goes to the earlier commitment (ledger order).
- payout of R: ``taxBps`` of R split equally among committee members (integer division);
  ``validatorBps`` of R to the validators that scored the winner correctly, pro rata to vStake;
  the winner's miner gets the rest, all rounding dust included.
- a validation whose revealed score differs from the standing score loses its whole vStake.
  If challenges against it were upheld, ``slashToChallengerBps`` of it goes to those challengers
  (equal shares) and the rest (dust included) to the treasury; otherwise it all goes to the
  treasury (it was caught by disagreement, no challenger did the work).
- every committed challenge of the order gets a verdict so no cStake stays locked: upheld when
  the named validation's score was wrong; rejected when it was right, when the challenge was
  never revealed, or when its vid names no revealed validation — the last two have no validator
  to pay, so ``validator`` is the treasury (all of the forfeited cStake goes there).
- default cases: cancelled or no ClaimCommit at all -> all of R back to the client, no tax;
  claims but no valid reveal -> R minus tax to the client; valid reveals but no test release by
  releaseEnd -> R minus tax split equally among those miners, dust to the earliest commitment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_utils import to_checksum_address

from pot.protocol.ids import ZERO_BYTES32, vid
from pot.protocol.settlement import (ZERO_ADDRESS, ChallengeVerdict, OrderSettlement, Payout, Settlement,
                                     Slash)
from pot.protocol.types import (AGGREGATOR, MINER, VALIDATOR, VERIFIER, Challenge, ClaimCommit, ClaimReveal,
                                Order, ValidationReveal)

BPS = 10_000


@dataclass(frozen=True)
class Params:
    """Protocol parameters (changed only by the committee's threshold on-chain)."""
    tax_bps: int = 500
    validator_bps: int = 1500
    slash_to_challenger_bps: int = 5000
    min_reveal_duration: int = 1
    #: stake needed per role (bitmask value -> token units)
    min_stake: Mapping[int, int] = field(default_factory=lambda: {MINER: 1, VALIDATOR: 1, VERIFIER: 1,
                                                                  AGGREGATOR: 1})
    #: receives slashed stake and forfeited cStake not owed to anyone
    treasury: str = "0x000000000000000000000000000000000000dEaD"
    #: extra seconds after the last window before finalizing, so chain events still inside the
    #: window but waiting for `confirmations` blocks reach the ledger first
    finalize_delay: int = 0

    def __post_init__(self) -> None:
        for name in ("tax_bps", "validator_bps", "slash_to_challenger_bps"):
            v = getattr(self, name)
            if type(v) is not int or not 0 <= v <= BPS:
                raise ValueError(f"{name} must be an int in [0, {BPS}]")
        if self.tax_bps + self.validator_bps > BPS:
            raise ValueError("tax_bps + validator_bps must not exceed 10000")
        if self.min_reveal_duration < 1 or self.finalize_delay < 0:
            raise ValueError("min_reveal_duration must be >= 1 and finalize_delay >= 0")
        object.__setattr__(self, "treasury", to_checksum_address(self.treasury))
        object.__setattr__(self, "min_stake", dict(self.min_stake))

    def as_json(self) -> dict:
        return {"taxBps": self.tax_bps, "validatorBps": self.validator_bps,
                "slashToChallengerBps": self.slash_to_challenger_bps,
                "minRevealDuration": self.min_reveal_duration,
                "minStake": {str(k): v for k, v in sorted(self.min_stake.items())},
                "treasury": self.treasury, "finalizeDelay": self.finalize_delay}


@dataclass(frozen=True)
class OrderCycle:
    """The paper's order cycle data: everything finalize needs about one order."""
    order: Order
    t3: int | None = None
    claims: tuple[ClaimCommit, ...] = ()          # the standing commit of each miner, ledger order
    reveals: tuple[ClaimReveal, ...] = ()         # reveals that opened their commitment
    validations: tuple[ValidationReveal, ...] = ()  # reveals that opened their commitment, ledger order
    challenges: tuple[Challenge, ...] = ()        # from the chain, ledger order
    verified: Mapping[bytes, int] = field(default_factory=dict)  # mid -> PoT.Verify score (2f+1)
    cancelled: bool = False


class NeedsVerification(Exception):
    """finalize was called before the committee's PoT.Verify result for disputed models."""

    def __init__(self, order_id: int, mids: Sequence[bytes]) -> None:
        super().__init__(f"order {order_id}: models awaiting PoT.Verify: {[m.hex() for m in mids]}")
        self.order_id = order_id
        self.mids = tuple(mids)


def _claim_rank(cycle: OrderCycle) -> dict[str, int]:
    return {c.miner: i for i, c in enumerate(cycle.claims)}


def ranked_reveals(cycle: OrderCycle) -> list[ClaimReveal]:
    """Valid reveals in the ledger order of their commitments (the tie-break order)."""
    rank = _claim_rank(cycle)
    for r in cycle.reveals:
        if r.miner not in rank:
            raise ValueError(f"reveal by {r.miner} has no ClaimCommit in the cycle")
    return sorted(cycle.reveals, key=lambda r: rank[r.miner])


def disputed_models(cycle: OrderCycle) -> list[bytes]:
    """Models whose score needs PoT.Verify: no validation, disagreeing validations, or a revealed
    challenge against one of their validations. Empty before the test release."""
    if cycle.t3 is None or cycle.cancelled:
        return []
    challenged = {c.vid for c in cycle.challenges if c.vid is not None}
    out = []
    for r in ranked_reveals(cycle):
        vals = [v for v in cycle.validations if v.mid == r.mid]
        if (not vals or len({v.score for v in vals}) > 1
                or any(vid(v.order_id, v.validator, v.mid) in challenged for v in vals)):
            out.append(r.mid)
    return out


def model_scores(cycle: OrderCycle) -> dict[bytes, int]:
    """mid -> standing score; raises NeedsVerification when a disputed model has no result yet."""
    disputed = disputed_models(cycle)
    missing = [m for m in disputed if m not in cycle.verified]
    if missing:
        raise NeedsVerification(cycle.order.order_id, missing)
    scores: dict[bytes, int] = {}
    for r in cycle.reveals:
        if r.mid in cycle.verified:
            scores[r.mid] = cycle.verified[r.mid]   # PoT.Verify stands once taken
        else:
            scores[r.mid] = next(v.score for v in cycle.validations if v.mid == r.mid)
    return scores


def _merge(pairs: list[tuple[str, int]]) -> tuple[Payout, ...]:
    merged: dict[str, int] = {}
    for to, amount in pairs:
        merged[to] = merged.get(to, 0) + amount
    return tuple(Payout(to, a) for to, a in merged.items() if a > 0)


@dataclass(frozen=True)
class OrderOutcome:
    order: OrderSettlement
    slashes: tuple[Slash, ...]
    verdicts: tuple[ChallengeVerdict, ...]


def finalize_order(cycle: OrderCycle, params: Params, committee: Sequence[str]) -> OrderOutcome:
    """Settle one order (see the module docstring for every rule)."""
    order = cycle.order
    R = order.reward
    committee = [to_checksum_address(m) for m in committee]
    tax_each = (R * params.tax_bps // BPS) // len(committee) if committee else 0
    tax = [(m, tax_each) for m in committee]
    tax_total = tax_each * len(committee)
    reveals = ranked_reveals(cycle)
    winner, winning_mid = ZERO_ADDRESS, ZERO_BYTES32
    scores: dict[bytes, int] = {}

    if cycle.cancelled or not cycle.claims:
        pairs = [(order.client, R)]
    elif not reveals:
        pairs = tax + [(order.client, R - tax_total)]
    elif cycle.t3 is None:
        pool = R - tax_total
        each, dust = divmod(pool, len(reveals))
        pairs = tax + [(r.miner, each + (dust if i == 0 else 0)) for i, r in enumerate(reveals)]
    else:
        scores = model_scores(cycle)
        best = reveals[0]
        for r in reveals[1:]:
            if scores[r.mid] > scores[best.mid]:   # strict: ties stay with the earlier commitment
                best = r
        winner, winning_mid = best.miner, best.mid
        correct = [v for v in cycle.validations if v.mid == best.mid and v.score == scores[best.mid]]
        pool = R * params.validator_bps // BPS
        stake = sum(v.v_stake for v in correct)
        vals = [(v.validator, pool * v.v_stake // stake) for v in correct] if stake else []
        pairs = tax + vals + [(best.miner, R - tax_total - sum(a for _, a in vals))]

    slashes: list[Slash] = []
    by_vid = {vid(v.order_id, v.validator, v.mid): v for v in cycle.validations}
    for v in cycle.validations:
        if v.mid not in scores or v.score == scores[v.mid]:
            continue
        the_vid = vid(v.order_id, v.validator, v.mid)
        hunters = [c.challenger for c in cycle.challenges if c.vid == the_vid]
        to_hunters = v.v_stake * params.slash_to_challenger_bps // BPS if hunters else 0
        each = to_hunters // len(hunters) if hunters else 0
        slashes += [Slash(v.validator, each, h) for h in hunters if each]
        rest = v.v_stake - each * len(hunters)
        if rest:
            slashes.append(Slash(v.validator, rest, params.treasury))

    verdicts = []
    for c in cycle.challenges:
        v = by_vid.get(c.vid) if c.vid is not None else None
        if v is None or v.mid not in scores:
            verdicts.append(ChallengeVerdict(order.order_id, c.challenger, False, params.treasury))
        else:
            verdicts.append(ChallengeVerdict(order.order_id, c.challenger, v.score != scores[v.mid],
                                             v.validator))

    payouts = _merge(pairs)
    settled = OrderSettlement(order.order_id, winner, winning_mid, payouts)
    assert settled.total() == R, "payouts must sum exactly to the escrow"
    return OrderOutcome(settled, tuple(slashes), tuple(verdicts))


def finalize(cycles: OrderCycle | Sequence[OrderCycle], *, nonce: int, params: Params,
             committee: Sequence[str]) -> Settlement:
    """PoT.Finalize for one order or a batch of orders -> the settlement batch ``nonce``."""
    if isinstance(cycles, OrderCycle):
        cycles = [cycles]
    outs = [finalize_order(c, params, committee) for c in cycles]
    return Settlement(nonce=nonce, orders=tuple(o.order for o in outs),
                      slashes=tuple(s for o in outs for s in o.slashes),
                      verdicts=tuple(v for o in outs for v in o.verdicts))
