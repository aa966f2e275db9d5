"""The 3-minute soak (``pot bench soak``): a devnet under steady orders while one replica is stopped
(SIGSTOP), then killed and restarted, twice (the primary, then a backup). Every order settles with
every honest worker in it, the replicas' digests agree, and the p95 settle latency of the faulted
phase stays within 1.5x of the fault-free phase before it. Deselect with ``-m "not soak"``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.soak


def test_soak_three_minutes(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, "-m", "pot.cli", "bench", "soak", "--duration", "180", "--baseline", "100",
                          "--stop", "20", "--dir", str(tmp_path / "net"), "--json", str(out)],
                         capture_output=True, text=True, timeout=1500)
    assert out.exists(), run.stdout[-3000:] + run.stderr[-5000:]
    r = json.loads(out.read_text())
    detail = run.stdout[-3000:]
    assert r["orders"] >= 15 and r["baseline"]["settled"] >= 3, detail
    assert r["all_settled"] and r["settled"] == r["orders"], detail
    assert r["every_honest_worker_in_every_order"], [(o["order_id"], o["placed_at"], o["missing"])
                                                     for o in r["per_order"] if o["missing"]]
    assert r["digests"]["equal"], r["digests"]
    assert [f["what"] for f in r["faults"]] == ["SIGSTOP", "kill -9", "restarted"] * 2, r["faults"]
    assert r["p95_ratio"] is not None and r["p95_ratio"] <= 1.5, detail
    assert run.returncode == 0 and r["ok"], detail
