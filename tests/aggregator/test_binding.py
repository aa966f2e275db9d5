"""A replica's data belongs to its deployment: started with another deployment's config (a new
chain, new contracts) it refuses with one clear line instead of replaying the old PBFT log (which
brought the old orders back and made the new chain's order 1 a DUPLICATE)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from committee_support import Committee

from pot.chain.deployment import DeployParams, deploy


def test_a_replica_refuses_another_deployments_data(anvil, tmp_path):
    com = Committee(anvil, tmp_path / "a")
    com.start(0)                      # alone: enough to open (and bind) its data directory
    com.wait_ready([0])
    com.stop_all()
    assert (com.data_dir(0) / "deployment-binding.json").exists()

    # the same committee, redeployed: new contracts on the same chain
    params = DeployParams(members=tuple(k.address for k in com.keys), threshold=3, treasury=com.treasury,
                          min_stakes=(10**19,) * 4, unbonding_period=7200, max_order_lifetime=1800,
                          settlement_grace=3600, min_reveal_duration=2)
    other = deploy(com.w3, com.deployer, params).save(tmp_path / "other-deployment.json")
    config = com.paths[0].read_text().replace(str((tmp_path / "a" / "deployment.json").resolve()), str(other))
    assert str(other) in config
    com.paths[0].write_text(config)
    run = subprocess.run([sys.executable, "-m", "pot.cli", "aggregator", "run", "--config", str(com.paths[0]),
                          "--log-file", "-"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode != 0, run.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: data_dir"), run.stderr[-2000:]
    assert "another deployment" in lines[0] and "fresh directory" in lines[0]
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("which", ["pbft", "api"])
def test_a_replica_whose_port_another_server_holds_says_so_in_one_line(anvil, tmp_path, which):
    import socket
    import time
    import tomllib

    com = Committee(anvil, tmp_path / "a")
    doc = tomllib.loads(com.paths[0].read_text())
    if which == "pbft":
        host, port = doc["committee"]["pbft"][0].rsplit(":", 1)
        what = "this replica"
    else:
        host, port, what = doc["api_host"], str(doc["api_port"]), "this aggregator's API"
    with socket.create_server((host, int(port))):
        t0 = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "pot.cli", "aggregator", "run", "--config", str(com.paths[0]),
                              "--log-file", "-"], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [ln for ln in run.stderr.splitlines() if ln.strip() and not ln.startswith("20")]  # log lines have dates
    assert run.returncode != 0, run.stderr[-2000:]
    assert lines == [f"error: another process listens on {host}:{port} (is {what} running already?): "
                     f"stop it, or give {what} another port"], run.stderr[-2000:]
    assert "Traceback" not in run.stderr and time.monotonic() - t0 < 60
