"""End to end with real processes: 4 ``pot aggregator run`` replicas on loopback, a real Anvil,
the role workers over the committee's HTTP API (BFT reads), real-time windows of a few seconds.
One aggregator is killed in the middle of the cycle; the order still settles on-chain through
executeSigned with the payouts the ledger computed."""

from __future__ import annotations

import asyncio
import json
import time

from committee_support import MIN_STAKE, TOKEN, Committee
from eth_account import Account

from pot.chain.anvil import DEV_KEYS
from pot.roles.base import ChainAccess
from pot.roles.client import Client
from pot.roles.config import ClientConfig, MinerConfig, ValidatorConfig
from pot.roles.gateway import HttpGateway
from pot.roles.miner import Miner
from pot.roles.validator import Validator
from pot.storage import EmbeddedStore


def test_cycle_settles_with_one_aggregator_killed(anvil, tmp_path):
    com = Committee(anvil, tmp_path)
    try:
        com.start_all()
        asyncio.run(_cycle(com, tmp_path))
    finally:
        com.stop_all()


async def _cycle(com: Committee, tmp):
    names = ["client", "miner_a", "miner_b", "validator"]
    accounts = {n: Account.from_key(DEV_KEYS[i + 1]) for i, n in enumerate(names)}
    for a in accounts.values():
        com.contracts.token.transfer(com.deployer, a.address, 1_000 * TOKEN)
    store = EmbeddedStore(com.store_dir)
    domain = ChainAccess(com.w3, com.deployment, accounts["client"]).domain

    def worker(cls, name, config):
        config.state_dir = str(tmp / "workers" / name)
        return cls(config, account=accounts[name], gateway=HttpGateway.from_urls(com.api_urls, timeout=20),
                   domain=domain, store=store, chain=ChainAccess(com.w3, com.deployment, accounts[name]),
                   poll_interval=0.5)

    client = worker(Client, "client", ClientConfig(
        dataset="digits", arch="mlp", model={"hidden": [16]}, epochs=2, batch_size=64, lr=3e-3,
        reward=100 * TOKEN, train_duration=14, validate_duration=4, challenge_duration=2, reveal_duration=3))
    miners = [worker(Miner, n, MinerConfig(commit_margin_s=3, min_train_s=1, train_seed=s, stake=MIN_STAKE))
              for n, s in (("miner_a", 1), ("miner_b", 2))]
    validator = worker(Validator, "validator", ValidatorConfig(v_stake=2 * TOKEN))
    workers = [*miners, validator]

    # stake: each worker registers on-chain; the committee attests it into the ledger
    deadline = time.monotonic() + 30
    while not all([await w.ensure_staked() for w in workers]):
        assert time.monotonic() < deadline, "stakes never reached the ledger"
        await asyncio.sleep(0.3)
    task = await client.prepare_task()
    oid = await client.place_order(task)
    t_placed = time.monotonic()
    while (await client.gateway.cycle(oid)) is None:
        assert time.monotonic() - t_placed < 20, "OrderPlaced never attested"
        await asyncio.sleep(0.2)
    killed = 3  # a backup, killed once the miners have committed
    stop = asyncio.Event()
    runs = [asyncio.create_task(w.run_forever(stop)) for w in [*workers, client]]
    try:
        winner_before = None
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"order {oid} never settled; events: {client.events[-5:]}"
            cyc = await client.gateway.cycle(oid)
            if killed is not None and cyc is not None and len(cyc.claimers) == 2:
                com.kill(killed)
                killed = None
            if cyc is not None and cyc.status == "settling" and winner_before is None:
                t_final = time.monotonic()
                winner_before = True
            if cyc is not None and cyc.status == "settled":
                break
            await asyncio.sleep(0.5)
        t_settled = time.monotonic()
    finally:
        stop.set()
        await asyncio.gather(*runs, return_exceptions=True)
    assert killed is None, "the miners never committed"
    # settled on-chain by executeSigned, with exactly the ledger's payouts
    reader = HttpGateway.from_urls(com.api_urls, timeout=20)
    st = await reader.settlement(cyc.nonce)
    await reader.aclose()
    assert st is not None
    assert com.contracts.multisig.nonce_used(cyc.nonce)
    live = [i for i in range(com.n) if i != 3]
    sets = []
    for i in live:
        p = com.data_dir(i) / "settlements.jsonl"
        if p.exists():
            sets += [json.loads(x) for x in p.read_text().splitlines()]
    landed = [s for s in sets if s["fn"] == "executeSigned"]
    assert len(landed) == 1, sets
    # payouts: the order's reward went out of escrow and summed exactly
    batch = st.settlement
    [os_] = batch.orders
    assert sum(p.amount for p in os_.paid(batch.members)) == 100 * TOKEN
    assert os_.winner in {m.address for m in miners}
    bal = com.contracts.token.balance_of(os_.winner)
    assert bal >= sum(p.amount for p in os_.payouts if p.to == os_.winner)
    print(f"\nexecuteSigned gas={landed[0]['gas']} finalize->settled={t_settled - t_final:.1f}s")
    # the live replicas agree on the ledger
    com.wait_for(lambda: len({com.info(i)["ledgerDigest"] for i in live if com.info(i)}) == 1
                 and all(com.info(i) for i in live), 20, "matching digests")

