"""``pot demo --task lm`` and ``--task images`` end to end: the own-files path (a generated text
corpus, a folder of generated PNG images) through a whole cycle on a devnet of its own. The winner
is an honest miner, the client's own check reproduces the network's score, the liar is slashed.
How long each takes (at most 5 minutes on the 2-core machine) is measured and stated in the
README, not asserted here: on a shared CI machine a time limit would be a flake."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pot.devnet.demo import DEMO_CONFIG
from pot.devnet.network import DevnetConfig, participants
from pot.ml.validation import bits_per_byte


def _demo(tmp_path, task: str) -> tuple[dict, str]:
    out = tmp_path / "summary.json"
    proc = subprocess.Popen([sys.executable, "-m", "pot.cli", "demo", "--task", task, "--json", str(out),
                             "--workdir", str(tmp_path / "work")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        stdout, stderr = proc.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the demo stops its devnet on the way out
        stdout, stderr = proc.communicate(timeout=60)
        raise AssertionError(f"the {task} demo did not finish in 480s:\n" + stdout[-4000:] + stderr[-4000:]) from None
    assert proc.returncode == 0, stdout[-4000:] + stderr[-4000:]
    return json.loads(out.read_text()), stdout


def _check_outcome(s: dict) -> None:
    names = {p.name: p.address for p in participants(DevnetConfig(**DEMO_CONFIG), {"thief": 1})}
    assert s["winner"] in {names["miner-1"], names["miner-2"]}
    assert s["winning_score"] == s["client_checked_score"]
    assert sum(int(p["amount"]) for p in s["payouts"]) == int(s["escrow"])
    assert {sl["from"] for sl in s["slashes"]} == {names["validator-2"]}
    assert s["challenges"] == [{"validator": names["validator-2"], "upheld": True}]
    assert any(r["actor"] == "thief" for r in s["rejected"])


@pytest.mark.slow
def test_demo_language_model(tmp_path):
    s, stdout = _demo(tmp_path, "lm")
    _check_outcome(s)
    # a byte-level GPT that learned the grammar: well under the 8 bits per byte of a uniform guess
    assert bits_per_byte(s["winning_score"]) < 3.0, s["winning_score"]
    assert "training gpt" in stdout and "bytes of text" in stdout


@pytest.mark.slow
def test_demo_images(tmp_path):
    s, stdout = _demo(tmp_path, "images")
    _check_outcome(s)
    # six shapes: chance is 1 in 6
    assert 400_000 < s["winning_score"] <= 1_000_000
    assert "training resnet" in stdout and "360 images in 6 classes" in stdout
    assert (tmp_path / "work" / "data" / "shapes" / "ring").is_dir()
