"""The explorer's side of the API over a ledger built by the real rules (``explorer_world``):
order filters and paging, outcomes with the tax, settlements, accounts, settlement receipts from a
real Anvil, the committee as seen over real sockets, the offline page and API reference, and the
OpenAPI document checked against real answers."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

import explorer_world as W
from pot.api import LocalNode, create_app, schemas, views
from pot.api.explorer import STATIC
from pot.ports import free_port
from pot.protocol import types as T

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def world():
    return W.build()


@pytest.fixture(scope="module")
def api(world):
    with TestClient(create_app(LocalNode(world, lambda: W.NOW))) as tc:
        yield tc


def ids(doc) -> list[int]:
    return [o["order"]["orderId"] for o in doc["orders"]]


def get(api, path, model=None, **params):
    r = api.get(path, params=params)
    assert r.status_code == 200, r.text
    doc = r.json()
    if model is not None:
        model.model_validate(doc)  # the OpenAPI document describes what is really served
    return doc


# --- /v1/orders -------------------------------------------------------------------------------

def test_every_order_newest_first_with_filters(api):
    doc = get(api, "/v1/orders", schemas.OrderList)
    assert ids(doc) == [3, 2, 1] and doc["total"] == 3 and doc["nextCursor"] is None
    first = {o["order"]["orderId"]: o for o in doc["orders"]}
    assert first[1]["winner"] == W.WINNER.addr and first[1]["nonce"] == 1 and first[1]["claims"] == 2
    assert first[2]["phase"] == "training" and first[2]["phaseEnd"] == first[2]["timeline"]["train_end"]
    assert first[3]["cancelled"] and first[3]["winner"] is None

    assert ids(get(api, "/v1/orders", status="settled")) == [1]
    assert ids(get(api, "/v1/orders", status="cancelled")) == [3]
    assert ids(get(api, "/v1/orders", status="open")) == [2]
    assert ids(get(api, "/v1/orders", phase="training")) == [2]
    assert ids(get(api, "/v1/orders", phase="active")) == [2]   # settled and cancelled ones are out of their cycle
    assert ids(get(api, "/v1/orders", client=W.CLIENT.addr.lower())) == [3, 2, 1]
    assert ids(get(api, "/v1/orders", client=W.MINERS[0].addr)) == []
    assert ids(get(api, "/v1/orders", miner=W.MINERS[1].addr)) == [1]
    assert ids(get(api, "/v1/orders", miner=W.MINERS[2].addr)) == []
    assert ids(get(api, "/v1/orders", sort="reward")) == [2]      # FetchOrders: in training only
    for bad in ({"status": "lost"}, {"phase": "nap"}, {"client": "0x12"}, {"miner": "me"},
                {"sort": "reward", "cursor": 2}, {"sort": "reward", "phase": "validation"}):
        r = api.get("/v1/orders", params=bad)
        assert r.status_code == 400 and r.json()["error"] == "bad-request", (bad, r.text)
    assert api.get("/v1/orders", params={"sort": "oldest"}).status_code == 422


def test_paging_is_stable_while_orders_arrive():
    led = W.build()
    with TestClient(create_app(LocalNode(led, lambda: W.NOW))) as api:
        page1 = get(api, "/v1/orders", limit=2)
        assert ids(page1) == [3, 2] and page1["nextCursor"] == 2 and page1["total"] == 3
        # a new order between two pages moves nothing on the next page
        newer = T.Order(4, W.CLIENT.addr, 10**18, W.NOW, 50, 20, 50, 30, led.order(1).model_type, "s", b"\x04" * 32)
        assert led.apply(T.OrderPlaced(newer), W.NOW).ok
        page2 = get(api, "/v1/orders", limit=2, cursor=page1["nextCursor"])
        assert ids(page2) == [1] and page2["nextCursor"] is None and page2["total"] == 4
        assert ids(get(api, "/v1/orders", limit=2)) == [4, 3]


# --- outcome, settlements, accounts -------------------------------------------------------------

def test_outcome_pays_the_reward_with_the_tax_and_names_the_slashes(api, world):
    out = get(api, "/v1/orders/1/outcome", schemas.OrderOutcome)
    assert out["winner"] == W.WINNER.addr and out["winningScore"] == 900_000
    assert out["executed"] and out["applied"] and out["txHash"] == "0x" + W.TX_HASH.hex() and out["nonce"] == 1
    settlement = world.settlement(1)
    assert [(p["to"], p["amount"]) for p in out["paid"]] == [(p.to, p.amount) for p in settlement.paid(1)]
    assert sum(p["amount"] for p in out["paid"]) == world.order(1).reward
    by = {p["to"]: p for p in out["paid"]}
    assert by[W.WINNER.addr]["roles"][0] == "winner"
    members = [p for p in out["paid"] if "committee" in p["roles"]]
    assert len(members) == 4 and all(p["amount"] == out["perMember"] > 0 for p in members)
    assert W.LIAR.addr not in by
    assert {s["staker"] for s in out["slashes"]} == {W.LIAR.addr}
    assert out["verdicts"] == [{"orderId": 1, "challenger": W.VERIFIER_.addr, "upheld": True, "validator": W.LIAR.addr}]

    pending = get(api, "/v1/orders/2/outcome", schemas.OrderOutcome)
    assert pending["nonce"] is None and pending["paid"] == [] and pending["winner"] is None
    refund = get(api, "/v1/orders/3/outcome", schemas.OrderOutcome)
    assert refund["executed"] is False and refund["paid"] == [
        {"to": W.CLIENT.addr, "amount": world.order(3).reward, "roles": ["client"]}]
    assert api.get("/v1/orders/99/outcome").status_code == 404


def test_settlements_newest_first(api, world):
    doc = get(api, "/v1/settlements", schemas.SettlementList)
    assert [s["nonce"] for s in doc["settlements"]] == [2, 1] and doc["total"] == 2
    one = doc["settlements"][1]
    assert one["executed"] and one["txHash"] == "0x" + W.TX_HASH.hex() and one["orderIds"] == [1]
    assert one["total"] == world.order(1).reward and len(one["slashes"]) == 2
    assert [s["nonce"] for s in get(api, "/v1/settlements", executed="true")["settlements"]] == [1]
    page = get(api, "/v1/settlements", limit=1)
    assert [s["nonce"] for s in page["settlements"]] == [2] and page["nextCursor"] == 2
    assert [s["nonce"] for s in get(api, "/v1/settlements", limit=1, cursor=2)["settlements"]] == [1]
    get(api, "/v1/settlements/1", schemas.SettlementDoc)
    get(api, "/v1/settlements/pending", schemas.PendingList)


def test_accounts(api, world):
    winner = get(api, f"/v1/accounts/{W.WINNER.addr}", schemas.Account)
    assert winner["node"]["roleNames"] == ["miner"]
    assert winner["earned"] == world.settlement(1).paid(1)[0].amount and winner["pending"] == 0
    assert [(o["orderId"], o["roles"]) for o in winner["orders"]] == [(1, ["winner", "miner"])]

    liar = get(api, f"/v1/accounts/{W.LIAR.addr}", schemas.Account)
    assert liar["earned"] == 0 and liar["slashed"] == sum(s.amount for s in world.settlement(1).slashes)
    assert [o["roles"] for o in liar["orders"]] == [["validator"]]

    client = get(api, f"/v1/accounts/{W.CLIENT.addr.lower()}", schemas.Account)
    assert client["address"] == W.CLIENT.addr and client["node"] is None
    assert client["pending"] == world.order(3).reward and client["earned"] == 0   # settlement 2 not executed
    assert [o["orderId"] for o in client["orders"]] == [3, 2, 1]

    verifier = get(api, f"/v1/accounts/{W.VERIFIER_.addr}", schemas.Account)
    assert [e["source"] for e in verifier["earnings"]] == ["slash"]

    member = get(api, f"/v1/accounts/{W.COMMITTEE[0].addr}", schemas.Account)
    assert member["member"] and member["earned"] == world.settlement(1).orders[0].per_member
    assert member["orders"] == []   # taxing every order is not taking part in it
    assert api.get("/v1/accounts/0xabc").status_code == 400


def test_ledger_reads_are_byte_identical_on_replicas_with_the_same_history():
    a, b = (TestClient(create_app(LocalNode(W.build(), lambda: W.NOW))) for _ in range(2))
    for path in ("/v1/orders", "/v1/orders?status=settled&limit=1", "/v1/orders/1/outcome", "/v1/settlements",
                 f"/v1/accounts/{W.WINNER.addr}"):
        assert a.get(path).content == b.get(path).content, path


# --- receipts from a real chain node ------------------------------------------------------------

def test_settlement_receipt_comes_from_the_replicas_chain_node(anvil):
    w3 = anvil.w3()
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": w3.eth.accounts[1], "value": 1})
    mined = w3.eth.wait_for_transaction_receipt(tx)
    led = W.build(tx_hash=bytes(tx))
    with TestClient(create_app(LocalNode(led, lambda: W.NOW), rpc_url=anvil.url)) as api:
        r = get(api, "/v1/settlements/1/receipt", schemas.Receipt)
        assert r["gasUsed"] == mined["gasUsed"] == r["gasPerOrder"] and r["blockNumber"] == mined["blockNumber"]
        assert r["status"] == 1 and r["sender"] == w3.eth.accounts[0] and r["blockTime"] > 0
        assert api.get("/v1/settlements/2/receipt").status_code == 404   # not executed
        assert api.get("/v1/settlements/9/receipt").status_code == 404
    # a hash the chain never saw, and no chain node at all
    with TestClient(create_app(LocalNode(W.build(), lambda: W.NOW), rpc_url=anvil.url)) as api:
        assert api.get("/v1/settlements/1/receipt").status_code == 404
    with TestClient(create_app(LocalNode(W.build(), lambda: W.NOW))) as api:
        r = api.get("/v1/settlements/1/receipt")
        assert r.status_code == 503 and "chain node" in r.json()["detail"]


# --- the committee over real sockets ------------------------------------------------------------

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


def test_committee_view_says_who_answers_and_whether_digests_agree():
    dead = f"http://127.0.0.1:{free_port()}"
    with _Server(create_app(LocalNode(W.build(), lambda: W.NOW, replica_id=1))) as peer, \
            _Server(create_app(LocalNode(W.build(), lambda: W.NOW, replica_id=2))) as twin:
        me = create_app(LocalNode(W.build(), lambda: W.NOW, replica_id=0), peers=[peer.url, twin.url, dead])
        with TestClient(me) as api:
            c = get(api, "/v1/committee", schemas.Committee)
            by = {m["url"]: m for m in c["members"]}
            assert by[peer.url]["ok"] and by[peer.url]["replicaId"] == 1 and not by[peer.url]["self"]
            assert not by[dead]["ok"] and by[dead]["error"]
            assert c["answering"] == 2 and c["digestsAgree"] and c["views"] == [0] and c["behind"] == []
            assert c["committee"] == list(W.build().config.committee)

    # a replica at the same sequence number with another state: the page must say so
    other = W.build()
    with _Server(create_app(LocalNode(other, lambda: W.NOW, replica_id=1))) as peer, \
            _Server(create_app(LocalNode(W.build(), lambda: W.NOW, replica_id=2))) as twin:
        # a divergent copy (what a bug or an attack would leave): one row differs, nothing else
        node = other._nodes[bytes.fromhex(W.WINNER.addr[2:])]
        other._put(node._replace(stake=node.stake + 1))
        with TestClient(create_app(LocalNode(W.build(), lambda: W.NOW), peers=[peer.url, twin.url])) as api:
            c = get(api, "/v1/committee", schemas.Committee)
            assert c["answering"] == 2 and not c["digestsAgree"]


def test_committee_view_without_peers_is_this_replica(api, world):
    c = get(api, "/v1/committee", schemas.Committee)
    [m] = c["members"]
    assert m["self"] and m["ok"] and m["ledgerSeq"] == world.seq and m["ledgerDigest"] == "0x" + world.digest().hex()


# --- the page, the API reference, the OpenAPI document ------------------------------------------

def _local_refs(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#]+)"', html)


def test_explorer_page_loads_only_its_own_files(api):
    r = api.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    refs = _local_refs(r.text)
    assert {"explorer/app.js", "explorer/app.css", "explorer/favicon.svg", "docs"} <= set(refs)
    for ref in refs:
        assert "//" not in ref, f"{ref}: the explorer must work offline"
        assert api.get("/" + ref).status_code == 200, ref
    js = api.get("/explorer/app.js").text
    # network data goes into the page as text only: no markup is ever assigned or inserted
    assert not re.search(r"(innerHTML|outerHTML)\s*\+?=(?!=)|insertAdjacentHTML|document\.write", js)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", js + api.get("/explorer/app.css").text)


def test_docs_are_served_offline(api):
    r = api.get("/docs")
    assert r.status_code == 200 and "Swagger" not in r.headers.get("server", "")
    refs = _local_refs(r.text)
    assert "docs/assets/swagger-ui-bundle.js" in refs and "docs/assets/swagger-ui.css" in refs
    for ref in refs:
        assert "//" not in ref, ref
        assert api.get("/" + ref).status_code == 200, ref
    assert "validatorUrl: null" in api.get("/docs/assets/init.js").text
    assert api.get("/v1/docs").status_code == 404


def test_openapi_documents_every_route_with_its_answer(api):
    doc = get(api, "/openapi.json")
    paths = doc["paths"]
    expected = {"/v1/messages", "/v1/orders", "/v1/orders/{order_id}", "/v1/orders/{order_id}/validations",
                "/v1/orders/{order_id}/outcome", "/v1/models/{mid}", "/v1/nodes/{address}", "/v1/settlements",
                "/v1/settlements/pending", "/v1/settlements/{nonce}", "/v1/settlements/{nonce}/receipt",
                "/v1/accounts/{address}", "/v1/committee", "/v1/health", "/v1/info"}
    assert expected <= set(paths), expected - set(paths)
    for path, ops in paths.items():
        for method, op in ops.items():
            ok = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert "$ref" in ok, f"{method.upper()} {path} has no response model"
            assert op.get("description") or op.get("summary"), f"{method.upper()} {path} is undocumented"
    params = {p["name"] for p in paths["/v1/orders"]["get"]["parameters"]}
    assert {"phase", "status", "client", "miner", "limit", "cursor", "sort"} <= params
    # the routes that serve the page are not part of the API
    assert "/" not in paths and "/docs" not in paths
    get(api, "/v1/orders/1", schemas.OrderCycle)
    get(api, "/v1/health", schemas.Health)
    get(api, "/v1/info", schemas.Info)
    get(api, f"/v1/nodes/{W.WINNER.addr}", schemas.NodeInfo)
    get(api, "/v1/orders/1/validations", schemas.ValidationList)


def test_vendored_swagger_ui_is_the_pinned_package():
    pin = json.loads((REPO / "package.json").read_text())["devDependencies"]["swagger-ui-dist"]
    assert (STATIC / "swagger" / "VERSION").read_text().strip() == pin
    src = REPO / "node_modules" / "swagger-ui-dist"
    if not (src / "package.json").exists():
        pytest.skip("node_modules has no swagger-ui-dist (npm ci)")
    assert json.loads((src / "package.json").read_text())["version"] == pin
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        assert (STATIC / "swagger" / name).read_bytes() == (src / name).read_bytes(), \
            f"{name} differs from node_modules: bash scripts/vendor-assets.sh"


def test_views_of_an_empty_ledger():
    from pot.ledger import Ledger

    led = Ledger(W.build().config)
    assert views.list_orders(led) == {"orders": [], "nextCursor": None, "total": 0}
    assert views.list_settlements(led) == {"settlements": [], "nextCursor": None, "total": 0}
    acct = views.account(led, W.WINNER.addr)
    assert acct["node"] is None and acct["orders"] == [] and acct["earned"] == 0


def test_an_account_page_reads_only_that_accounts_orders(world):
    """/v1/accounts and ?miner= read the orders the archive's account index names (and the open
    ones), not the whole history: an archived order the account had no part in is never read back."""
    roles = {}
    for oid in world.order_ids():
        st = world.order_state(oid)
        _sst, batch = views._settlement_of(world, st)
        for who in (W.WINNER, W.LIAR, W.CLIENT, W.VERIFIER_, W.COMMITTEE[0], W.MINERS[2]):
            if views._roles_in(st, st.order, batch.members if batch else (), who.addr):
                roles.setdefault(who.addr, set()).add(oid)
    open_ids = set(world.open_order_ids())
    for who in (W.WINNER, W.LIAR, W.CLIENT, W.VERIFIER_, W.COMMITTEE[0], W.MINERS[2]):
        got = views.account_order_ids(world, who.addr)
        assert got == sorted(set(got), reverse=True)
        assert set(got) - open_ids == roles.get(who.addr, set()) - open_ids, who.addr
    assert set(views.account_order_ids(world, W.WINNER.addr)) - open_ids == {1}
    assert world.archived_order_ids(account=W.MINERS[2].addr) == []
