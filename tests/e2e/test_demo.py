"""``pot demo --json`` end to end, as the README runs it: a devnet of its own (Anvil, the contracts,
4 aggregator processes over loopback), one full cycle with a dishonest validator and a thief.
The outcome is asserted, not just the exit code: who won, the client's own check of the score,
the reward split of ARCHITECTURE.md §3 to the wei, the slash and the upheld challenge, the thief's
refusals with the ledger's reasons, the settlement transaction."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from eth_utils import is_checksum_address
from pot.devnet.demo import DEMO_CONFIG, LIE_PPM, ORDER
from pot.devnet.network import DevnetConfig, participants
from pot.protocol.types import Reason

TAX_BPS, VALIDATOR_BPS = 500, 1500


def test_demo_settles_a_cycle_with_a_liar_and_a_thief(tmp_path):
    out = tmp_path / "summary.json"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pot.cli", "demo", "--json", str(out), "--workdir",
                             str(tmp_path / "work")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the demo stops its devnet on the way out (SIGKILL would orphan it)
        stdout, stderr = proc.communicate(timeout=60)
        raise AssertionError("the demo did not finish in 420s:\n" + stdout[-4000:] + stderr[-4000:]) from None
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, stdout[-4000:] + stderr[-4000:]
    s = json.loads(out.read_text())
    assert set(s) == {"order_id", "winner", "winning_mid", "metric", "winning_score", "client_checked_score",
                      "escrow", "payouts", "slashes", "challenges", "rejected", "settlement_tx", "gas_used"}

    names = {p.name: p.address for p in participants(DevnetConfig(**DEMO_CONFIG), {"thief": 1})}
    honest = {names["miner-1"], names["miner-2"]}
    liar, members = names["validator-2"], [names[f"aggregator-{i}"] for i in range(4)]

    assert s["order_id"] == 1
    assert s["winner"] in honest and s["winner"] != names["thief"]
    assert s["winning_mid"].startswith("0x") and len(s["winning_mid"]) == 66
    assert s["metric"] == "classification-accuracy-v2"
    assert 500_000 < s["winning_score"] <= 1_000_000
    assert s["winning_score"] == s["client_checked_score"]

    # the reward split: payouts sum exactly to the escrow; tax to the committee, the honest
    # validator's share, the rest to the winner; the liar gets nothing
    escrow = int(s["escrow"])
    assert escrow == ORDER["reward"]
    paid: dict[str, int] = {}
    for p in s["payouts"]:
        assert is_checksum_address(p["to"]) and isinstance(p["amount"], str)
        paid[p["to"]] = paid.get(p["to"], 0) + int(p["amount"])
    assert sum(paid.values()) == escrow
    assert sum(paid.get(m, 0) for m in members) == escrow * TAX_BPS // 10_000
    assert paid.get(names["validator-1"]) == escrow * VALIDATOR_BPS // 10_000
    assert liar not in paid and names["thief"] not in paid
    assert paid[s["winner"]] == escrow - escrow * (TAX_BPS + VALIDATOR_BPS) // 10_000

    # the liar lost the vStake of each wrong validation (one per model), the challenge upheld
    [slash] = s["slashes"]
    assert slash["from"] == liar and int(slash["amount"]) == 2 * 3 * 10**18
    assert "challenge by verifier-1 upheld" in slash["reason"]
    assert s["challenges"] == [{"validator": liar, "upheld": True}]

    # the thief: its ClaimReveal of a revealed model does not open its commitment, and a
    # commitment to it after trainEnd is out of its window
    reasons = [r["reason"] for r in s["rejected"]]
    assert all(r["actor"] == "thief" for r in s["rejected"])
    assert any("ClaimReveal" in r and Reason.COMMITMENT_MISMATCH.name in r for r in reasons), reasons
    assert any("ClaimCommit" in r and Reason.WRONG_WINDOW.name in r for r in reasons), reasons

    assert s["settlement_tx"].startswith("0x") and len(s["settlement_tx"]) == 66
    assert 50_000 < s["gas_used"] < 1_000_000

    # the live display showed the cycle as it happened
    text = stdout
    for needle in ("training", "model-reveal", "test-release", "validation", "challenge", "finalization",
                   "executeSigned landed", "LIES", "REFUSED", "balances"):
        assert needle in text, needle
    assert f"adds {LIE_PPM} ppm" in text
    assert elapsed < 300, f"the demo took {elapsed:.0f}s"
