"""The sans-IO client side of PBFT (Castro & Liskov §4.1): a result is accepted once f+1
replicas reply the same (at least one of them is correct)."""

from __future__ import annotations

from .messages import Reply
from .votes import VoteSet


class Client:
    def __init__(self, config):
        self.cfg = config
        self.votes: dict[bytes, VoteSet[bytes]] = {}
        self.done: dict[bytes, bytes] = {}

    def on_reply(self, rep: Reply) -> bytes | None:
        """The request's result once f+1 replicas agree on it (only the first time)."""
        if rep.request_id in self.done:
            return None
        votes = self.votes.setdefault(rep.request_id, VoteSet())
        votes.add(rep.replica, rep.result)
        if votes.has_quorum(rep.result, self.cfg.f + 1):
            self.done[rep.request_id] = rep.result
            del self.votes[rep.request_id]
            return rep.result
        return None
