"""The npm package as a dApp uses it: packed (`npm pack`), installed into a scratch TypeScript project
(packages/contracts/example, typescript and viem pinned by its package-lock), type-checked, and run:
viem places an order on a devnet whose miner, validator and committee train, validate and settle it.

The order's off-chain inputs are made by docs/FORMATS.md's examples, run as they are: formats.py
(the SDK) turns a CSV into the data sets and the spec's fields, formats.mjs (viem) computes the spec,
the CIDs, the modelType and the test commitment from those files, and both must agree byte for byte
(the store, too, must give the files the CIDs JavaScript computed). The TypeScript example then
commits, places, releases and waits for OrderSettled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sdk_support import write_iris_csv

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "contracts"
EXAMPLE = PACKAGE / "example"
DOCS_EXAMPLES = ROOT / "docs" / "examples"


def run(cmd: list[str], cwd: Path, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def pot(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pot.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def ts_project(tmp_path):
    """The example project in a scratch folder with the packed package installed from its tarball."""
    if shutil.which("npm") is None:
        pytest.fail("npm not found: Node.js >= 20 with npm is a requirement (README)")
    pack = run(["npm", "pack", str(PACKAGE), "--pack-destination", str(tmp_path), "--json", "--loglevel=error"],
               cwd=tmp_path, timeout=120)
    tarball = tmp_path / json.loads(pack.stdout)[0]["filename"]
    files = {f["path"] for f in json.loads(pack.stdout)[0]["files"]}
    assert "dist/index.d.ts" in files and "abi/OrderBook.json" in files and not any(
        f.startswith("example/") for f in files), sorted(files)
    project = tmp_path / "dapp"
    project.mkdir()
    for name in ("package.json", "package-lock.json", "tsconfig.json"):
        shutil.copy(EXAMPLE / name, project / name)
    shutil.copytree(EXAMPLE / "src", project / "src")
    npm = ["--no-audit", "--no-fund", "--loglevel=error"]
    run(["npm", "ci", *npm], cwd=project, timeout=300)  # viem, typescript: pinned by the lockfile
    run(["npm", "install", "--no-save", "--offline", *npm, str(tarball)], cwd=project, timeout=120)
    return project


@pytest.mark.timeout(1500)
def test_viem_places_an_order_that_trains_validates_and_settles(ts_project, tmp_path):
    t_start = time.monotonic()
    tsc = ts_project / "node_modules" / ".bin" / "tsc"
    # the dApp type-checks against the package's declarations and compiles (noEmitOnError) ...
    run([str(tsc)], cwd=ts_project, timeout=600)
    # ... and the package's TypeScript sources and both declaration sets check under strict settings
    pkg = ts_project / "node_modules" / "@pot-network" / "contracts"
    run([str(tsc), "--noEmit", "--strict", "--target", "ES2022", "--module", "NodeNext", "--moduleResolution",
         "NodeNext", str(pkg / "src" / "index.ts"), str(pkg / "dist" / "index.d.ts"),
         str(pkg / "dist" / "index.d.cts")], cwd=ts_project, timeout=600)

    cfg = tmp_path / "devnet.toml"
    # the viem script places and releases without uploading to the committee: one store for all
    cfg.write_text('[devnet]\nminers = 1\nvalidators = 1\nverifiers = 0\nclients = 1\nshared_store = true\n')
    root = tmp_path / "net"
    up = pot("devnet", "up", "--config", str(cfg), "--dir", str(root))
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        _place_and_settle(ts_project, root, tmp_path)
    finally:
        down = pot("devnet", "down", "--dir", str(root), "--timeout", "10")
        assert down.returncode == 0, down.stdout + down.stderr
    print(f"npm package e2e: {time.monotonic() - t_start:.0f} s after npm ci")


def _formats(project: Path, tmp_path: Path, client: str, salt: str) -> dict:
    """docs/examples/formats.py and formats.mjs on the same CSV: equal values; returns them."""
    from pot.storage import compute_cid

    data = write_iris_csv(tmp_path / "iris.csv")
    out = tmp_path / "formats"
    py = run([sys.executable, str(DOCS_EXAMPLES / "formats.py"), str(data), str(out), client, salt],
             cwd=tmp_path, timeout=120)
    shutil.copy(DOCS_EXAMPLES / "formats.mjs", project / "formats.mjs")  # where viem is installed
    js = run(["node", "formats.mjs", str(out / "task.json"), str(out / "train.npz"), str(out / "test.npz"), client,
              salt], cwd=project, timeout=60)
    values = json.loads(js.stdout)
    assert values == json.loads(py.stdout)
    assert values["specJson"].encode() == (out / "spec.json").read_bytes()
    # the CID layout beyond one chunk: dag-pb nodes of raw leaves, and a second level past 174 chunks
    sizes = (0, 262_145, 174 * 262_144 + 1)
    blobs = []
    for n in sizes:
        blobs.append(tmp_path / f"blob-{n}")
        blobs[-1].write_bytes(bytes(range(256)) * (n // 256) + os.urandom(n % 256))
    script = ("import {readFileSync} from 'node:fs'; import {cidOf} from './formats.mjs';"
              "for (const f of process.argv.slice(1)) console.log(cidOf(readFileSync(f)));")
    cids = run(["node", "--input-type=module", "-e", script, *map(str, blobs)], cwd=project, timeout=60).stdout.split()
    assert cids == [str(compute_cid(b.read_bytes())) for b in blobs]
    return values


def _place_and_settle(project: Path, root: Path, tmp_path: Path) -> None:
    from pot.chain.clients import Contracts
    from pot.chain.deployment import Deployment
    from pot.chain.sender import connect
    from pot.roles.config import ClientConfig, load_config
    from pot.storage import EmbeddedStore
    from web3.logs import DISCARD

    state = json.loads((root / "devnet.json").read_text())
    accounts = json.loads((root / "accounts.json").read_text())["accounts"]
    client_key = accounts["client-1"]["key"]
    miner = accounts["miner-1"]["address"]
    config = load_config(ClientConfig, state["clients"]["client-1"], env={})
    salt = "0x" + os.urandom(32).hex()
    task = _formats(project, tmp_path, accounts["client-1"]["address"], salt)
    # a dApp uploads the spec and the training set before placing, the test set before releasing:
    # validators fetch it by CID after t3 (here to the devnet's store; `ipfs add` on a real network)
    out = tmp_path / "formats"
    with EmbeddedStore(root / "store") as store:
        assert store.add_bytes((out / "train.npz").read_bytes()) == task["trainCid"]
        assert store.add_bytes(task["specJson"].encode()) == task["specCid"]
        assert store.add_bytes((out / "test.npz").read_bytes()) == task["testCid"]

    w3 = connect(state["rpc_url"])
    c = Contracts(w3, Deployment.load(root / "deployment.json", state["chain_id"]))
    miner_before = c.token.balance_of(miner)
    metric = json.loads(task["specJson"])["metric"]
    env = {"POT_RPC_URL": state["rpc_url"], "POT_DEPLOYMENT": str(root / "deployment.json"),
           "POT_PRIVATE_KEY": client_key, "POT_SPEC_CID": task["specCid"], "POT_TEST_CID": task["testCid"],
           "POT_TEST_SALT": salt, "POT_REWARD": str(config.reward),
           "POT_TRAIN_DURATION": str(config.train_duration), "POT_VALIDATE_DURATION": str(config.validate_duration),
           "POT_CHALLENGE_DURATION": str(config.challenge_duration),
           "POT_REVEAL_DURATION": str(config.reveal_duration), "POT_MODEL_TYPE": metric,
           "POT_TIMEOUT": "240"}
    proc = run(["node", "dist/place-order.js"], cwd=project, timeout=400, env=env)
    steps = {s["step"]: s for s in map(json.loads, proc.stdout.splitlines())}
    assert set(steps) == {"commitment", "placed", "released", "settled"}, proc.stdout

    # the TypeScript example's commitment is formats.mjs's and formats.py's, and it is what the chain holds
    order_id = int(steps["placed"]["orderId"])
    assert steps["commitment"]["commitment"] == task["commitment"]
    assert "0x" + bytes(c.orders.get_order(order_id)["data_commitment"]).hex() == task["commitment"]

    # settled on-chain: OrderSettled for this order, the miner won, and its balance grew by its share
    receipt = w3.eth.get_transaction_receipt(steps["settled"]["tx"])
    assert receipt["status"] == 1
    logs = c.orders.contract.events.OrderSettled().process_receipt(receipt, errors=DISCARD)
    mine = [ev["args"] for ev in logs if ev["args"]["orderId"] == order_id]
    assert len(mine) == 1, logs
    assert mine[0]["winner"] == miner and mine[0]["total"] == config.reward
    assert mine[0]["winningMid"] != b"\0" * 32
    transfers = c.token.contract.events.Transfer().process_receipt(receipt, errors=DISCARD)
    to_miner = sum(t["args"]["value"] for t in transfers if t["args"]["to"] == miner)
    assert 0 < to_miner < config.reward  # the winner's share: the reward less the validator's and the tax
    assert c.token.balance_of(miner) - miner_before >= to_miner
    assert int(steps["settled"]["winnerBalance"]) >= miner_before + to_miner  # viem read the paid balance
