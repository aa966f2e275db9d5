"""Nobody makes the committee run consensus for nothing: on real replica processes, a flood of
messages signed by throwaway keys, and a validator whose stake is gone resending its reveal, do
not move the PBFT sequence (only the committee's own Ticks do, about one a second).

Before admission, 3,000 such messages moved the sequence by 2,412 in 20 s: every one of them went
through PBFT before the ledger refused it."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from committee_support import Committee, place_order, stake
from eth_account import Account

from pot.api.client import ApiError, submit_answer
from pot.api.http import HttpReplica
from pot.chain.anvil import DEV_KEYS
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.eip712 import Domain
from pot.roles.gateway import HttpGateway
from pot.roles.validator import Validation, Validator

FLOOD = 3_000
CONNECTIONS = 30


@pytest.fixture(scope="module")
def com(anvil, tmp_path_factory):
    c = Committee(anvil, tmp_path_factory.mktemp("admission"))
    c.start_all()
    yield c
    c.stop_all()


def _domain(com) -> Domain:
    return Domain.messages(com.deployment.chain_id, com.deployment.order_book)


def _seq(com) -> int:
    return max(com.info(i)["lastExecuted"] for i in range(com.n))


def test_a_flood_of_throwaway_keys_never_reaches_consensus(com):
    oid, _ = place_order(com, DEV_KEYS[8], train=600)
    com.wait_for(lambda: all(com.get(i, f"/v1/orders/{oid}") for i in range(com.n)), 60, "order in the ledger")
    domain = _domain(com)
    raws = []
    for k in range(FLOOD):
        acct = Account.from_key(os.urandom(32))
        target = oid if k % 2 else 10_000 + k   # the real order in training, or an unknown one
        raws.append(codec.encode(T.ClaimCommit(target, acct.address, os.urandom(32)).sign(domain, acct.key)))

    async def flood() -> list:
        conns = [HttpReplica(com.api_urls[c % com.n], max_connections=1) for c in range(CONNECTIONS)]

        async def one(c: int, chunk: list[bytes]) -> list:
            out = []
            for raw in chunk:
                resp = await conns[c].request("POST", "/v1/messages", body=raw, timeout=60,
                                              headers={"content-type": "application/octet-stream"})
                try:
                    out.append(submit_answer(conns[c].url, resp).reason_enum)
                except ApiError as exc:
                    out.append(exc.status)
            return out
        try:
            parts = await asyncio.gather(*(one(c, raws[c::CONNECTIONS]) for c in range(CONNECTIONS)))
        finally:
            for c in conns:
                await c.aclose()
        return [x for p in parts for x in p]

    before, t0 = _seq(com), time.monotonic()
    answers = asyncio.run(flood())
    elapsed = time.monotonic() - t0
    moved = _seq(com) - before
    print(f"flood of {FLOOD} in {elapsed:.1f}s moved the PBFT sequence by {moved}")
    assert answers.count(T.Reason.NOT_ENOUGH_STAKE) == FLOOD // 2
    assert answers.count(T.Reason.UNKNOWN_ORDER) == FLOOD // 2
    assert moved <= 2 * elapsed + 5, f"{moved} PBFT sequence numbers in {elapsed:.1f}s: the flood went through PBFT"
    refused = sum(com.info(i)["admission"]["refused"] for i in range(com.n))
    assert refused >= FLOOD


def test_a_validator_without_stake_stops_resending(com):
    """A validator that committed, then lost its stake (slashed elsewhere, or unregistered): its
    reveal is refused before consensus, and the worker holds the same message back instead of
    resending it every step."""
    key = DEV_KEYS[6]
    address = stake(com, key, T.MINER)  # the ledger knows it, but not as a validator
    com.wait_for(lambda: all(com.get(i, f"/v1/nodes/{address}") for i in range(com.n)), 60, "stake attested")
    oid, _ = place_order(com, DEV_KEYS[8], train=600)
    com.wait_for(lambda: all(com.get(i, f"/v1/orders/{oid}") for i in range(com.n)), 60, "order in the ledger")

    async def go() -> tuple[int, list]:
        gateway = HttpGateway.from_urls(com.api_urls)
        v = Validator(account=Account.from_key(key), gateway=gateway, domain=_domain(com))
        v.validations[(oid, b"\x07" * 32)] = Validation(500_000, 500_000, os.urandom(32))
        before = _seq(com)
        t0 = time.monotonic()
        for _ in range(8):            # eight steps of a worker polling every half second
            await v.reveal_order(oid)
            await asyncio.sleep(0.5)
        moved = _seq(com) - before
        await gateway.aclose()
        return moved, time.monotonic() - t0, [e for e in v.events if e.kind == "rejected"]

    moved, elapsed, rejected = asyncio.run(go())
    assert [e.data["reason"] for e in rejected] == ["NOT_ENOUGH_STAKE"], rejected  # sent once, then held
    assert moved <= 2 * elapsed + 5, f"{moved} PBFT sequence numbers in {elapsed:.1f}s"
