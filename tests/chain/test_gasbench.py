"""``pot bench gas`` as a publisher uses it: against a separately started chain that refuses cheat
codes (a loopback JSON-RPC proxy in front of an Anvil with a non-default chain id turns every
anvil_/evm_/hardhat_ method away), with a keystore, CSV, plots and a comparison, piped; and the
pieces that need no chain: URL redaction, the default output file, the paper column."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eth_account import Account

from pot.chain.anvil import DEV_KEYS, Anvil
from pot.chain.gasbench import default_json_path, redact_url
from pot.chain.gasreport import paper_ratio, rows
from pot.chain.keys import write_keystore
from pot.chain.sender import Sender, connect

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "bench" / "gas.json"
CHEATS = ("anvil_", "evm_", "hardhat_")


class NoCheatProxy:
    """Forwards JSON-RPC to ``upstream``; answers every cheat-code method with an error, as a public
    chain's node would, and records every method asked for."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.methods: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls = body if isinstance(body, list) else [body]
                proxy.methods += [c["method"] for c in calls]
                refused = {c["id"]: {"jsonrpc": "2.0", "id": c["id"],
                                     "error": {"code": -32601, "message": f"the method {c['method']} does not exist"}}
                           for c in calls if c["method"].startswith(CHEATS)}
                forward = [c for c in calls if not c["method"].startswith(CHEATS)]
                answers = dict(refused)
                if forward:
                    req = urllib.request.Request(proxy.upstream, json.dumps(forward).encode(),
                                                 {"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        answers.update({a["id"]: a for a in json.loads(resp.read())})
                out = [answers[c["id"]] for c in calls]
                data = json.dumps(out if isinstance(body, list) else out[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_redact_url():
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert redact_url("https://user:pass@rpc.example.org/") == "https://***@rpc.example.org/"
    assert redact_url("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef") == \
        "https://mainnet.infura.io/v3/***"
    assert redact_url("https://eth-mainnet.g.alchemy.com/v2/AbCdEf123456GhIjKl789") == \
        "https://eth-mainnet.g.alchemy.com/v2/***"
    assert redact_url("https://x.quiknode.pro/9f8e7d6c5b4a39281706f5e4d3c2b1a0/?apikey=s3cret&chain=bsc") == \
        "https://x.quiknode.pro/***/?apikey=***&chain=***"
    assert redact_url("https://data-seed-prebsc-1-s1.bnbchain.org:8545") == "https://data-seed-prebsc-1-s1.bnbchain.org:8545"


def test_default_output_is_a_new_file(tmp_path, monkeypatch):
    import datetime as dt

    monkeypatch.chdir(tmp_path)
    now = dt.datetime(2026, 1, 2, 3, 4, 5)
    first = default_json_path(now)
    assert first == Path("bench-gas-20260102-030405.json")
    first.write_text("{}")
    assert default_json_path(now) == Path("bench-gas-20260102-030405-1.json")
    assert not str(first).startswith("docs")
    assert any(line.strip() == "bench-*.json" for line in (ROOT / ".gitignore").read_text().splitlines())


def test_paper_column_compares_like_with_like():
    doc = json.loads(PUBLISHED.read_text())
    for r in doc["payout"]:
        assert (paper_ratio(r) is None) == (r["k"] != 30)
    flat = {r["scenario"]: r for r in rows(doc)}
    assert flat["executeSigned n=30 k=30 batch=100 holders"]["paper_gas"] == 1_609_893
    assert flat["executeSigned n=30 k=21 batch=100 holders"]["paper_gas"] is None


def test_rpc_without_key_is_one_line(tmp_path):
    with Anvil(chain_id=4243) as node:
        r = subprocess.run([sys.executable, "-m", "pot.cli", "bench", "gas", "--rpc-url", node.url],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path,
                           env={**os.environ, "POT_PRIVATE_KEY": ""})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "--keystore" in r.stderr
    assert not list(tmp_path.glob("bench-gas-*.json"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_on_a_chain_without_cheat_codes(tmp_path):
    with Anvil(chain_id=4242, gas_limit=300_000_000) as node, NoCheatProxy(node.url) as proxy:
        w3 = connect(node.url)
        key = Account.create()
        keystore = write_keystore(key, tmp_path / "key.json", "pw")
        Sender(w3, DEV_KEYS[9]).send(key.address, b"", value=20 * 10**18, gas=21_000)
        before = w3.eth.get_balance(key.address)
        # credentials in the URL must not reach the JSON (the proxy ignores path and query)
        url = f"http://127.0.0.1:{proxy.port}/v3/0123456789abcdef0123456789abcdef?apikey=s3cret"
        r = subprocess.run([sys.executable, "-m", "pot.cli", "bench", "gas", "--rpc-url", url, "--keystore",
                            str(keystore), "--csv", "gas.csv", "--plot", "plots", "--compare", str(PUBLISHED),
                            "--window", "3", "--quick"],
                           capture_output=True, text=True, timeout=840, cwd=tmp_path,
                           env={**os.environ, "POT_KEYSTORE_PASSWORD": "pw", "POT_PRIVATE_KEY": ""})
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

        cheats = {m for m in proxy.methods if m.startswith(CHEATS)}
        assert cheats <= {"anvil_nodeInfo"}, cheats  # an informational read at most, refused here
        out = list(tmp_path.glob("bench-gas-*.json"))
        assert len(out) == 1  # a new file in the working directory, nothing else overwritten
        doc = json.loads(out[0].read_text())
        assert doc["cheat_codes"] is False and doc["scope"] == "quick"
        ch = doc["chain"]
        assert ch["chain_id"] == 4242 and ch["client_version"].startswith("anvil")
        assert "s3cret" not in ch["rpc"] and "0123456789abcdef" not in ch["rpc"] and "***" in ch["rpc"]
        assert ch["block"] >= 1 and ch["base_fee_gwei"] > 0 and "from the block header" in ch["hardfork"]
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        assert doc["build"]["commit"] == head and doc["build"]["solc"].startswith("0.8.37")
        assert doc["build"]["settings"]["optimizer"] == {"enabled": True, "runs": 10_000}
        assert doc["date"].endswith("Z")
        assert doc["gas_price_source"].startswith("chain") and doc["gas_price_gwei"] > 0

        # every bench account handed back what it had; the key paid exactly what the run cost
        assert doc["funding"]["accounts"]
        assert all(w3.eth.get_balance(a) == 0 for a in doc["funding"]["accounts"])
        assert before - w3.eth.get_balance(key.address) == doc["funding"]["spent_wei"] > 0

    # the same contracts measured the same way: only calldata bytes (addresses, signatures) differ
    published = {r["scenario"]: r["gas_per"] for r in rows(json.loads(PUBLISHED.read_text()))}
    mine = rows(doc)
    assert len(mine) == 17 + 8 + 2
    for row in mine:
        assert abs(row["gas_per"] - published[row["scenario"]]) <= 0.005 * published[row["scenario"]], row

    # piped: nothing cut at 80 columns
    assert max(len(line) for line in r.stdout.splitlines()) > 100
    for row in mine:
        assert row["scenario"] in r.stdout and f"{row['gas_per']:,}" in r.stdout, row["scenario"]
    assert "Compared with" in r.stdout and "%" in r.stdout
    assert "ChallengeManager.commitChallenge" in r.stdout and "…" not in r.stdout

    lines = (tmp_path / "gas.csv").read_text().splitlines()
    assert lines[0].startswith("section,scenario,") and len(lines) == 1 + len(mine)
    for name in ("payout.png", "functions.png", "settlement.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# --- Sender.wait when the node stops mining ------------------------------------------------------

def _stranded(anvil_url: str, sender: Sender, n: int = 3) -> list[str]:
    """``n`` transactions of which Anvil 1.7 mines the first and leaves the rest in its pool: each
    asks for nearly a whole block's gas, and they reach the automining miner together."""
    from pot.chain.anvil import rpc

    rpc(anvil_url, "evm_setAutomine", [False])
    hashes = sender.send_batch([(sender.address, b"", 29_990_000)] * n, wait=False)
    rpc(anvil_url, "evm_setAutomine", [True])
    w3 = sender.w3
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and w3.eth.get_transaction(hashes[0])["blockNumber"] is None:
        time.sleep(0.05)
    time.sleep(0.5)
    held = [h for h in hashes if w3.eth.get_transaction(h)["blockNumber"] is None]
    assert held == hashes[1:], "this Anvil mined them all: the stall below is not reproduced"
    return hashes


def test_wait_mines_what_an_automining_node_left_in_its_pool():
    """CI once waited 120 s for a bench receipt that never came: the node held the transaction and
    produced no block. wait() asks such a node for blocks until ours is in one."""
    with Anvil() as node:
        s = Sender(connect(node.url), DEV_KEYS[0], stall_s=0.5)
        hashes = _stranded(node.url, s)
        t0 = time.monotonic()
        receipts = [s.wait(h, timeout=30) for h in hashes]
        assert [r["status"] for r in receipts] == [1, 1, 1]
        assert len({r["blockNumber"] for r in receipts}) == 3
        assert time.monotonic() - t0 < 15


def test_wait_asks_a_node_without_evm_mine_once_and_says_where_the_transaction_is():
    with Anvil() as node, NoCheatProxy(node.url) as proxy:
        stranded = _stranded(node.url, Sender(connect(node.url), DEV_KEYS[0]))[1]
        s = Sender(connect(f"http://127.0.0.1:{proxy.port}"), DEV_KEYS[0], stall_s=0.3)
        with pytest.raises(TimeoutError, match="the node holds it unmined") as err:
            s.wait(stranded, timeout=3)
        assert stranded in str(err.value)
        assert proxy.methods.count("evm_mine") == 1
        unknown = "0x" + "ab" * 32
        with pytest.raises(TimeoutError, match="no longer holds it"):
            s.wait(unknown, timeout=0.5)
