"""``pot devnet up|status|down`` through the CLI: every node a detached process, the committee
serving and in agreement, then a clean stop that leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pot.devnet.network import load_devnet_config


def pot(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "pot.cli", *args], capture_output=True, text=True, timeout=timeout)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # exited but not yet reaped by whoever inherited it
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def hint(stdout: str, command: str) -> str:
    """The shell line `up` printed for ``command`` (e.g. "pot client place-order")."""
    return next(line.strip() for line in stdout.splitlines() if command in line and "POT_PRIVATE_KEY=" in line)


def run_hint(line: str) -> subprocess.CompletedProcess:
    """Run a printed hint as a user would: in a shell, `pot` on the PATH (the venv's scripts)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=180, env=env)


def ledger_order(state: dict, order_id: int) -> dict | None:
    """Order ``order_id`` as replica 0's ledger has it (None: not there)."""
    try:
        with urllib.request.urlopen(f"{state['api_urls'][0]}/v1/orders/{order_id}", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def one_view(root) -> dict:
    for _ in range(10):  # a view change in progress settles within a view timeout or two
        st = pot("devnet", "status", "--dir", str(root), "--json")
        assert st.returncode == 0, st.stdout + st.stderr
        status = json.loads(st.stdout)
        replicas = [p["info"] for p in status["processes"] if p["role"] == "aggregator"]
        if len({r["view"] for r in replicas}) == 1:
            break
        time.sleep(1)
    return status


def test_devnet_up_status_restart_down_up(tmp_path):
    cfg = tmp_path / "devnet.toml"
    cfg.write_text('[devnet]\nminers = 1\nvalidators = 1\nverifiers = 1\nclients = 1\n'
                   '[nodes.validator-1]\nv_stake = "1 POT"\n')
    root = tmp_path / "net"
    up = pot("devnet", "up", "--config", str(cfg), "--dir", str(root))
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        state = json.loads((root / "devnet.json").read_text())
        names = [p["name"] for p in state["processes"]]
        assert names == ["anvil", "aggregator-0", "aggregator-1", "aggregator-2", "aggregator-3", "client-1",
                         "miner-1", "validator-1", "verifier-1"]
        for url in state["api_urls"]:
            assert url in up.stdout
        assert state["rpc_url"] in up.stdout
        for p in state["processes"]:
            assert (root / "logs" / f"{p['name']}.log").exists()
        # the per-node override and the role table reach the node's config file
        assert 'v_stake = "1 POT"' in (root / "config" / "validator-1.toml").read_text()
        assert "dataset" in (root / "config" / "client-1.toml").read_text()

        status = one_view(root)
        replicas = [p["info"] for p in status["processes"] if p["role"] == "aggregator"]
        assert status["chain"]["block"] > 0 and status["problems"] == []
        assert all(p["alive"] for p in status["processes"]), status
        assert sorted(r["replicaId"] for r in replicas) == [0, 1, 2, 3]
        # one view for all (replicas that start seconds apart may already have changed view once: a
        # request relayed before the primary was reachable times out, as Castro & Liskov §4.4 wants)
        assert len({r["view"] for r in replicas}) == 1, replicas
        assert all(r["ledgerDigest"].startswith("0x") for r in replicas), replicas

        # the hint `up` printed is a command that works, as printed
        placed = run_hint(hint(up.stdout, "pot client place-order"))
        assert placed.returncode == 0, placed.stdout + placed.stderr
        assert placed.stdout.strip().splitlines()[-1] == "1"
        first = wait_until(lambda: ledger_order(state, 1), 60, "order 1 in the ledger")

        # a dead worker: status says which and exits 1; restart brings it back
        miner = next(p for p in state["processes"] if p["name"] == "miner-1")
        os.kill(miner["pid"], signal.SIGKILL)
        wait_until(lambda: gone(miner["pid"]), 10, "miner-1 gone")
        st = pot("devnet", "status", "--dir", str(root))
        assert st.returncode == 1 and "miner-1 (exited" in st.stderr, st.stdout + st.stderr
        again = pot("devnet", "restart", "miner-1", "--dir", str(root))
        assert again.returncode == 0, again.stdout + again.stderr
        # a replica restarted (SIGTERM, same data): it recovers and the committee agrees again
        again = pot("devnet", "restart", "aggregator-2", "--dir", str(root))
        assert again.returncode == 0, again.stdout + again.stderr
        status = one_view(root)
        assert status["problems"] == [] and all(p["alive"] for p in status["processes"])
        bad = pot("devnet", "restart", "anvil", "--dir", str(root))
        assert bad.returncode != 0 and "cannot be restarted" in bad.stderr and "Traceback" not in bad.stderr

        again = pot("devnet", "up", "--dir", str(root))
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        down = pot("devnet", "down", "--dir", str(root), "--timeout", "10")
    assert down.returncode == 0, down.stdout + down.stderr
    pids = [p["pid"] for p in json.loads((root / "devnet.json").read_text())["processes"]]
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in pids)
    assert "killed" not in down.stdout, down.stdout  # SIGTERM was enough: every node shut down cleanly
    st = pot("devnet", "status", "--dir", str(root))
    assert st.returncode == 1 and "DEAD" in st.stdout

    # up again in the same directory: a new chain, and nothing of the old ledger comes back
    up = pot("devnet", "up", "--config", str(cfg), "--dir", str(root), "--no-workers")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "moved the previous devnet's data" in up.stderr
        state = json.loads((root / "devnet.json").read_text())
        assert ledger_order(state, 1) is None, "the old PBFT log was replayed onto the new chain"
        placed = run_hint(hint(up.stdout, "pot client place-order"))
        assert placed.returncode == 0 and placed.stdout.strip().splitlines()[-1] == "1", placed.stderr
        second = wait_until(lambda: ledger_order(state, 1), 60, "the new order 1 in the ledger")
        assert second["order"]["t0"] > first["order"]["t0"]
        logs = "".join((root / "logs" / f"aggregator-{i}.log").read_text() for i in range(4))
        assert "DUPLICATE" not in logs
    finally:
        down = pot("devnet", "down", "--dir", str(root), "--timeout", "10")
    assert down.returncode == 0


def test_devnet_config_is_checked(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[devnet]\nminerz = 3\n")
    with pytest.raises(ValueError, match="unknown setting 'minerz'"):
        load_devnet_config(bad)
    bad.write_text("[chain]\nfund = \"lots\"\n")
    with pytest.raises(ValueError, match="fund"):
        load_devnet_config(bad)
    cfg = load_devnet_config(None, aggregators=7)
    assert (cfg.f, cfg.threshold) == (2, 5)
    assert cfg.roles["client"]["train_duration"] > 0  # the packaged defaults are loaded
