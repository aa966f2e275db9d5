import json
import os
import subprocess
import sys

from pot.ml import TaskSpec, TrainHints, load_model, mid, model_config_for, score
from pot.ml.modelfile import read_model_file


def _run(args, tmp_path, timeout=90):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


def _setup(tmp_path, digits, epochs=4):
    spec = TaskSpec(model=model_config_for("digits", "cnn"), train_data_cid="bafy-local", hints=TrainHints(epochs=epochs))
    (tmp_path / "spec.json").write_bytes(spec.to_json())
    (tmp_path / "train.npz").write_bytes(digits[0])
    return ["--spec", "spec.json", "--data", "train.npz", "--out", "out", "--no-progress", "--device", "cpu"]


def _check_outputs(tmp_path, digits, min_score):
    out = tmp_path / "out"
    lines = [json.loads(x) for x in (out / "improvements.jsonl").read_text().splitlines()]
    assert lines
    blob = read_model_file(out / "best.safetensors")
    assert "0x" + mid(blob).hex() == lines[-1]["mid"]
    load_model(blob)
    assert score(blob, digits[1]) >= min_score
    # only rank 0 writes: no temporary leftovers, one announcement per improvement
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "improvements.jsonl"]
    return lines


def test_torchrun_two_ranks_gloo(tmp_path, digits):
    """Two CPU ranks under torchrun (gloo): one identity, only rank 0 writes and announces."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "pot.ml.train_ddp", *_setup(tmp_path, digits)]
    r = _run(args, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = [json.loads(x) for x in r.stdout.splitlines() if '"done"' in x]
    assert len(summaries) == 1  # rank 1 printed nothing
    s = summaries[0]
    assert s["world_size"] == 2 and s["epochs"] == 4 and s["stopped_by"] == "epochs"
    lines = _check_outputs(tmp_path, digits, 500_000)
    assert s["best_mid"] == lines[-1]["mid"]
    improvement_lines = [x for x in r.stdout.splitlines() if '"holdout_accuracy"' in x]
    assert len(improvement_lines) == len(lines)


def test_single_process_entry_point_with_budget(tmp_path, digits):
    args = [sys.executable, "-m", "pot.ml.train_ddp", *_setup(tmp_path, digits, epochs=100_000), "--budget", "3"]
    r = _run(args, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout.splitlines()[-1])
    assert s["world_size"] == 1 and s["stopped_by"] == "deadline"
    # how many epochs fit in 3 s depends on the machine's load; whatever was announced is on disk
    if s["best_mid"] is not None:
        _check_outputs(tmp_path, digits, 0)


def test_bad_spec_is_refused(tmp_path, digits):
    args = _setup(tmp_path, digits)
    (tmp_path / "spec.json").write_text(json.dumps({"version": 1, "model": {"arch": "mamba"}, "init": {"seed": 0}, "train_data_cid": "x"}))
    r = _run([sys.executable, "-m", "pot.ml.train_ddp", *args], tmp_path)
    assert r.returncode == 2 and "error: unknown architecture 'mamba'" in r.stderr and "Traceback" not in r.stderr


def test_torchrun_two_ranks_language_model(tmp_path):
    """The byte-level GPT under torchrun (gloo): windows sharded across ranks, one announcement per improvement."""
    from pot.ml import Dataset
    from pot.ml.demo_data import grammar_text
    from pot.ml.userdata import load_text

    (tmp_path / "t.txt").write_bytes(grammar_text(12_000))
    data = load_text(tmp_path / "t.txt", 16, 10**9).data
    cfg = {"arch": "gpt", "in_shape": [16], "num_classes": 256, "dim": 16, "heads": 2, "layers": 1, "mlp": 32}
    spec = TaskSpec(model=cfg, train_data_cid="bafy-local", metric="lm-bits-per-byte-v1",
                    hints=TrainHints(epochs=2, batch_size=32, lr=3e-3))
    (tmp_path / "spec.json").write_bytes(spec.to_json())
    (tmp_path / "train.npz").write_bytes(Dataset(data.x, data.y).to_bytes())
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "pot.ml.train_ddp", "--spec", "spec.json", "--data", "train.npz", "--out", "out",
            "--no-progress", "--device", "cpu"]
    r = _run(args, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    [s] = [json.loads(x) for x in r.stdout.splitlines() if '"done"' in x]
    assert s["world_size"] == 2 and s["epochs"] == 2 and abs(s["tokens_per_s"] - 16 * s["samples_per_s"]) < 2
    lines = [json.loads(x) for x in (tmp_path / "out" / "improvements.jsonl").read_text().splitlines()]
    assert lines and s["best_mid"] == lines[-1]["mid"]
    assert lines[-1]["holdout_score"] > 0
