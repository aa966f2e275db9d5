"""Admission before consensus, over the API: what the ledger would refuse for sure never reaches
the node (so never costs a PBFT round), and connections and signers are rate-limited (429 with
Retry-After)."""

from __future__ import annotations

import os

from eth_account import Account
from fastapi.testclient import TestClient
from test_api import T0, Clock, commit, make_ledger

from pot.api import LocalNode, create_app
from pot.api.admission import AdmissionLimits, TokenBuckets
from pot.protocol import codec

OCTETS = {"content-type": "application/octet-stream"}


class CountingNode(LocalNode):
    """The real LocalNode, counting what reaches it (what would go through PBFT)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.submitted = 0

    async def submit(self, raw: bytes):
        self.submitted += 1
        return await super().submit(raw)


def _post(tc, message):
    return tc.post("/v1/messages", content=codec.encode(message), headers=OCTETS)


def test_sure_refusals_are_answered_without_consensus():
    node = CountingNode(make_ledger(), Clock(T0 + 1))
    with TestClient(create_app(node)) as tc:
        for _ in range(50):  # throwaway keys: unknown to the ledger
            key = Account.from_key(os.urandom(32))
            r = _post(tc, commit(1, key=key))
            assert r.status_code == 403 and r.json()["reason"] == "NOT_ENOUGH_STAKE"
        r = _post(tc, commit(99, key=Account.from_key(os.urandom(32))))
        assert r.status_code == 404 and r.json()["reason"] == "UNKNOWN_ORDER"
        r = _post(tc, commit(4))                       # order 4's training is over
        assert r.status_code == 422 and r.json()["reason"] == "WRONG_WINDOW"
        assert node.submitted == 0
        assert _post(tc, commit(1)).status_code == 200
        r = _post(tc, commit(1))                        # the same message again
        assert r.status_code == 409 and r.json()["reason"] == "REPLAY"
        assert node.submitted == 1
        assert tc.get("/v1/info").json()["admission"] == {"refused": 53, "limited": 0}


def test_a_signer_over_its_rate_gets_429_with_retry_after():
    node = CountingNode(make_ledger(), Clock(T0 + 1))
    limits = AdmissionLimits(sender_rate=0.5, sender_burst=3)
    with TestClient(create_app(node, limits=limits)) as tc:
        codes = [_post(tc, commit(1, salt=os.urandom(32))).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = _post(tc, commit(2, salt=os.urandom(32)))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and r.json()["error"] == "rate-limited"
        # throwaway keys are refused by the precheck first: they never get (or drain) a bucket
        stranger = _post(tc, commit(1, key=Account.from_key(os.urandom(32))))
        assert stranger.status_code == 403
        assert node.submitted == 3


def test_one_connection_over_its_rate_gets_429():
    node = CountingNode(make_ledger(), Clock(T0 + 1))
    limits = AdmissionLimits(connection_rate=1, connection_burst=10)
    with TestClient(create_app(node, limits=limits)) as tc:  # one client address: one "connection"
        codes = [_post(tc, commit(1, key=Account.from_key(os.urandom(32)))).status_code for _ in range(15)]
        assert codes[:10] == [403] * 10 and set(codes[10:]) == {429}
        assert tc.get("/v1/info").json()["admission"]["limited"] == 5


def test_token_buckets_refill_and_forget_the_oldest():
    b = TokenBuckets(rate=2, burst=2, max_keys=2)
    assert [b.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert b.take("a", 0.5) == 0.0          # one token back after half a second
    b.take("b", 1.0)
    b.take("c", 1.0)
    assert len(b) == 2 and b.take("a", 1.0) == 0.0  # "a" was dropped: a fresh, full bucket
