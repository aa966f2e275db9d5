"""PoT.Finalize: from an order's cycle data to the settlement the committee signs.

Integer token units throughout; every order's payouts sum exactly to its escrow. The rules
(ARCHITECTURE.md §3, CONVENTIONS.md "Default cases", and the choices noted in docs):

- score of a model: the score its validators agree on. Agreement must be unanimous among its
  revealed validations; any disagreement, any revealed challenge against one of them, or no
  validation at all makes the model *disputed*, and then the committee's PoT.Verify result
  (2f+1 equal replicas, ``OrderCycle.verified``) is the score and it stands. Unanimity rather
  than a stake-weighted majority: a majority could be bought by one rich validator, PoT.Verify
  cannot.
- winner: the highest score; a tie goes to the earlier commitment (ledger order).
- payout of R: ``taxBps`` of R split equally among committee members (integer division; one
  ``perMember`` amount in the batch);
  ``validatorBps`` of R to the validators that scored the winner correctly, pro rata to vStake
  (the first ``max_paid_validators`` of them in ledger order, so one order's payouts are bounded
  whatever a sybil swarm does); the winner's miner gets the rest, all rounding dust included, and
  is the order's first payout.
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
  releaseEnd -> R minus tax split equally among those miners (the first ``max_paid_miners`` in
  commitment order), dust to the earliest commitment.
- PoT.Verify that found no 2f+1 agreement by ``verify_timeout`` after the order started verifying:
  the undetermined models are excluded (they cannot win), their validations are neither paid nor
  slashed (the vStake is released), and challenges against them get their cStake back.

``plan`` then packs the outcomes of the orders ready to settle into settlements, each under a
gas budget by the worst-case model of ``pot.protocol.gas``, in a deterministic order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


from pot.protocol import gas
from pot.protocol.ids import ZERO_BYTES32, vid
from pot.protocol.settlement import (ZERO_ADDRESS, ChallengeVerdict, OrderSettlement, Payout, Settlement,
                                     Slash)
from pot.protocol.types import (AGGREGATOR, MINER, VALIDATOR, VERIFIER, Challenge, ClaimCommit, ClaimReveal,
                                Order, ValidationReveal, checksum)

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
    #: worst-case gas of one settlement transaction (ARCHITECTURE.md: settlementGasBudget, <= 10M)
    settlement_gas_budget: int = 10_000_000
    #: seconds a signed settlement stays executable; an expired one is re-issued, same nonce
    settlement_ttl: int = 3600
    #: seconds PoT.Verify may take before undetermined models are excluded
    verify_timeout: int = 600
    #: bounds on one order's payouts (validators paid per winner, miners paid without a test release)
    max_paid_validators: int = 32
    max_paid_miners: int = 64

    def __post_init__(self) -> None:
        for name in ("tax_bps", "validator_bps", "slash_to_challenger_bps"):
            v = getattr(self, name)
            if type(v) is not int or not 0 <= v <= BPS:
                raise ValueError(f"{name} must be an int in [0, {BPS}]")
        # strictly below: the winner's payout (the rest) is then never zero
        if self.tax_bps + self.validator_bps >= BPS:
            raise ValueError("tax_bps + validator_bps must be below 10000")
        if self.min_reveal_duration < 1 or self.finalize_delay < 0:
            raise ValueError("min_reveal_duration must be >= 1 and finalize_delay >= 0")
        if self.settlement_gas_budget < gas.MIN_BUDGET:
            raise ValueError(f"settlement_gas_budget must be at least {gas.MIN_BUDGET}")
        if self.settlement_ttl < 1 or self.verify_timeout < 1:
            raise ValueError("settlement_ttl and verify_timeout must be >= 1")
        if self.max_paid_validators < 1 or self.max_paid_miners < 1:
            raise ValueError("max_paid_validators and max_paid_miners must be >= 1")
        object.__setattr__(self, "treasury", checksum(self.treasury))
        object.__setattr__(self, "min_stake", dict(self.min_stake))

    def as_json(self) -> dict:
        return {"taxBps": self.tax_bps, "validatorBps": self.validator_bps,
                "slashToChallengerBps": self.slash_to_challenger_bps,
                "minRevealDuration": self.min_reveal_duration,
                "minStake": {str(k): v for k, v in sorted(self.min_stake.items())},
                "treasury": self.treasury, "finalizeDelay": self.finalize_delay,
                "settlementGasBudget": self.settlement_gas_budget, "settlementTtl": self.settlement_ttl,
                "verifyTimeout": self.verify_timeout, "maxPaidValidators": self.max_paid_validators,
                "maxPaidMiners": self.max_paid_miners}


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
    #: models PoT.Verify could not settle by its deadline: excluded, their validations released
    excluded: frozenset[bytes] = frozenset()


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


def _validations_by_mid(cycle: OrderCycle) -> dict[bytes, list[ValidationReveal]]:
    """One pass over the validations: every rule below looks a model's validations up here, so
    an order costs O(M + V), not O(M * V) per model."""
    out: dict[bytes, list[ValidationReveal]] = {}
    for v in cycle.validations:
        out.setdefault(v.mid, []).append(v)
    return out


def disputed_models(cycle: OrderCycle) -> list[bytes]:
    """Models whose score needs PoT.Verify: no validation, disagreeing validations, or a revealed
    challenge against one of their validations. Empty before the test release."""
    if cycle.t3 is None or cycle.cancelled:
        return []
    challenged = {c.vid for c in cycle.challenges if c.vid is not None}
    by_mid = _validations_by_mid(cycle)
    out = []
    for r in ranked_reveals(cycle):
        vals = by_mid.get(r.mid, ())
        if (not vals or len({v.score for v in vals}) > 1
                or (challenged and any(vid(v.order_id, v.validator, v.mid) in challenged for v in vals))):
            out.append(r.mid)
    return out


def model_scores(cycle: OrderCycle) -> dict[bytes, int]:
    """mid -> standing score of every model that is not excluded; raises NeedsVerification when a
    disputed model has no result yet."""
    disputed = disputed_models(cycle)
    missing = [m for m in disputed if m not in cycle.verified and m not in cycle.excluded]
    if missing:
        raise NeedsVerification(cycle.order.order_id, missing)
    scores: dict[bytes, int] = {}
    by_mid = _validations_by_mid(cycle)
    for r in cycle.reveals:
        if r.mid in cycle.excluded:
            continue
        if r.mid in cycle.verified:
            scores[r.mid] = cycle.verified[r.mid]   # PoT.Verify stands once taken
        else:
            scores[r.mid] = by_mid[r.mid][0].score
    return scores


def _merge(pairs: list[tuple[str, int]]) -> tuple[Payout, ...]:
    """One payout per address, in order of first appearance (the winner's stays first)."""
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
    committee = [checksum(m) for m in committee]
    per_member = (R * params.tax_bps // BPS) // len(committee) if committee else 0
    tax_total = per_member * len(committee)
    reveals = ranked_reveals(cycle)
    winner, winning_mid = ZERO_ADDRESS, ZERO_BYTES32
    scores: dict[bytes, int] = {}

    if cycle.cancelled or not cycle.claims:
        per_member = 0
        pairs = [(order.client, R)]
    elif not reveals:
        pairs = [(order.client, R - tax_total)]
    elif cycle.t3 is None:
        paid = reveals[:params.max_paid_miners]
        each, dust = divmod(R - tax_total, len(paid))
        pairs = [(r.miner, each + (dust if i == 0 else 0)) for i, r in enumerate(paid)]
    else:
        scores = model_scores(cycle)
        eligible = [r for r in reveals if r.mid in scores]
        if not eligible:   # every model excluded by PoT.Verify's deadline: nobody won
            pairs = [(order.client, R - tax_total)]
        else:
            best = eligible[0]
            for r in eligible[1:]:
                if scores[r.mid] > scores[best.mid]:   # strict: ties stay with the earlier commitment
                    best = r
            winner, winning_mid = best.miner, best.mid
            correct = [v for v in cycle.validations
                       if v.mid == best.mid and v.score == scores[best.mid]][:params.max_paid_validators]
            pool = R * params.validator_bps // BPS
            stake = sum(v.v_stake for v in correct)
            vals = [(v.validator, pool * v.v_stake // stake) for v in correct] if stake else []
            # the winner first: the contract checks that payouts[0] pays the named winner
            pairs = [(best.miner, R - tax_total - sum(a for _, a in vals))] + vals

    slashes: list[Slash] = []
    # vids only matter to challenges: most orders have none, and a vid is a keccak per validation
    by_vid = {vid(v.order_id, v.validator, v.mid): v for v in cycle.validations} if cycle.challenges else {}
    for v in cycle.validations:
        if v.mid not in scores or v.score == scores[v.mid]:
            continue
        the_vid = vid(v.order_id, v.validator, v.mid)
        hunters = [c.challenger for c in cycle.challenges if c.vid == the_vid]
        to_hunters = v.v_stake * params.slash_to_challenger_bps // BPS if hunters else 0
        each = to_hunters // len(hunters) if hunters else 0
        slashes += [Slash(order.order_id, v.validator, each, h) for h in hunters if each]
        rest = v.v_stake - each * len(hunters)
        if rest:
            slashes.append(Slash(order.order_id, v.validator, rest, params.treasury))

    verdicts = []
    for c in cycle.challenges:
        v = by_vid.get(c.vid) if c.vid is not None else None
        if v is None or (v.mid not in scores and v.mid not in cycle.excluded):
            verdicts.append(ChallengeVerdict(order.order_id, c.challenger, False, params.treasury))
        elif v.mid in cycle.excluded:
            # undecidable: the cStake goes back to its challenger (upheld returns it) and nobody
            # is slashed for this validation
            verdicts.append(ChallengeVerdict(order.order_id, c.challenger, True, v.validator))
        else:
            verdicts.append(ChallengeVerdict(order.order_id, c.challenger, v.score != scores[v.mid],
                                             v.validator))

    settled = OrderSettlement(order.order_id, winner, winning_mid, per_member, _merge(pairs))
    assert settled.total(len(committee)) == R, "payouts must sum exactly to the escrow"
    return OrderOutcome(settled, tuple(slashes), tuple(verdicts))


def finalize(cycles: OrderCycle | Sequence[OrderCycle], *, nonce: int, params: Params,
             committee: Sequence[str], epoch: int = 1, deadline: int = 2**64 - 1) -> Settlement:
    """PoT.Finalize for one order or a batch of orders -> the settlement batch ``nonce`` (no
    gas budget: ``plan`` splits)."""
    if isinstance(cycles, OrderCycle):
        cycles = [cycles]
    outs = [finalize_order(c, params, committee) for c in cycles]
    return Settlement(nonce=nonce, epoch=epoch, deadline=deadline, members=tuple(committee),
                      orders=tuple(o.order for o in outs),
                      slashes=tuple(s for o in outs for s in o.slashes),
                      verdicts=tuple(v for o in outs for v in o.verdicts))


def plan(cycles: Sequence[OrderCycle], *, first_nonce: int, params: Params, committee: Sequence[str],
         threshold: int, epoch: int = 1, deadline: int = 2**64 - 1) -> list[Settlement]:
    """PoT.Finalize of every order ready to settle, packed into as few settlements as the gas
    budget allows (worst case: every recipient fresh), nonces from ``first_nonce`` on.

    Items go in order (an order's payouts, then its slashes, then its verdicts; orders in the
    given order) and a new settlement starts whenever the next item would pass the budget, so an
    order's items stay together unless they alone exceed it. One order's payouts always fit:
    they are bounded by the committee size and ``max_paid_*``."""
    committee = tuple(checksum(m) for m in committee)
    budget = params.settlement_gas_budget
    out: list[Settlement] = []
    cur = gas.Estimate(committee, threshold)
    items: dict[str, list] = {"orders": [], "slashes": [], "verdicts": []}

    def close() -> None:
        nonlocal cur, items
        if cur.items:
            out.append(Settlement(first_nonce + len(out), epoch, deadline, committee, tuple(items["orders"]),
                                  tuple(items["slashes"]), tuple(items["verdicts"])))
        cur = gas.Estimate(committee, threshold)
        items = {"orders": [], "slashes": [], "verdicts": []}

    for cycle in cycles:
        o = finalize_order(cycle, params, committee)
        for kind, item in ([("orders", o.order)] + [("slashes", s) for s in o.slashes]
                           + [("verdicts", v) for v in o.verdicts]):
            if cur.items and cur.with_item(item) > budget:
                close()
            cur.add(item)
            items[kind].append(item)
    close()
    return out
