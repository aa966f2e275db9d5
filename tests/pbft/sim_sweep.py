"""The simulator sweep CI runs, split over two test files so that ``pytest -n 2 --dist
loadfile`` runs the halves on both cores: ``POT_PBFT_SEEDS`` seeds of the "classic" shape
(default 7,000) and ``POT_PBFT_WIDE_SEEDS`` of the "wide" one (n up to 13, 10 s of faults, up
to 60 requests; default 3,000). ``python -m pot.pbft.sim --seeds 100000`` runs more, by hand."""

from __future__ import annotations

import os

from pot.pbft.sim import sweep

SEEDS = {"classic": int(os.environ.get("POT_PBFT_SEEDS", "7000")),
         "wide": int(os.environ.get("POT_PBFT_WIDE_SEEDS", "3000"))}
CHUNKS = 8  # per shape and half: a failure names a small range, progress shows


JOBS = [(shape, chunk) for shape in SEEDS for chunk in range(CHUNKS)]


def run(shape: str, chunk: int, half: int) -> None:
    step = 2 * CHUNKS
    failures = sweep(shape, range(half * CHUNKS + chunk, SEEDS[shape], step))
    assert not failures, "\n".join(failures)
