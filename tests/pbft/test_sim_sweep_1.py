"""Half 1 of the simulator sweep (see sim_sweep.py): every seed safe and live."""

import pytest

from sim_sweep import JOBS, run


@pytest.mark.parametrize("shape,chunk", JOBS)
def test_seeds_are_safe_and_live(shape, chunk):
    run(shape, chunk, 1)
