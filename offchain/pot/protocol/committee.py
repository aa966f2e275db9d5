"""Committee arithmetic: how many faulty members n tolerates and how many must agree.

One place for the numbers that PBFT, the ledger, the BFT-read client, the devnet and
``pot contracts deploy`` all use.
"""

from __future__ import annotations


def max_faulty(n: int) -> int:
    """f: the most Byzantine members a committee of ``n`` tolerates (n >= 3f + 1)."""
    return (n - 1) // 3


def bft_quorum(n: int) -> int:
    """ceil((n + f + 1) / 2): any two quorums share f + 1 members, one of them correct.

    2f + 1 at n = 3f + 1 (the paper's reference code used n/3*2, which is 2 for n = 4 and
    breaks intersection)."""
    return (n + max_faulty(n) + 2) // 2


def default_threshold(n: int) -> int:
    """The k-of-n signature threshold ``pot contracts deploy`` picks when none is given:
    2f + 1 for n = 3f + 1, a strict majority otherwise."""
    return 2 * max_faulty(n) + 1 if n % 3 == 1 else n // 2 + 1
