"""A replayed message gets a prompt, clear refusal (issue 10, item 5), from any replica,
a restarted one included: HTTP 409 REPLAY, not the first result again (200 "claim committed"
for a commit a later one superseded) and not a 30 s wait then 503."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from committee_support import Committee, place_order, stake
from eth_account import Account

from pot.chain.anvil import DEV_KEYS
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.eip712 import Domain


def _post(com: Committee, i: int, raw: bytes) -> tuple[int, dict, float]:
    t0 = time.monotonic()
    r = httpx.post(com.api_urls[i] + "/v1/messages", content=raw,
                   headers={"content-type": "application/octet-stream"}, timeout=60)
    return r.status_code, r.json(), time.monotonic() - t0


@pytest.mark.slow
def test_replay_is_refused_with_409_promptly_also_by_a_restarted_replica(anvil, tmp_path):
    com = Committee(anvil, tmp_path, view_timeout=1.0)
    com.start_all()
    try:
        miner = Account.from_key(DEV_KEYS[7])
        stake(com, DEV_KEYS[7], roles=T.MINER)
        order_id, _ = place_order(com, DEV_KEYS[8], train=60)
        domain = Domain.messages(com.deployment.chain_id, com.deployment.order_book)
        com.wait_for(lambda: all(com.get(i, f"/v1/orders/{order_id}") for i in range(com.n))
                     and all((com.get(i, f"/v1/nodes/{miner.address}") or {}).get("stake") for i in range(com.n)),
                     60, "order and stake attested")

        def commit():
            return codec.encode(T.ClaimCommit(order_id, miner.address, os.urandom(32)).sign(domain, miner.key))

        first, second = commit(), commit()
        status, body, _ = _post(com, 1, first)
        assert status == 200, body
        status, body, _ = _post(com, 1, second)  # a better model: supersedes the first commit
        assert status == 200, body
        com.wait_for(lambda: all((com.info(i) or {}).get("lastExecuted") == com.info(1)["lastExecuted"]
                                 for i in range(com.n)), 30, "every replica executed both")

        # The old commit again, to every replica: before the fix 200 "claim committed".
        for i in range(com.n):
            status, body, took = _post(com, i, first)
            assert status == 409 and body["reason"] == "REPLAY", (i, status, body)
            assert took < 5, took

        # A restarted replica (it has no reply cached): before the fix 30 s, then 503.
        com.kill(2)
        com.start(2)
        com.wait_ready([2])
        status, body, took = _post(com, 2, first)
        assert status == 409 and body["reason"] == "REPLAY", (status, body)
        assert took < 5, took
        status, body, took = _post(com, 2, second)
        assert status == 409 and body["reason"] == "REPLAY", (status, body)
    finally:
        com.stop_all()
