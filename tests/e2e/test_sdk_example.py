"""docs/examples/place_order.py, exactly as docs/FORMATS.md shows it, run as a user runs it against a
devnet (`pot devnet up`): the SDK prepares a task from a CSV file, places the order, follows it,
releases the test set in its window, and fetches the winner after the committee settled; then the
chain and the files are checked independently of the SDK."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sdk_support import write_iris_csv

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "place_order.py"


def pot(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pot.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(900)
def test_the_python_sdk_example_places_an_order_that_trains_validates_and_settles(tmp_path):
    t_start = time.monotonic()
    cfg = tmp_path / "devnet.toml"
    cfg.write_text("[devnet]\nminers = 1\nvalidators = 1\nverifiers = 0\nclients = 1\n")
    root = tmp_path / "net"
    up = pot("devnet", "up", "--config", str(cfg), "--dir", str(root))
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        _run_example(root, tmp_path)
    finally:
        down = pot("devnet", "down", "--dir", str(root), "--timeout", "10")
        assert down.returncode == 0, down.stdout + down.stderr
    print(f"python sdk example e2e: {time.monotonic() - t_start:.0f} s")


def _run_example(root: Path, tmp_path: Path) -> None:
    from pot.chain.clients import Contracts
    from pot.chain.deployment import Deployment
    from pot.chain.sender import connect
    from pot.ml import TaskSpec, score
    from pot.protocol.ids import test_commitment
    from pot.sdk import OrderSecret
    from pot.storage import EmbeddedStore

    state = json.loads((root / "devnet.json").read_text())
    accounts = json.loads((root / "accounts.json").read_text())["accounts"]
    client, miner = accounts["client-1"], accounts["miner-1"]["address"]
    orders_dir = tmp_path / "orders"
    env = {**os.environ, "POT_RPC_URL": state["rpc_url"], "POT_DEPLOYMENT": str(root / "deployment.json"),
           "POT_PRIVATE_KEY": client["key"], "POT_STORE": str(root / "store"),
           "POT_API_URLS": ",".join(state["api_urls"]), "POT_ORDERS": str(orders_dir), "POT_TIMEOUT": "400"}
    data = write_iris_csv(tmp_path / "iris.csv")
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(data)], capture_output=True, text=True, timeout=600,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    steps = {x["step"]: x for x in lines}
    assert {"prepared", "placed", "update", "final", "winner"} <= set(steps), proc.stdout

    # the phases came in the timeline's order, with the order's events between them
    updates = [x for x in lines if x["step"] == "update"]
    phases = [u["phase"] for u in updates if u["kind"] == "phase"]
    assert phases[:3] == ["training", "model-reveal", "test-release"], phases
    assert phases[-1] == "finalization" and "validation" in phases, phases
    kinds = [u["kind"] for u in updates if u["kind"] != "phase"]
    assert kinds[0] == "OrderPlaced" and "TestDataReleased" in kinds and kinds[-1] == "OrderSettled", kinds

    # on-chain: the order holds the commitment to the secret's test set, was released and settled to the miner
    order_id = steps["placed"]["orderId"]
    secret = OrderSecret.load(orders_dir / f"order-{order_id}.json")
    assert not list(orders_dir.glob("pending-*.json"))
    assert secret.test_cid == steps["prepared"]["testCid"]
    w3 = connect(state["rpc_url"])
    c = Contracts(w3, Deployment.load(root / "deployment.json", state["chain_id"]))
    on_chain = c.orders.get_order(order_id)
    assert bytes(on_chain["data_commitment"]) == test_commitment(client["address"], secret.test_cid, secret.salt)
    assert "0x" + secret.commitment.hex() == steps["placed"]["commitment"]
    assert on_chain["status"] == 2 and on_chain["t3"] == steps["final"]["t3"]  # Settled
    assert steps["final"]["winner"] == steps["winner"]["winner"] == miner

    # the winner's file: its sha256 is the settled mid, it has the spec's architecture, and its score
    # on the test set is what the network settled on
    w = steps["winner"]
    model = Path(w["path"]).read_bytes()
    assert "0x" + hashlib.sha256(model).hexdigest() == w["mid"]
    with EmbeddedStore(root / "store") as store:
        spec = TaskSpec.from_json(store.get(steps["prepared"]["specCid"]))
        assert store.get(w["cid"]) == model
    assert spec.model == {"arch": "mlp", "in_shape": [4], "num_classes": 3, "hidden": [32]}
    assert w["matches"] and w["localScore"] == w["networkScore"] == score(model, secret.test_bytes, spec.metric)
    assert w["localScore"] > 600_000  # iris: far above chance (1/3)
