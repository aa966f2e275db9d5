"""Committee arithmetic: quorums intersect in a correct member and stay reachable with f silent."""

import pytest

from pot.protocol import bft_quorum, default_threshold, max_faulty


@pytest.mark.parametrize("n", range(1, 101))
def test_quorums_intersect_and_stay_live(n):
    f = max_faulty(n)
    assert n >= 3 * f + 1 and n < 3 * (f + 1) + 1
    q = bft_quorum(n)
    assert 2 * q - n >= f + 1          # two quorums share f+1 members: one is correct
    assert q <= n - f                  # f silent members cannot stall the committee
    k = default_threshold(n)
    assert f + 1 <= k <= n - f         # one honest signer in every batch; f cannot block it


def test_three_f_plus_one_is_two_f_plus_one():
    for f in range(0, 20):
        n = 3 * f + 1
        assert max_faulty(n) == f and bft_quorum(n) == default_threshold(n) == 2 * f + 1
    # the paper's reference code used n/3*2 = 2 at n = 4: two such quorums need not intersect
    assert bft_quorum(4) == 3
