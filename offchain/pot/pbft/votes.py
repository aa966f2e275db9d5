"""Quorums as a type (in the manner of CometBFT's ``VoteSet``): one vote per replica, counted
per value, so a handler asks ``count(digest) >= quorum`` instead of counting by hand.

The first vote of a replica stands (a later, different one from the same replica is ignored:
a correct replica never casts two for the same instance, and a Byzantine one gains nothing by
changing its mind). The tally is kept as votes arrive: at n = 30 a batch gets ~2n prepares and
commits per replica, so recounting on each would be O(n^2) per batch.
"""

from __future__ import annotations

from typing import Callable, Generic, Hashable, Iterator, TypeVar

V = TypeVar("V")


def _identity(v):
    return v


class VoteSet(Generic[V]):
    """Votes by replica id; ``value(vote)`` is what votes must agree on (a digest)."""

    __slots__ = ("_votes", "_tally", "_value")

    def __init__(self, value: Callable[[V], Hashable] = _identity):
        self._votes: dict[int, V] = {}
        self._tally: dict[Hashable, int] = {}
        self._value = value

    def add(self, replica: int, vote: V) -> bool:
        """Record ``replica``'s vote; False if it had voted already (the first vote stands)."""
        if replica in self._votes:
            return False
        self._votes[replica] = vote
        v = self._value(vote)
        self._tally[v] = self._tally.get(v, 0) + 1
        return True

    def put(self, replica: int, vote: V) -> None:
        """Record ``replica``'s vote, replacing an earlier one (a checkpoint signed again
        after a rollback)."""
        self.discard(replica)
        self.add(replica, vote)

    def discard(self, replica: int) -> None:
        """Forget a vote found bad after it was counted (a prepare whose signature fails)."""
        vote = self._votes.pop(replica, None)
        if vote is not None:
            v = self._value(vote)
            self._tally[v] -= 1

    def count(self, value: Hashable) -> int:
        return self._tally.get(value, 0)

    def has_quorum(self, value: Hashable, quorum: int) -> bool:
        return self._tally.get(value, 0) >= quorum

    def quorum_value(self, quorum: int) -> Hashable | None:
        """A value at least ``quorum`` replicas voted for, or None."""
        for v, k in self._tally.items():
            if k >= quorum:
                return v
        return None

    def matching(self, value: Hashable) -> list[V]:
        """The votes for ``value``, in arrival order."""
        f = self._value
        return [x for x in self._votes.values() if f(x) == value]

    def voters(self, value: Hashable) -> set[int]:
        f = self._value
        return {r for r, x in self._votes.items() if f(x) == value}

    # Read-only mapping view (replica id -> vote), for handlers and tests.
    def __contains__(self, replica: object) -> bool:
        return replica in self._votes

    def __getitem__(self, replica: int) -> V:
        return self._votes[replica]

    def __len__(self) -> int:
        return len(self._votes)

    def __iter__(self) -> Iterator[int]:
        return iter(self._votes)

    def get(self, replica: int, default=None):
        return self._votes.get(replica, default)

    def items(self):
        return self._votes.items()

    def values(self):
        return self._votes.values()
