import json

import pytest
import torch
from click.testing import CliRunner

from pot.cli import main


def test_bench_train_writes_the_agreed_json(tmp_path):
    out = tmp_path / "train.json"
    r = CliRunner().invoke(main, ["bench", "train", "--device", "cpu", "--model", "mlp", "--seconds", "0.3",
                                  "--rounds", "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "miner/plain" in r.output and "process CPU time" in r.output
    d = json.loads(out.read_text())
    assert list(d) == ["device", "model", "params", "unit", "clock", "rounds", "epochs_per_round", "plain_per_s",
                       "pot_per_s", "ratio", "pot_overhead_pct", "eval_pct", "validation_s", "validation_samples",
                       "plain_rounds", "pot_rounds"]
    assert d["device"] == "cpu" and d["model"] == "mlp" and d["unit"] == "samples" and d["rounds"] == 2
    assert d["plain_per_s"] > 0 and d["pot_per_s"] > 0 and d["ratio"] > 0 and 0 <= d["pot_overhead_pct"] < 100
    assert d["validation_samples"] == 450 and d["validation_s"] > 0
    assert len(d["plain_rounds"]) == len(d["pot_rounds"]) == 2


def test_bench_language_model_counts_tokens():
    from pot.ml.bench import run_bench

    r = run_bench("cpu", "gpt", seconds=0.2, rounds=1)
    assert r["unit"] == "tokens" and r["params"] > 100_000
    assert len(r["plain_rounds"]) == len(r["pot_rounds"]) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_train_cuda_without_gpu_is_a_clear_error():
    r = CliRunner().invoke(main, ["bench", "train", "--device", "cuda", "--model", "mlp"])
    assert r.exit_code == 1 and "CUDA was asked for" in r.output
