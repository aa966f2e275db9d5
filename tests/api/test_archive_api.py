"""A settled order leaves the ledger's working state for its archive, and the API still serves
all of it: every claim, reveal, validation, payout and signature, the same as before it settled,
and the same again after the replica restarts from its file."""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "ledger"))

from ledger_world import COMMITTEE, CONFIG, CREVEAL_END, DOMAIN, happy_ops, mid, staked_ledger  # noqa: E402

from pot.api import LocalNode, create_app, schemas  # noqa: E402
from pot.ledger import Ledger  # noqa: E402
from pot.protocol import types as T  # noqa: E402
from pot.protocol.eip712 import recover_digest  # noqa: E402

TX = b"\x5e" * 32
NOW = CREVEAL_END + 10


def _served(ledger: Ledger) -> dict:
    with TestClient(create_app(LocalNode(ledger, lambda: NOW))) as api:
        def get(path, model):
            r = api.get(path)
            assert r.status_code == 200, (path, r.text)
            model.model_validate(r.json())
            return r.json()
        return {"cycle": get("/v1/orders/1", schemas.OrderCycle),
                "validations": get("/v1/orders/1/validations", schemas.ValidationList),
                "outcome": get("/v1/orders/1/outcome", schemas.OrderOutcome),
                "settlement": get("/v1/settlements/1", schemas.SettlementDoc),
                "model": get("/v1/models/0x" + mid(0).hex(), schemas.ModelLink),
                "list": get("/v1/orders?status=settled", schemas.OrderList)}


def _without(doc: dict, *keys: str) -> dict:
    return {k: v for k, v in doc.items() if k not in keys}


def _check_signatures(cycle: dict, settlement: dict, multisig) -> None:
    """Every signature served recovers to its sender over the message the served fields make."""
    def signer(msg: T.Message, sig: str) -> str:
        return T.checksum(recover_digest(msg.digest(DOMAIN), bytes.fromhex(sig[2:])))
    for c in cycle["claims"]:
        msg = T.ClaimCommit(1, c["miner"], bytes.fromhex(c["commitment"][2:]))
        assert signer(msg, c["signature"]) == c["miner"]
    for m in cycle["models"]:
        msg = T.ClaimReveal(1, m["miner"], bytes.fromhex(m["mid"][2:]), bytes.fromhex(m["salt"][2:]), m["modelCid"])
        assert signer(msg, m["signature"]) == m["miner"]
        for v in m["validations"]:
            msg = T.ValidationReveal(1, v["validator"], bytes.fromhex(v["mid"][2:]), v["score"],
                                     bytes.fromhex(v["salt"][2:]), v["vStake"])
            assert signer(msg, v["signature"]) == v["validator"]
    digest = bytes.fromhex(settlement["digest"][2:])
    assert len(settlement["signatures"]) == CONFIG.threshold
    for who, sig in zip(settlement["signers"], settlement["signatures"]):
        assert T.checksum(recover_digest(digest, bytes.fromhex(sig[2:]))) == who


def test_a_settled_order_is_served_from_the_archive_as_it_was(tmp_path):
    path = str(tmp_path / "ledger.db")
    led = staked_ledger(path)
    for t, op in sorted(happy_ops(1), key=lambda x: x[0]):
        assert led.apply(op, t).ok
    assert led.apply(T.Tick(), CREVEAL_END).nonces == (1,)
    [pending] = led.pending_settlements()
    for member in COMMITTEE[:CONFIG.threshold]:
        sig = T.SettlementSignature(1, member.addr, T.eip712.sign_digest(pending["digest"], member.key))
        assert led.apply(sig, CREVEAL_END + 1).ok
    before = _served(led)
    assert before["cycle"]["status"] == "settling" and before["list"]["orders"] == []

    assert led.apply(T.SettlementExecuted(1, (1,), TX), CREVEAL_END + 2).ok
    assert led.open_order_ids() == [], "the settled order is still in the working state"
    after = _served(led)
    # what changed is where the order stands, nothing of what it holds
    assert _without(after["cycle"], "status", "seq", "time") == _without(before["cycle"], "status", "seq", "time")
    assert after["cycle"]["status"] == "settled" and len(after["cycle"]["models"]) == 2
    assert after["validations"]["validations"] == before["validations"]["validations"]
    assert len(after["validations"]["validations"]) == 4
    assert after["model"] == before["model"]
    assert after["outcome"]["paid"] == before["outcome"]["paid"] and after["outcome"]["executed"]
    assert after["settlement"]["executed"] and after["settlement"]["txHash"] == "0x" + TX.hex()
    assert after["settlement"]["signatures"] == before["settlement"]["signatures"]
    assert [o["order"]["orderId"] for o in after["list"]["orders"]] == [1]
    _check_signatures(after["cycle"], after["settlement"], CONFIG.multisig_domain)

    snapshot = led.snapshot()
    led.close()
    reopened = _served(Ledger(CONFIG, path))   # the archive is on disk, not in memory
    for key in ("cycle", "validations", "outcome", "settlement", "model"):
        assert _without(reopened[key], "seq", "time") == _without(after[key], "seq", "time"), key

    # an aggregator rebuilds its working state at every start (ledger file deleted, its PBFT
    # checkpoint's snapshot restored): what it archived before stays served
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    rebuilt = _served(Ledger.restore(snapshot, CONFIG, path))
    for key in ("cycle", "validations", "outcome", "settlement", "model"):
        assert _without(rebuilt[key], "seq", "time") == _without(after[key], "seq", "time"), key
