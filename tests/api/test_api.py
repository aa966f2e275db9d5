"""The aggregator API over in-process ledgers: every endpoint, refusals with their precise
reasons, size limits, BFT reads against a lying replica, and one real uvicorn socket."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
import uvicorn
from eth_account import Account
from fastapi.testclient import TestClient

from pot.api import ApiClient, CommitteeClient, LocalNode, NoQuorum, create_app
from pot.chain.anvil import DEV_KEYS
from pot.ledger import Ledger, LedgerConfig
from pot.ports import free_port
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.finalize import Params
from pot.protocol.ids import claim_commitment, model_type_to_bytes

MINER, STRANGER, CLIENT, MEMBER = (Account.from_key(k) for k in DEV_KEYS[1:5])
ORDER_BOOK = "0x" + "11" * 20
MULTISIG = "0x" + "22" * 20
T0 = 1_000


def order(oid: int, reward: int, train: int) -> T.Order:
    return T.Order(oid, CLIENT.address, reward, T0, train, 10, 10, 10,
                   model_type_to_bytes("classification-accuracy-v1"), f"bafyspec{oid}", b"\x07" * 32)


def make_ledger(reward_of_2: int = 500) -> Ledger:
    cfg = LedgerConfig(31337, ORDER_BOOK, MULTISIG, (MEMBER.address,), Params())
    ledger = Ledger(cfg)
    ops = [T.StakeChanged(MINER.address, T.MINER, 10),
           T.OrderPlaced(order(1, 100, 100)),          # 1.0 per second
           T.OrderPlaced(order(2, reward_of_2, 100)),  # 5.0 per second
           T.OrderPlaced(order(3, 300, 100)),          # 3.0 per second
           T.OrderPlaced(order(4, 50, 1))]             # training ends at T0 + 1: never claimed
    for op in ops:
        assert ledger.apply(op, T0).ok
    assert ledger.apply(T.Tick(), T0 + 1).ok
    return ledger


class Clock:
    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def commit(oid: int = 1, key=MINER, who=None, mid=b"\x01" * 32, salt=b"\x02" * 32) -> T.Signed:
    who = who or key.address
    msg = T.ClaimCommit(oid, who, claim_commitment(oid, who, mid, salt))
    return msg.sign(LedgerConfig(31337, ORDER_BOOK, MULTISIG, (MEMBER.address,)).message_domain, key.key)


@pytest.fixture
def api():
    ledger = make_ledger()
    clock = Clock(T0 + 1)
    with TestClient(create_app(LocalNode(ledger, clock))) as tc:
        tc.ledger, tc.clock = ledger, clock
        yield tc


# --- submissions ----------------------------------------------------------------------------

def test_submit_raw_hex_and_json_bodies(api):
    raw = codec.encode(commit(mid=b"\x01" * 32))
    r = api.post("/v1/messages", content=raw, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["ok"] and r.json()["reason"] == "OK"
    assert r.json()["digest"].startswith("0x")
    r = api.post("/v1/messages", content=codec.encode(commit(mid=b"\x03" * 32)).hex())
    assert r.status_code == 200, r.text
    r = api.post("/v1/messages", json={"message": "0x" + codec.encode(commit(mid=b"\x04" * 32)).hex()})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "claim replaced"
    assert len(api.ledger.cycle(1).claims) == 1


@pytest.mark.parametrize("make, status, reason", [
    (lambda: b"\x90garbage", 400, "MALFORMED"),
    (lambda: b"", 400, "MALFORMED"),
    (lambda: codec.encode(commit()) + b"\x00", 400, "MALFORMED"),
    # signed by one key, claiming to be another: a forged message
    (lambda: codec.encode(commit(key=STRANGER, who=MINER.address)), 401, "BAD_SIGNATURE"),
    (lambda: codec.encode(commit(key=STRANGER)), 403, "NOT_ENOUGH_STAKE"),
    (lambda: codec.encode(commit(oid=99)), 404, "UNKNOWN_ORDER"),
    (lambda: codec.encode(commit(oid=4)), 422, "WRONG_WINDOW"),
    # only participants' signed messages come through the API, never chain events or ticks
    (lambda: codec.encode(T.OrderPlaced(order(9, 1, 1))), 403, "NOT_AUTHORIZED"),
    (lambda: codec.encode(T.Tick()), 403, "NOT_AUTHORIZED"),
])
def test_submit_refusals_say_why(api, make, status, reason):
    seq = api.ledger.seq
    r = api.post("/v1/messages", content=make(), headers={"content-type": "application/octet-stream"})
    assert r.status_code == status, r.text
    body = r.json()
    assert body["ok"] is False and body["reason"] == reason and body["code"] == T.Reason[reason]
    assert body["text"]
    assert api.ledger.seq == seq


def test_replay_is_refused(api):
    raw = codec.encode(commit())
    assert api.post("/v1/messages", content=raw, headers={"content-type": "application/octet-stream"}).status_code == 200
    r = api.post("/v1/messages", content=raw, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 409 and r.json()["reason"] == "REPLAY"


def test_oversized_and_non_hex_bodies(api):
    big = b"\x90" + b"\x00" * (codec.MAX_FRAME_BYTES + 1)
    r = api.post("/v1/messages", content=big, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 413 and r.json()["reason"] == "TOO_LARGE"
    r = api.post("/v1/messages", content=big.hex())
    assert r.status_code == 413
    r = api.post("/v1/messages", content="not hex at all")
    assert r.status_code == 400 and r.json()["reason"] == "MALFORMED"
    r = api.post("/v1/messages", content='{"msg": 1}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "message" in r.json()["text"]


# --- reads ----------------------------------------------------------------------------------

def test_fetch_orders_sorted_by_reward_per_training_second(api):
    fetch = {"sort": "reward"}
    r = api.get("/v1/orders", params=fetch)
    assert r.status_code == 200
    ids = [o["order"]["orderId"] for o in r.json()["orders"]]
    assert ids == [2, 3, 1]  # order 4 pays most per second, but its training is over
    assert [o["order"]["orderId"] for o in api.get("/v1/orders", params={**fetch, "limit": 2}).json()["orders"]] == [2, 3]
    # without sort: every order, newest first
    assert [o["order"]["orderId"] for o in api.get("/v1/orders").json()["orders"]] == [4, 3, 2, 1]
    active = api.get("/v1/orders", params={"phase": "active"}).json()["orders"]
    assert [o["order"]["orderId"] for o in active] == [4, 3, 2, 1]
    reveal = api.get("/v1/orders", params={"phase": "model-reveal"}).json()["orders"]
    assert [o["order"]["orderId"] for o in reveal] == [4]
    assert api.get("/v1/orders", params={"phase": "validation"}).json()["orders"] == []
    assert api.get("/v1/orders", params={"phase": "bogus"}).status_code == 400
    assert api.get("/v1/orders", params={"limit": 0}).status_code == 422


def test_order_validations_model_node_endpoints(api):
    mid, salt = b"\x05" * 32, b"\x06" * 32
    assert api.post("/v1/messages", content=codec.encode(commit(mid=mid, salt=salt)),
                    headers={"content-type": "application/octet-stream"}).status_code == 200
    r = api.get("/v1/orders/1")
    assert r.status_code == 200
    doc = r.json()
    assert doc["order"]["orderId"] == 1 and doc["claims"][0]["miner"] == MINER.address
    assert doc["phase"] == "training" and doc["seq"] == api.ledger.seq
    assert api.get("/v1/orders/77").status_code == 404
    assert api.get("/v1/orders/x").status_code == 422
    assert api.get("/v1/orders/1/validations").json() == {"orderId": 1, "validations": []}
    assert api.get("/v1/orders/77/validations").status_code == 404

    # reveal in the reveal window, then the model link exists
    api.clock.t = T0 + 100
    reveal = T.ClaimReveal(1, MINER.address, mid, salt, "bafymodel").sign(api.ledger.config.message_domain, MINER.key)
    r = api.post("/v1/messages", content=codec.encode(reveal).hex())
    assert r.status_code == 200, r.text
    assert api.get(f"/v1/models/0x{mid.hex()}").json() == {"mid": "0x" + mid.hex(), "cid": "bafymodel"}
    assert api.get(f"/v1/models/{mid.hex()}").status_code == 200
    assert api.get("/v1/models/0x" + "ab" * 32).status_code == 404
    assert api.get("/v1/models/0x1234").status_code == 400

    node = api.get(f"/v1/nodes/{MINER.address}").json()
    assert node == {"address": MINER.address, "roles": T.MINER, "stake": 10, "locked": 0}
    assert api.get(f"/v1/nodes/{STRANGER.address}").status_code == 404
    assert api.get("/v1/nodes/0xnothex").status_code == 400


def test_settlements_health_info(api):
    assert api.get("/v1/settlements/pending").json() == {"settlements": []}
    assert api.get("/v1/settlements/1").status_code == 404
    # order 4 had no claim: after its last window the tick settles it back to the client
    assert api.ledger.apply(T.Tick(), T0 + 100).ok
    [p] = api.get("/v1/settlements/pending").json()["settlements"]
    assert p["orderIds"] == [4] and p["ready"] is False and p["signatures"] == []
    assert p["settlement"]["orders"][0]["payouts"] == [{"to": CLIENT.address, "amount": 50}]
    one = api.get(f"/v1/settlements/{p['nonce']}").json()
    assert one["executed"] is False and one["digest"] == p["digest"]

    assert api.get("/v1/health").json()["status"] == "ok"
    info = api.get("/v1/info").json()
    assert info["ledgerDigest"] == "0x" + api.ledger.digest().hex()
    assert info["ledgerSeq"] == api.ledger.seq and info["view"] == 0 and info["chainId"] == 31337
    assert info["committee"] == [MEMBER.address]


# --- BFT reads ------------------------------------------------------------------------------

def _replica(ledger: Ledger, name: str) -> ApiClient:
    app = create_app(LocalNode(ledger, Clock(T0 + 1)))
    return ApiClient(f"http://{name}", transport=httpx.ASGITransport(app=app))


class _Down(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request):
        raise httpx.ConnectError("replica down")


def test_committee_read_outvotes_a_lying_replica():
    async def go():
        honest = [_replica(make_ledger(), f"r{i}") for i in range(3)]
        liar = _replica(make_ledger(reward_of_2=10**9), "liar")  # claims order 2 pays far more
        cc = CommitteeClient([liar, *honest])
        assert cc.f == 1
        doc = await cc.order(2)
        assert doc["order"]["reward"] == 500
        orders = await cc.orders()
        assert [o.order.reward for o in orders] == [500, 300, 100]
        assert await cc.model_link(b"\x09" * 32) is None  # 404 is an answer too, agreed on
        assert (await cc.node(MINER.address))["stake"] == 10
        # one replica down and one lying: the two honest ones still agree
        down = ApiClient("http://down", transport=_Down())
        cc2 = CommitteeClient([liar, down, honest[0], honest[1]])
        assert (await cc2.order(2))["order"]["reward"] == 500
        # nobody agrees: no answer rather than a wrong one
        cc3 = CommitteeClient([liar, down, honest[0], _replica(make_ledger(reward_of_2=7), "other")])
        with pytest.raises(NoQuorum):
            await cc3.order(2)
        # submissions go to f+1 replicas; one acceptance is enough
        res = await cc.submit(commit())
        assert res.ok
        await cc.aclose()
        await cc3.aclose()

    asyncio.run(go())


# --- a real socket --------------------------------------------------------------------------

def test_real_uvicorn_server():
    ledger = make_ledger()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(LocalNode(ledger, Clock(T0 + 1))), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

        async def go():
            async with ApiClient(f"http://127.0.0.1:{port}") as c:
                assert (await c.health())["status"] == "ok"
                res = await c.submit(commit())
                assert res.ok and res.reason == 0
                again = await c.submit(commit())
                assert not again.ok and again.reason_enum is T.Reason.REPLAY
                assert [o.order_id for o in await c.fetch_orders()] == [2, 3, 1]
                assert json.loads(json.dumps(await c.info()))["ledgerSeq"] == ledger.seq

        asyncio.run(go())
    finally:
        server.should_exit = True
        thread.join(timeout=10)
