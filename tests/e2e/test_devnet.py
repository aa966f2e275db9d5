"""``pot devnet up|status|down`` through the CLI: every node a detached process, the committee
serving and in agreement, then a clean stop that leaves no process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

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


def test_devnet_up_status_down(tmp_path):
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
        assert state["rpc_url"] in up.stdout and "pot client place-order" in up.stdout
        for p in state["processes"]:
            assert (root / "logs" / f"{p['name']}.log").exists()
        # the per-node override and the role table reach the node's config file
        assert 'v_stake = "1 POT"' in (root / "config" / "validator-1.toml").read_text()
        assert "dataset" in (root / "config" / "client-1.toml").read_text()

        for _ in range(10):  # a view change in progress settles within a view timeout or two
            st = pot("devnet", "status", "--dir", str(root), "--json")
            assert st.returncode == 0, st.stdout + st.stderr
            status = json.loads(st.stdout)
            replicas = [p["info"] for p in status["processes"] if p["role"] == "aggregator"]
            if len({r["view"] for r in replicas}) == 1:
                break
            time.sleep(1)
        assert status["chain"]["block"] > 0
        assert all(p["alive"] for p in status["processes"]), status
        assert sorted(r["replicaId"] for r in replicas) == [0, 1, 2, 3]
        # one view for all (replicas that start seconds apart may already have changed view once: a
        # request relayed before the primary was reachable times out, as Castro & Liskov §4.4 wants)
        assert len({r["view"] for r in replicas}) == 1, replicas
        assert all(r["ledgerDigest"].startswith("0x") for r in replicas), replicas

        again = pot("devnet", "up", "--dir", str(root))
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        down = pot("devnet", "down", "--dir", str(root), "--timeout", "10")
    assert down.returncode == 0, down.stdout + down.stderr
    pids = [p["pid"] for p in state["processes"]]
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in pids)
    assert "killed" not in down.stdout, down.stdout  # SIGTERM was enough: every node shut down cleanly
    st = pot("devnet", "status", "--dir", str(root))
    assert st.returncode == 1 and "DEAD" in st.stdout


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
