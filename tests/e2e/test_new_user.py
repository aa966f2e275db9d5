"""A new user joins a running devnet with nothing but documented ``pot`` commands and the network's
URLs (``network.toml``): creates a key, gets funds, stakes, mines with a store nobody else reads,
hears "you won", sees the order in ``pot miner status``, then unbonds and withdraws. A second
newcomer's miner is stopped with Ctrl-C (SIGINT) while it trains: exit 130, its state saved, no
traceback. The client is the devnet's, on its own store too: every byte of the spec, the data,
the test set and the model reaches the others through the committee's content service.

Also, without a chain: the expected errors (wrong password, RPC down, missing key, bad config)
are one line with the fix and exit 1 or 2; ``--debug`` shows the traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3

sys.path.insert(0, str(Path(__file__).parent))

from test_devnet import hint, pot, run_hint  # noqa: E402

POT = 10**18


class Worker:
    """A ``pot`` command running in the background, its output (stdout and stderr) collected."""

    def __init__(self, args: list[str], env: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "pot.cli", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = next((ln for ln in self.lines if text in ln), None)
            if line is not None:
                return line
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {text!r}:\n{self.output}"
            time.sleep(0.3)
        raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output[-4000:]}")

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it."""
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout)
        self.reader.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def clean(text: str) -> None:
    """What an interrupted or failed command must never print."""
    for bad in ("Traceback", "terminate called", "was never awaited", "KeyError"):
        assert bad not in text, text


