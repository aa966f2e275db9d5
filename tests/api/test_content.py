"""The committee's content service over a real ledger, a real store and real HTTP: who may upload
what for which order (signed, by the order's client or a staked miner with a claim), every size and
hash check, quotas, the retention of what settled orders uploaded (the winner's model stays), and a
participant reading through the committee with a ``MirroredStore``."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from eth_account import Account
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "ledger"))

from ledger_world import (CHALLENGE, CLIENT, CREVEAL_END, DOMAIN, MINERS, REVEAL, T0, T3, TRAIN,  # noqa: E402
                          TRAIN_END, VALIDATE, VALIDATE_END, VALIDATORS, commit, model_type_to_bytes, salt,
                          staked_ledger, vcommit, vreveal)

from pot.api import LocalNode, create_app  # noqa: E402
from pot.api.client import CommitteeClient, UploadRefused  # noqa: E402
from pot.api.content import ContentIndex, ContentLimits, ContentService  # noqa: E402
from pot.ports import free_port  # noqa: E402
from pot.protocol import types as T  # noqa: E402
from pot.protocol.content import ContentUpload  # noqa: E402
from pot.storage import EmbeddedStore, HttpGatewayStore, MirroredStore, compute_cid  # noqa: E402

SPEC = b'{"a task spec": true}' * 10
MODELS = [b"model file of miner %d " % i * 50 for i in range(2)]


def mid_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def headers(who, order_id: int, data: bytes, *, cid: str | None = None, size: int | None = None,
            expires: int | None = None, signer=None) -> tuple[str, dict]:
    cid = cid or compute_cid(data)
    up = ContentUpload(who.addr, order_id, cid, len(data) if size is None else size,
                       int(time.time()) + 600 if expires is None else expires)
    signed = up.sign(DOMAIN, (signer or who).key)
    return cid, {**up.headers(signed.signature), "content-type": "application/octet-stream"}


class Stranger:
    def __init__(self) -> None:
        acct = Account.create()
        self.key, self.addr = bytes(acct.key), acct.address


def order_with_claims():
    """Order 1 in training, both miners committed to real model files."""
    led = staked_ledger()
    order = T.Order(1, CLIENT.addr, 10**18, T0, TRAIN, REVEAL, VALIDATE, CHALLENGE,
                    model_type_to_bytes("classification-accuracy-v1"), compute_cid(SPEC), b"\x01" * 32)
    assert led.apply(T.OrderPlaced(order), T0).ok
    for i, m in enumerate(MINERS[:2]):
        assert led.apply(commit(m, 1, mid_of(MODELS[i])), T0 + 1 + i).ok
    return led


@pytest.fixture
def service(tmp_path):
    led = order_with_claims()
    clock = [time.time()]
    svc = ContentService(EmbeddedStore(tmp_path / "store"), led,
                         ContentLimits(max_upload_mb=0.01, quota_mb=0.02, retention_s=100),
                         ContentIndex(tmp_path / "content.sqlite"), upload_dir=tmp_path / "uploads",
                         clock=lambda: clock[0])
    svc.clock_value = clock
    return svc


@pytest.fixture
def api(service):
    with TestClient(create_app(LocalNode(service.ledger, lambda: T0 + 5), content=service)) as tc:
        yield tc


def put(api, who, order_id, data, **kw):
    cid, h = headers(who, order_id, data, **kw)
    return cid, api.put(f"/v1/content/{cid}", content=data, headers=h)


def test_the_client_and_miners_with_a_claim_upload_and_everyone_reads_it_back(api):
    cid, r = put(api, CLIENT, 1, SPEC)
    assert r.status_code == 201 and r.json()["stored"] == "now"
    assert put(api, CLIENT, 1, SPEC)[1].status_code == 200  # held already
    got = api.get(f"/ipfs/{cid}")
    assert got.status_code == 200 and got.content == SPEC
    head = api.head(f"/ipfs/{cid}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(SPEC)
    assert put(api, MINERS[0], 1, MODELS[0])[1].status_code == 201
    assert api.get(f"/ipfs/{compute_cid(b'never uploaded')}").status_code == 404


@pytest.mark.parametrize("case, status", [
    ("stranger", 403), ("miner without a claim", 403), ("forged", 401), ("unknown order", 404),
    ("expired", 403), ("too long a validity", 403), ("short body", 400), ("long body", 413),
    ("wrong bytes", 422), ("over the upload limit", 413), ("bad cid", 400)])
def test_what_is_refused_before_or_while_reading(api, service, case, status):
    data = SPEC
    if case == "stranger":
        r = put(api, Stranger(), 1, data)[1]
    elif case == "miner without a claim":
        r = put(api, MINERS[2], 1, data)[1]
    elif case == "forged":  # signed by someone else in the client's name
        r = put(api, CLIENT, 1, data, signer=MINERS[2])[1]
    elif case == "unknown order":
        r = put(api, CLIENT, 7, data)[1]
    elif case == "expired":
        r = put(api, CLIENT, 1, data, expires=int(service.clock_value[0]) - 1)[1]  # by the fixture's frozen clock
    elif case == "too long a validity":
        r = put(api, CLIENT, 1, data, expires=int(service.clock_value[0]) + 10 * 86_400)[1]
    elif case == "short body":
        r = put(api, CLIENT, 1, data, size=len(data) + 5)[1]
    elif case == "long body":
        r = put(api, CLIENT, 1, data, size=len(data) - 5)[1]
    elif case == "wrong bytes":  # signed for the CID of other bytes of the same size
        cid, h = headers(CLIENT, 1, data, cid=compute_cid(b"x" * len(data)))
        r = api.put(f"/v1/content/{cid}", content=data, headers=h)
    elif case == "over the upload limit":
        r = put(api, CLIENT, 1, b"z" * 20_000)[1]
    else:
        _, h = headers(CLIENT, 1, data)
        r = api.put("/v1/content/not-a-cid", content=data, headers=h)
    assert r.status_code == status, r.text
    assert service.index.cids() == set() and not list((service.store.root / "pins").iterdir())


def test_a_quota_per_account(api):
    files = [bytes([i]) * 8000 for i in range(3)]
    assert [put(api, CLIENT, 1, f)[1].status_code for f in files] == [201, 201, 413]
    assert "quota" in put(api, CLIENT, 1, files[2])[1].json()["detail"]
    assert put(api, MINERS[0], 1, files[2])[1].status_code == 201  # a quota is per account


def test_kept_until_the_order_ended_plus_retention_and_the_winner_for_good(api, service):
    led = service.ledger
    spec_cid, _ = put(api, CLIENT, 1, SPEC)
    cids = [put(api, m, 1, MODELS[i])[0] for i, m in enumerate(MINERS[:2])]
    for i, m in enumerate(MINERS[:2]):  # the reveals link the uploaded files
        reveal = T.ClaimReveal(1, m.addr, mid_of(MODELS[i]), salt(m.name, 1, mid_of(MODELS[i])), cids[i])
        assert led.apply(reveal.sign(DOMAIN, m.key), TRAIN_END + i).ok
    assert led.apply(T.TestDataReleased(1, "bafytest", T3), T3).ok
    scores = list(enumerate((900_000, 800_000)))
    for v in VALIDATORS[:2]:
        for i, score in scores:
            assert led.apply(vcommit(v, 1, mid_of(MODELS[i]), score), T3 + 1).ok
    for v in VALIDATORS[:2]:
        for i, score in scores:
            assert led.apply(vreveal(v, 1, mid_of(MODELS[i]), score), VALIDATE_END).ok
    res = led.apply(T.Tick(), CREVEAL_END)
    assert res.ok and res.nonces == (1,), res.text
    assert service.sweep() == []  # settling: nothing goes
    assert led.apply(T.SettlementExecuted(1, (1,), b"\x01" * 32), CREVEAL_END + 1).ok
    assert service.sweep() == []  # settled now: the retention period starts
    service.clock_value[0] += 101
    gone = service.sweep()
    assert set(gone) == {spec_cid, cids[1]}
    assert api.get(f"/ipfs/{cids[0]}").content == MODELS[0]  # the winner's model stays
    assert api.get(f"/ipfs/{cids[1]}").status_code == 404
    assert api.get(f"/ipfs/{spec_cid}").status_code == 404
    assert service.index.used(MINERS[0].addr) == 0  # a kept winner counts against no quota


class _Server:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_uploads_need_2f_plus_1_replicas_and_a_reader_needs_one(tmp_path):
    """Four replicas over real sockets, one of them down: the upload lands on the other three
    (2f+1); a reader with an empty store of its own fetches it, verified, through any of them."""
    import asyncio

    services = [ContentService(EmbeddedStore(tmp_path / f"r{i}"), order_with_claims()) for i in range(3)]
    with _Server(create_app(LocalNode(services[0].ledger, lambda: T0 + 5), content=services[0])) as a, \
            _Server(create_app(LocalNode(services[1].ledger, lambda: T0 + 5), content=services[1])) as b, \
            _Server(create_app(LocalNode(services[2].ledger, lambda: T0 + 5), content=services[2])) as c:
        down = f"http://127.0.0.1:{free_port()}"
        urls = [a.url, down, b.url, c.url]
        cid = compute_cid(MODELS[0])
        up = ContentUpload(MINERS[0].addr, 1, cid, len(MODELS[0]), int(time.time()) + 600)

        async def upload(signed):
            api = CommitteeClient(urls, timeout=5.0)
            try:
                return await api.upload(signed, MODELS[0])
            finally:
                await api.aclose()

        assert asyncio.run(upload(up.sign(DOMAIN, MINERS[0].key))) == 3
        assert all(s.store.has(cid) for s in services)
        refused = ContentUpload(MINERS[2].addr, 1, cid, len(MODELS[0]), int(time.time()) + 600)
        with pytest.raises(UploadRefused, match="only its client"):
            asyncio.run(upload(refused.sign(DOMAIN, MINERS[2].key)))
        reader = MirroredStore(EmbeddedStore(tmp_path / "reader"), [HttpGatewayStore(u) for u in urls])
        assert reader.get(cid) == MODELS[0]
        assert reader.local.has(cid)  # kept: the next read is local
