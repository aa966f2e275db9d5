"""Fault tests on real replica processes (loopback TCP, real Anvil): kill -9 the primary under
load, restart it (it recovers from its own log and its peers), partition a replica away with
SIGSTOP and back. No committed request is lost and the ledger digests match."""

from __future__ import annotations

import asyncio
import signal

import pytest
from committee_support import MIN_STAKE, TOKEN, Committee, admissible_load

from pot.api.client import ApiClient
from pot.chain.sender import Sender
from pot.protocol import types as T
from pot.protocol.types import Reason


@pytest.fixture
def com(anvil, tmp_path_factory):
    # a committee of its own per test: one test's wreckage never decides another's outcome
    # one sender (the load's miner) sends everything: no per-sender limit in the way
    c = Committee(anvil, tmp_path_factory.mktemp("faults"), admission={"sender_rate": 10_000, "sender_burst": 10_000})
    c.start_all()
    yield c
    c.stop_all()


def _requests(com, n: int, tag: str) -> list[bytes]:
    """n distinct signed messages that every replica executes to an acceptance (messages the
    ledger would refuse for sure never reach consensus)."""
    return admissible_load(com, n)


def _committed(r) -> bool:
    return r.ok or r.reason_enum is Reason.REPLAY


def com_domain(com):
    from pot.protocol.eip712 import Domain

    return Domain.messages(com.deployment.chain_id, com.deployment.order_book)


async def _submit_all(com, raws: list[bytes], replicas: list[int]) -> list:
    clients = [ApiClient(com.api_urls[i], timeout=60) for i in replicas]
    try:
        async def one(k, raw):
            return await clients[k % len(clients)].submit(raw)
        return await asyncio.gather(*(one(k, r) for k, r in enumerate(raws)))
    finally:
        for c in clients:
            await c.aclose()


def _converged(com, ids) -> bool:
    infos = [com.info(i) for i in ids]
    if any(x is None for x in infos):
        return False
    return len({(x["lastExecuted"], x["pbftDigest"], x["ledgerDigest"]) for x in infos}) == 1


def _stake(com, key_index: int) -> str:
    from pot.chain.anvil import DEV_KEYS

    u = Sender(com.w3, DEV_KEYS[key_index])
    u.resync()
    com.contracts.token.transfer(com.deployer, u.address, 100 * TOKEN)
    com.contracts.token.ensure_allowance(u, com.contracts.stakes.address, MIN_STAKE)
    com.contracts.stakes.register(u, T.MINER, MIN_STAKE)
    return u.address


def _known(com, i: int, address: str) -> bool:
    import httpx
    try:
        r = httpx.get(f"{com.api_urls[i]}/v1/nodes/{address}", timeout=3)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.json().get("stake") == MIN_STAKE


def test_kill_primary_under_load_then_restart_it(com):
    raws = _requests(com, 150, "load")  # first: setting the load up takes a few seconds (a stake, an order)
    primary = com.info(1)["primary"]
    live = [i for i in range(com.n) if i != primary]

    async def scenario():
        sub = asyncio.create_task(_submit_all(com, raws, live))
        await asyncio.sleep(0.2)
        com.kill(primary)                           # kill -9 while requests are in flight
        return await sub
    results = asyncio.run(scenario())
    # every request committed
    assert all(_committed(r) for r in results), {r.reason_enum for r in results}
    # chain events still enter through attestations of the 3 survivors (f+1 = 2 needed)
    staker = _stake(com, 5)
    com.wait_for(lambda: all(_known(com, i, staker) for i in live), 30, "stake attested after view change")
    # (asserted only now: on a fast machine all 150 may commit before the kill; the stake above
    # cannot commit without a new view)
    views = [com.info(i)["view"] for i in live]
    assert min(views) >= 1, views
    com.wait_for(lambda: _converged(com, live), 20, "survivors converge")

    com.start(primary)                              # restart: own log, then state from peers
    com.wait_ready([primary])
    com.wait_for(lambda: _converged(com, range(com.n)), 40, "restarted replica catches up")
    assert _known(com, primary, staker)
    # and it takes part again: new requests commit with everyone
    results = asyncio.run(_submit_all(com, _requests(com, 20, "after"), [primary]))
    assert all(_committed(r) for r in results)


def test_partitioned_replica_catches_up(com):
    out = 2
    com.kill(out, signal.SIGSTOP)                   # cut off: no messages in or out
    try:
        others = [i for i in range(com.n) if i != out]
        results = asyncio.run(_submit_all(com, _requests(com, 40, "partition"), others))
        assert all(_committed(r) for r in results)
        staker = _stake(com, 6)
        com.wait_for(lambda: all(_known(com, i, staker) for i in others), 30, "stake attested by the majority")
    finally:
        com.kill(out, signal.SIGCONT)
    com.wait_for(lambda: _converged(com, range(com.n)), 40, "healed replica converges")
    assert _known(com, out, staker)