@pytest.mark.slow  # a devnet and one whole order: about 3.5 minutes on 2 cores
def test_a_newcomer_keys_stakes_mines_wins_and_leaves(tmp_path):
    cfg = tmp_path / "devnet.toml"
    # no devnet miners: the newcomers are the only ones; one validator scores, the client runs
    # a minute of training: on a loaded 2-core machine a miner may pick the order many seconds late
    cfg.write_text("[devnet]\nminers = 0\nvalidators = 1\nverifiers = 0\nclients = 1\npoll_interval = 0.5\n"
                   "[client]\ntrain_duration = 60\n")
    root = tmp_path / "net"
    up = pot("devnet", "up", "--config", str(cfg), "--dir", str(root))
    workers: list[Worker] = []
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        network = root / "network.toml"
        assert f"POT_CONFIG={network}" in up.stdout
        (tmp_path / "pw").write_text("correct horse\n")
        env = {**os.environ, "POT_CONFIG": str(network), "POT_KEYSTORE_DIR": str(tmp_path / "keys"),
               "POT_KEYSTORE_PASSWORD": "", "HOME": str(tmp_path / "home")}
        env.pop("POT_PRIVATE_KEY", None)

        def run(*args, ok=True):
            res = subprocess.run([sys.executable, "-m", "pot.cli", *args], capture_output=True, text=True,
                                 timeout=120, env=env)
            if ok:
                assert res.returncode == 0, res.stdout + res.stderr
            return res

        def newcomer(name: str) -> str:
            new = json.loads(run("wallet", "new", name, "--password-file", str(tmp_path / "pw"), "--json").stdout)
            funded = run("devnet", "fund", new["address"], "--dir", str(root), "--pot", "50", "--json")
            assert json.loads(funded.stdout)["address"] == new["address"]
            return new["address"]

        alice, bob = newcomer("alice"), newcomer("bob")
        listed = json.loads(run("wallet", "list", "--json").stdout)
        assert {k["name"]: k["address"] for k in listed} == {"alice": alice, "bob": bob}
        balance = json.loads(run("wallet", "balance", "--keystore", "alice", "--json").stdout)
        assert int(balance["pot"]) == 50 * POT and int(balance["native"]) > 0, balance
        text = run("wallet", "balance", "--keystore", "alice").stdout
        assert "50 POT" in text, text  # amounts in POT, not wei

        key = ["--keystore", "alice", "--password-file", str(tmp_path / "pw")]
        run("stake", "register", "--role", "miner", *key, "--amount", "20")
        run("stake", "add", "5", *key)
        st = json.loads(run("stake", "status", "--keystore", "alice", "--json").stdout)
        assert int(st["stake"]) == 25 * POT and st["roles"] == ["miner"], st

        # the miners: each its own store and state, nothing shared with the devnet's nodes
        def miner(name: str) -> Worker:
            w = Worker(["miner", "run", "--keystore", name, "--password-file", str(tmp_path / "pw"),
                        "--store", str(tmp_path / name / "store"), "--state-dir", str(tmp_path / name),
                        "--no-progress", "--device", "cpu"], env)
            workers.append(w)
            return w

        a, b = miner("alice"), miner("bob")
        a.wait_for("started", 120)
        b.wait_for("registered in StakeRegistry", 120)  # bob's stake: `pot miner run` registers it

        placed = run_hint(hint(up.stdout, "pot client place-order"))
        assert placed.returncode == 0, placed.stdout + placed.stderr
        b.wait_for("order 1: training", 120)
        assert b.interrupt() == 130, b.output  # Ctrl-C while it trains
        clean(b.output)
        assert "stopped; what it must remember is saved" in b.output, b.output[-2000:]

        won = a.wait_for("order 1: you won", 240)
        assert " POT paid in tx 0x" in won, won
        mined = json.loads(run("miner", "status", "--keystore", "alice", "--json").stdout)
        order = next(o for o in mined["orders"] if o["orderId"] == 1)
        assert order["outcome"] == "won" and int(order["paid"]) > 0 and int(mined["account"]["earned"]) > 0, mined
        net = json.loads(run("devnet", "status", "--dir", str(root), "--json").stdout)
        assert net["orders"][0]["orderId"] == 1 and net["orders"][0]["winner"] == alice, net["orders"]
        held = {b["name"]: b for b in net["balances"]}
        assert int(held["client-1"]["pot"]) > 0 and int(held["validator-1"]["stake"]) > 0, held
        text = run("devnet", "status", "--dir", str(root)).stdout
        assert f"won by {alice[:6]}" in text and "POT" in text, text
        assert a.interrupt() == 130, a.output[-3000:]
        clean(a.output)

        run("stake", "unbond", *key)
        w3 = Web3(HTTPProvider(json.loads((root / "devnet.json").read_text())["rpc_url"]))
        early = run("stake", "withdraw", *key, ok=False)
        assert early.returncode == 1 and "Traceback" not in early.stderr, early.stdout + early.stderr
        assert len(early.stderr.strip().splitlines()) == 1, early.stderr
        w3.provider.make_request("evm_increaseTime", [3700])
        w3.provider.make_request("evm_mine", [])
        before = json.loads(run("wallet", "balance", "--keystore", "alice", "--json").stdout)
        run("stake", "withdraw", *key)
        after = json.loads(run("wallet", "balance", "--keystore", "alice", "--json").stdout)
        assert int(after["pot"]) - int(before["pot"]) == 25 * POT
    finally:
        for w in workers:
            w.kill()
        down = pot("devnet", "down", "--dir", str(root), "--timeout", "10")
    assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def keystore(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("keys")
    env = {**os.environ, "POT_KEYSTORE_DIR": str(tmp_path / "keys"), "HOME": str(tmp_path), "TMP_KEYS": str(tmp_path)}
    for var in ("POT_PRIVATE_KEY", "POT_KEYSTORE_PASSWORD", "POT_CONFIG", "POT_DEBUG"):
        env.pop(var, None)
    (tmp_path / "pw").write_text("right\n")
    (tmp_path / "wrong").write_text("wrong\n")
    new = subprocess.run([sys.executable, "-m", "pot.cli", "wallet", "new", "k", "--password-file",
                          str(tmp_path / "pw")], capture_output=True, text=True, env=env, timeout=60)
    assert new.returncode == 0, new.stderr
    return env


@pytest.mark.parametrize("case", ["wrong password", "rpc down", "missing key", "no key", "bad config",
                                  "bad amount"])
def test_expected_errors_are_one_line_with_the_fix(keystore, case):
    tmp_path = Path(keystore["TMP_KEYS"])
    dead = "http://127.0.0.1:9"  # discard port: nothing answers JSON-RPC there
    args, expect, code = {
        "wrong password": (["stake", "register", "--role", "miner", "--keystore", "k", "--password-file",
                            str(tmp_path / "wrong"), "--rpc-url", dead], "wrong password", 1),
        "rpc down": (["wallet", "balance", "--keystore", "k", "--rpc-url", dead], "--rpc-url", 1),
        "missing key": (["stake", "status", "--keystore", "nobody", "--rpc-url", dead], "pot wallet list", 1),
        "no key": (["stake", "register", "--role", "miner", "--rpc-url", dead], "pot wallet new", 1),
        "bad config": (["miner", "run", "--config", str(tmp_path / "bad.toml")], "fix it in the config file", 2),
        "bad amount": (["stake", "add", "lots", "--keystore", "k"], "lots", 2),
    }[case]
    (tmp_path / "bad.toml").write_text("rpc_url = [1\n")
    res = subprocess.run([sys.executable, "-m", "pot.cli", *args], capture_output=True, text=True,
                         env=keystore, timeout=60)
    assert res.returncode == code, res.stdout + res.stderr
    clean(res.stdout + res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert expect in res.stderr and (len(lines) == 1 or code == 2), res.stderr
    if code == 1:  # a failure, not a usage error: with --debug the traceback shows
        dbg = subprocess.run([sys.executable, "-m", "pot.cli", *args, "--debug"], capture_output=True,
                             text=True, env=keystore, timeout=60)
        assert dbg.returncode == 1 and "Traceback" in dbg.stderr, dbg.stderr
