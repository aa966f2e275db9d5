"""What a settled order meant for each worker, read from the committee's outcome of a ledger built
by the real rules (``tests/api/explorer_world``: a winner, a loser, an honest and a lying validator,
an upheld challenge), and said in plain words; a worker reports it once, when the settlement
executed, through its own step."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from eth_account import Account

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

import explorer_world as W  # noqa: E402
from pot.api import views  # noqa: E402
from pot.protocol.units import format_pot  # noqa: E402
from pot.roles.config import MinerConfig, ValidatorConfig  # noqa: E402
from pot.roles.events import Event, Kind, describe  # noqa: E402
from pot.roles.gateway import LocalGateway  # noqa: E402
from pot.roles.miner import Miner  # noqa: E402
from pot.roles.outcome import final, miner_outcome, validator_outcome, verifier_outcome  # noqa: E402
from pot.roles.validator import Validation, Validator  # noqa: E402


@pytest.fixture(scope="module")
def world():
    return W.build()


@pytest.fixture(scope="module")
def outcome(world):
    return views.order_outcome(world, 1)


def words(kind: Kind, data: dict, order_id: int = 1) -> str:
    return describe(Event("miner", "0x" + "00" * 20, kind, order_id, 0, data))


def test_the_winner_hears_it_won_and_what_it_was_paid(outcome):
    [(kind, data)] = miner_outcome(outcome, W.WINNER.addr)
    paid = next(p["amount"] for p in outcome["paid"] if p["to"] == W.WINNER.addr)
    assert kind is Kind.WON and data["amount"] == paid and data["score"] == 900_000
    assert words(kind, data) == (f"order 1: you won — {format_pot(paid)} paid in tx 0x{W.TX_HASH.hex()} "
                                 "(900,000 ppm)")


def test_a_loser_hears_to_whom_and_by_how_much(outcome):
    [(kind, data)] = miner_outcome(outcome, W.MINERS[1].addr)
    assert kind is Kind.LOST and data["winner"] == W.WINNER.addr
    assert (data["winner_score"], data["score"]) == (900_000, 800_000)
    w = W.WINNER.addr
    assert words(kind, data) == f"order 1: lost to {w[:6]}…{w[-4:]} (900,000 vs your 800,000 ppm)"
    # a miner that never revealed has no score of its own to compare
    [(kind, data)] = miner_outcome(outcome, W.MINERS[2].addr)
    assert kind is Kind.LOST and "score" not in data and "was not revealed" in words(kind, data)


def test_validators_hear_paid_or_slashed_with_the_scores(outcome):
    mid0 = next(m["mid"] for m in outcome["scores"] if m["miner"] == W.WINNER.addr)
    honest = validator_outcome(outcome, W.VALIDATORS[0].addr, {mid0: 900_000})
    assert [k for k, _ in honest] == [Kind.PAID] and honest[0][1]["amount"] > 0
    assert words(*honest[0]).startswith(f"order 1: paid {format_pot(honest[0][1]['amount'])} for validating")
    lied = validator_outcome(outcome, W.LIAR.addr, {mid0: 500_000})
    slashed = [d for k, d in lied if k is Kind.SLASHED]
    assert slashed and slashed[0]["reported"] == 500_000 and slashed[0]["correct"] == 900_000
    text = words(Kind.SLASHED, slashed[0])
    assert "slashed" in text and "your score 500,000 ppm" in text and "the committee's: 900,000" in text


def test_the_verifier_hears_its_challenge_was_upheld(outcome):
    [(kind, data)] = verifier_outcome(outcome, W.VERIFIER_.addr)
    assert kind is Kind.CHALLENGE_UPHELD and data["validator"] == W.LIAR.addr and data["amount"] > 0
    assert "challenge upheld" in words(kind, data)


def test_nothing_is_final_before_the_settlement_executed(world):
    assert final(views.order_outcome(world, 1))
    assert not final(views.order_outcome(world, 3))  # its refund is signed, not executed
    assert not final(views.order_outcome(world, 2))  # still training


def test_workers_report_the_outcome_once_through_their_step(world, tmp_path):
    gw = LocalGateway(world, clock=lambda: W.NOW)
    domain = world.config.message_domain
    miner = Miner(MinerConfig(state_dir=str(tmp_path)), account=Account.from_key(W.WINNER.key), gateway=gw,
                  domain=domain)
    miner.watch(1)
    validator = Validator(ValidatorConfig(state_dir=str(tmp_path)), account=Account.from_key(W.LIAR.key),
                          gateway=gw, domain=domain)
    mid0 = next(bytes.fromhex(m["mid"][2:]) for m in views.order_outcome(world, 1)["scores"]
                if m["miner"] == W.WINNER.addr)
    validator.validations[(1, mid0)] = Validation(500_000, 900_000, b"\0" * 32, revealed=True, committed=True)
    validator.watch(1)

    async def go():
        try:
            await miner.report_outcomes()
            await validator.report_outcomes()
            again = len(miner.events)
            await miner.report_outcomes()
            return again
        finally:
            validator.scorer.close()

    again = asyncio.run(go())
    assert [e.kind for e in miner.events] == [Kind.WON]
    assert len(miner.events) == again  # once
    assert Kind.SLASHED in [e.kind for e in validator.events]
