import json

import pytest
import torch
from click.testing import CliRunner

from pot.cli import main


def test_bench_train_writes_the_agreed_json(tmp_path):
    out = tmp_path / "train.json"
    r = CliRunner().invoke(main, ["bench", "train", "--device", "cpu", "--model", "mlp", "--seconds", "0.5", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "plain PyTorch" in r.output and "PoT miner" in r.output and "PoT's own work" in r.output
    d = json.loads(out.read_text())
    assert list(d) == ["device", "model", "plain_samples_per_s", "pot_samples_per_s", "pot_overhead_pct"]
    assert d["device"] == "cpu" and d["model"] == "mlp"
    assert d["plain_samples_per_s"] > 0 and d["pot_samples_per_s"] > 0 and 0 <= d["pot_overhead_pct"] < 100


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_train_cuda_without_gpu_is_a_clear_error():
    r = CliRunner().invoke(main, ["bench", "train", "--device", "cuda"])
    assert r.exit_code == 1 and "CUDA was asked for" in r.output
