"""Deterministic simulation: safety and liveness over thousands of seeded fault schedules.

POT_PBFT_SEEDS=20000 runs more (default 1500, ~1 min on 2 cores)."""

import os

import pytest

from pot.pbft.sim import BYZ_MODES, run_seed

SEEDS = int(os.environ.get("POT_PBFT_SEEDS", "1500"))
CHUNKS = 20


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seeds_are_safe_and_live(chunk):
    for seed in range(chunk, SEEDS, CHUNKS):
        run_seed(seed)  # raises SafetyViolation / LivenessFailure with the seed in the message


@pytest.mark.parametrize("mode", BYZ_MODES)
def test_each_byzantine_mode_with_n7(mode):
    for seed in range(10):
        run_seed(10_000 + seed, n=7, byzantine=mode)


def test_simulation_is_deterministic():
    a, b = run_seed(42), run_seed(42)
    assert (a.messages, a.executed_seqs, a.views) == (b.messages, b.executed_seqs, b.views)
