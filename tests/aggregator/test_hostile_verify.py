"""PoT.Verify on a hostile model, with 4 real ``pot aggregator run`` processes and a real Anvil:
a revealed file naming its architecture as a list made ``Scorer.score`` raise TypeError, so no
replica ever sent its VerifyResult and the order stayed "verifying" for good (issue 10, item 9).
Now the hostile model is verified at 0 with a reason, the honest one at its score, and the order
settles. Nobody validates, so every revealed model goes to PoT.Verify."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import struct
import time

from committee_support import MIN_STAKE, TOKEN, Committee
from eth_account import Account

from pot.chain.anvil import DEV_KEYS
from pot.ml import TaskSpec, build_model, save_model
from pot.protocol import types as T
from pot.protocol.ids import claim_commitment
from pot.roles.base import ChainAccess
from pot.roles.client import Client
from pot.roles.config import ClientConfig, MinerConfig
from pot.roles.gateway import HttpGateway
from pot.roles.miner import Miner
from pot.storage import EmbeddedStore


def arch_as_list(honest: bytes) -> bytes:
    (n,) = struct.unpack("<Q", honest[:8])
    header = json.loads(honest[8 : 8 + n])
    meta = header["__metadata__"]
    header["__metadata__"] = {**meta, "pot.arch": meta["pot.arch"].replace('"arch":"mlp"', '"arch":["mlp"]')}
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return struct.pack("<Q", len(raw)) + raw + honest[8 + n :][:256]


def test_pot_verify_gives_a_hostile_model_zero_and_the_order_settles(anvil, tmp_path):
    com = Committee(anvil, tmp_path)
    try:
        com.start_all()
        asyncio.run(_cycle(com, tmp_path))
    finally:
        com.stop_all()
    for i in range(com.n):
        assert "Traceback" not in com.log(i), com.log(i)[-3000:]


async def _cycle(com: Committee, tmp):
    names = ["client", "miner_a", "miner_b"]
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
        dataset="digits", arch="mlp", model={"hidden": [16]}, reward=100 * TOKEN, train_duration=10,
        validate_duration=3, challenge_duration=2, reveal_duration=3))
    miners = {n: worker(Miner, n, MinerConfig(stake=MIN_STAKE)) for n in ("miner_a", "miner_b")}
    deadline = time.monotonic() + 30
    while not all([await m.ensure_staked() for m in miners.values()]):
        assert time.monotonic() < deadline, "stakes never reached the ledger"
        await asyncio.sleep(0.3)

    oid = await client.place_order()
    t_placed = time.monotonic()
    while (cyc := await client.gateway.cycle(oid)) is None:
        assert time.monotonic() - t_placed < 20, "OrderPlaced never attested"
        await asyncio.sleep(0.2)
    order = cyc.order
    spec = TaskSpec.from_json(store.get(order.spec_cid))
    honest = save_model(build_model(spec.model, seed=1))
    files = {"miner_a": arch_as_list(honest), "miner_b": honest}  # the hostile one is revealed first
    mids = {n: hashlib.sha256(b).digest() for n, b in files.items()}
    salts = {n: os.urandom(32) for n in files}
    for n, m in miners.items():
        res = await m.send("commit", T.ClaimCommit(oid, m.address, claim_commitment(oid, m.address, mids[n], salts[n])), oid)
        assert res.ok, res
    await asyncio.sleep(max(0.0, order.t0 + order.train_duration + 1 - time.time()))
    for n, m in miners.items():
        cid = store.add_bytes(files[n])
        res = await m.send("reveal", T.ClaimReveal(oid, m.address, mids[n], salts[n], cid), oid)
        assert res.ok, res

    stop = asyncio.Event()
    run = asyncio.create_task(client.run_forever(stop))  # releases the test data in its window
    try:
        deadline = time.monotonic() + 120
        while True:
            cyc = await client.gateway.cycle(oid)
            assert time.monotonic() < deadline, f"order {oid} never settled: {cyc and cyc.status}"
            if cyc is not None and cyc.status == "settled":
                break
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(run, return_exceptions=True)
    verified = {m.mid: m.verified_score for m in cyc.models}
    assert verified[mids["miner_a"]] == 0
    assert verified[mids["miner_b"]] > 0
    reader = HttpGateway.from_urls(com.api_urls, timeout=20)  # the client closed its own on stopping
    st = await reader.settlement(cyc.nonce)
    await reader.aclose()
    [os_] = st.settlement.orders
    assert os_.winner == miners["miner_b"].address and os_.winning_mid == mids["miner_b"]
    logs = "".join(com.log(i) for i in range(com.n))
    assert "PoT.Verify mid=%s score=0 (not an acceptable model" % mids["miner_a"].hex()[:16] in logs
