"""The validation functions: one integer per (model, test set) on every honest machine.

The boundary models (boundary_models.py) make library float kernels disagree with themselves;
the scores must not: across processes with different BLAS/thread/FTZ settings, batch sizes,
test-set orders and both implementations of the definition.
"""

import json
import os
import subprocess
import sys

import boundary_models as bm
import numpy as np
import pytest
import torch

from pot.ml import Dataset, TrainHints, ValidationError, build_model, model_config_for, save_model, score, train
from pot.ml.datasets import dump_arrays
from pot.ml.exact import NUMPY, TorchBackend
from pot.ml.modelfile import decode
from pot.ml.reference import forward, prepare
from pot.ml.validation import (
    MAX_EVAL_OPS,
    PPM,
    UNIFORM_MICROBITS,
    bits_per_byte,
    correct_mask,
    get,
    loss_units,
)

CNN = model_config_for("digits", "cnn")
ACC, LM = "classification-accuracy-v2", "lm-bits-per-byte-v1"


@pytest.fixture(scope="module")
def trained(digits):
    """A CNN trained briefly on digits: a model with a spread of margins, not just a random one."""
    res = train(build_model(CNN, seed=0), Dataset.from_bytes(digits[0]), TrainHints(epochs=3), progress=False)
    return res.best.model_bytes


@pytest.fixture(scope="module")
def boundary(tmp_path_factory):
    """The boundary models and their test sets, written to files: (name, model, test, metric)."""
    d = tmp_path_factory.mktemp("boundary")
    train_flat, test_flat = bm.digits_flat()
    test_flat = Dataset.from_bytes(test_flat).subset(np.arange(150)).to_bytes()  # enough to disagree, and quick
    text = bm.text_windows()
    cases = {"cancelling-mlp": (bm.cancelling_mlp(train_flat), test_flat, ACC),
             "tied-logits": (bm.tied_logits_mlp(), test_flat, ACC),
             "denormal-mlp": (bm.denormal_mlp(), test_flat, ACC),
             "denormal-weights": (bm.denormal_weights_mlp(train_flat), test_flat, ACC),
             "denormal-inputs": bm.denormal_inputs(train_flat, test_flat) + (ACC,),
             "cancelling-gpt": (bm.unigram_gpt(cancel=1e12), text, LM),
             "unigram-gpt": (bm.unigram_gpt(), text, LM)}
    for name, (m, t, _) in cases.items():
        (d / f"{name}.model").write_bytes(m)
        (d / f"{name}.test").write_bytes(t)
    return d, {name: metric for name, (_, _, metric) in cases.items()}


# One process: every boundary model scored in every chunk size and test order with both
# implementations, plus the float64 logits torch computes (whose bits must vary somewhere).
_MATRIX = r"""
import hashlib, json, sys
import numpy as np, torch
from pathlib import Path
from pot.ml import Dataset, load_model, score
d, cases, ftz, threads = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
torch.set_num_threads(threads)
if ftz:
    assert torch.set_flush_denormal(True)
    assert np.float64(2.0**-1000) * 2.0**-30 == 0.0  # FTZ is on in this thread, for numpy too
out = {}
for name, metric in cases.items():
    m, t = (d / f"{name}.model").read_bytes(), (d / f"{name}.test").read_bytes()
    data = Dataset.from_bytes(t)
    rng = np.random.default_rng(7)
    orders = {"natural": np.arange(len(data.y)), "reversed": np.arange(len(data.y))[::-1],
              "shuffled": rng.permutation(len(data.y))}
    runs = [("numpy", "natural", 1), ("numpy", "natural", 7), ("numpy", "natural", 1024),
            ("numpy", "reversed", 1024), ("numpy", "shuffled", 7), ("torch", "natural", 1024),
            ("torch", "shuffled", 7)]
    for impl, oname, chunk in runs:
        tb = data.subset(orders[oname]).to_bytes()
        out[f"{name}/{impl}/{oname}/{chunk}"] = score(m, tb, metric, impl=impl, chunk=chunk)
    model = load_model(m).double()
    x = torch.from_numpy(data.x.astype(np.float64) if data.x.dtype != np.uint8 else data.x)
    with torch.no_grad():
        for bs in (1, 7, 1024):
            z = torch.cat([model(x[i:i + bs]) for i in range(0, len(x), bs)]).numpy()
            out[f"{name}/float64-logits/{bs}"] = hashlib.sha256(z.tobytes()).hexdigest()[:16]
print(json.dumps(out))
"""

_SETTINGS = {
    "1-thread": ({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, False, 1),
    "2-threads": ({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}, False, 2),
    "mkl-compatible": ({"MKL_CBWR": "COMPATIBLE"}, False, 1),
    "mkl-avx2-aten-default": ({"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "default"}, False, 2),
    "ftz-daz": ({}, True, 1),
}


@pytest.mark.slow  # five processes, each scoring every boundary model 18 ways
def test_boundary_models_score_identically_everywhere(boundary):
    d, cases = boundary
    results: dict[str, dict[str, object]] = {}
    for setting, (env, ftz, threads) in _SETTINGS.items():
        r = subprocess.run([sys.executable, "-c", _MATRIX, str(d), json.dumps(cases), "1" if ftz else "0",
                            str(threads)], capture_output=True, text=True, timeout=300,
                           env={**os.environ, **env})
        assert r.returncode == 0, r.stderr[-3000:]
        for key, value in json.loads(r.stdout).items():
            results.setdefault(key, {})[setting] = value
    for name, metric in cases.items():
        scores = {f"{k} {s}": v for k, per in results.items() if k.startswith(f"{name}/") and "float64" not in k
                  for s, v in per.items()}
        assert len(set(scores.values())) == 1, (name, scores)
        assert 0 <= next(iter(scores.values())) <= get(metric).max_score
    # the boundary models do break the float path: its logits' bits differ between settings or
    # batch sizes (else these models would prove nothing)
    for name in ("cancelling-mlp", "tied-logits", "denormal-mlp", "denormal-weights", "denormal-inputs",
                 "cancelling-gpt"):
        hashes = {v for k, per in results.items() if k.startswith(f"{name}/float64-logits") for v in per.values()}
        assert len(hashes) > 1, name


def test_search_for_disagreement_between_implementations():
    """Random models of every architecture, weights at random scales from 1e-30 to 1e30 and
    random inputs: the numpy reference and the torch implementation give the same bits."""
    rng = np.random.default_rng(2024)
    torch_impl = TorchBackend()
    archs = [
        ({"arch": "mlp", "in_shape": [6], "num_classes": 3, "hidden": [5, 4]}, lambda n: rng.normal(size=(n, 6))),
        ({"arch": "cnn", "in_shape": [2, 5, 4], "num_classes": 3, "channels": [3, 2], "kernel": 3, "hidden": 4},
         lambda n: rng.integers(0, 256, (n, 2, 5, 4)).astype(np.uint8)),
        ({"arch": "lstm", "in_shape": [4, 3], "num_classes": 3, "hidden": 4, "layers": 2},
         lambda n: rng.normal(size=(n, 4, 3))),
        ({"arch": "resnet", "in_shape": [2, 6, 6], "num_classes": 3, "widths": [3, 4], "blocks": 1},
         lambda n: rng.normal(size=(n, 2, 6, 6))),
        ({"arch": "gpt", "in_shape": [6], "num_classes": 256, "dim": 8, "heads": 2, "layers": 1, "mlp": 8},
         lambda n: rng.integers(0, 256, (n, 6)).astype(np.uint8)),
    ]
    compared = 0
    for trial in range(40):
        cfg, make_x = archs[trial % len(archs)]
        arrays, cfg = decode(save_model(build_model(cfg, seed=trial)))
        arrays = {k: (np.asarray(v) * np.float32(10.0 ** rng.uniform(-30, 30))).astype(np.float32)
                  if rng.random() < 0.5 else np.asarray(v) for k, v in arrays.items()}
        x = make_x(5)
        if x.dtype != np.uint8:
            x = (x * 10.0 ** rng.uniform(-20, 20)).astype(np.float32)
        a = NUMPY.to_numpy(forward(NUMPY, cfg, prepare(NUMPY, arrays), x))
        b = torch_impl.to_numpy(forward(torch_impl, cfg, prepare(torch_impl, arrays), x))
        assert a.shape == b.shape
        # NaNs agree in place (their payload is not part of the definition), everything else bit for bit
        assert np.array_equal(np.isnan(a), np.isnan(b)), (trial, cfg["arch"])
        assert np.array_equal(np.where(np.isnan(a), 0, a).view(np.int64), np.where(np.isnan(b), 0, b).view(np.int64)), \
            (trial, cfg["arch"])
        compared += a.size
    assert compared > 1000


def test_fidelity_accuracy(trained, digits):
    """On an honest model the score is the float64 argmax accuracy to within 0.1 points."""
    s = score(trained, digits[1], ACC)
    data = Dataset.from_bytes(digits[1])
    from pot.ml import load_model

    with torch.no_grad():
        z = load_model(trained).double()(torch.from_numpy(data.x.astype(np.float64)))
    acc = float((z.argmax(1).numpy() == data.y).mean())
    assert s > 500_000
    assert abs(s / PPM - acc) <= 0.001, (s, acc)


def test_fidelity_bits_per_byte():
    """On an honest language model the score is float64 cross-entropy to within 1%."""
    from pot.ml import load_model

    text = bm.text_windows(n=16)
    data = Dataset.from_bytes(text)
    res = train(build_model(bm.TINY_GPT, seed=0), Dataset.from_bytes(bm.text_windows(n=96, seed=1)),
                TrainHints(epochs=4, batch_size=16, lr=3e-3), progress=False)
    s = score(res.best.model_bytes, text, LM)
    with torch.no_grad():
        z = load_model(res.best.model_bytes).double()(torch.tensor(data.x))
        ce = torch.nn.functional.cross_entropy(z.flatten(0, 1), torch.from_numpy(data.y).flatten()).item()
    bpb = ce / np.log(2)
    assert bpb < 6  # it learned something: uniform is 8
    assert abs(bits_per_byte(s) - bpb) <= 0.01 * bpb, (bits_per_byte(s), bpb)


def test_same_score_with_torch_threads_and_in_a_fresh_process(trained, digits, tmp_path):
    base = score(trained, digits[1])
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert score(trained, digits[1], impl="torch") == base
    finally:
        torch.set_num_threads(old)
    (tmp_path / "m").write_bytes(trained)
    (tmp_path / "t").write_bytes(digits[1])
    code = ("import sys,pathlib; from pot.ml import score; p=pathlib.Path(sys.argv[1]);"
            "print(score((p/'m').read_bytes(), (p/'t').read_bytes(), 'classification-accuracy-v2'))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert int(out.stdout) == base


def test_unknown_validation_function(trained, digits):
    with pytest.raises(ValidationError, match="unknown validation function 'accuracy-v0'"):
        score(trained, digits[1], "accuracy-v0")


def test_model_the_function_does_not_score(trained, digits):
    with pytest.raises(ValidationError, match="not 'cnn'"):
        score(trained, digits[1], LM)


def test_test_data_must_fit_the_model(trained):
    other = dump_arrays({"x": np.zeros((3, 64), np.float32), "y": np.zeros(3, np.int64)})
    with pytest.raises(ValidationError, match="does not fit"):
        score(trained, other)
    labels = dump_arrays({"x": np.zeros((3, 1, 8, 8), np.float32), "y": np.array([0, 1, 10])})
    with pytest.raises(ValidationError, match="10 classes"):
        score(trained, labels)


def test_test_set_over_the_budget_is_refused():
    cfg = {"arch": "mlp", "in_shape": [4096], "num_classes": 10, "hidden": [4096]}
    from pot.ml.validation import eval_ops

    n = MAX_EVAL_OPS // eval_ops(cfg, 1) + 1
    data = Dataset(np.zeros((1, 4096), np.float32).repeat(n, 0), np.zeros(n, np.int64))
    with pytest.raises(ValidationError, match="validation budget"):
        from pot.ml.validation import check_fits

        check_fits(get(ACC), cfg, data)


def test_accuracy_rule():
    y = np.array([0, 1, 0, 0, 0, 2])
    z = np.array(
        [
            [1.0, 0.0, 0.0],  # clear win
            [1.0, 1.0, 0.0],  # exact tie: the lowest index (0) wins, so label 1 is wrong
            [1.0, 1.0, 0.0],  # the same tie, label 0: right
            [np.nan, 0.0, 0.0],  # NaN: wrong
            [np.inf, 0.0, 0.0],  # infinite: wrong
            [0.0, 5e-324, 5e-324],  # the last bit decides; ties again go low: 1, not label 2
        ]
    )
    assert correct_mask(z, y).tolist() == [True, False, True, False, False, False]


def test_zero_model_predicts_the_first_class(digits):
    """A zero model ties every class: the tie goes to class 0, the same on every machine."""
    m = build_model(CNN)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    y = Dataset.from_bytes(digits[1]).y
    assert score(save_model(m), digits[1]) == int((y == 0).sum()) * PPM // len(y)


def test_bits_per_byte_rule():
    # uniform logits: exactly 8 bits per byte, score 0; a sure right guess: 0 bits
    z = NUMPY.asarray(np.zeros((1, 2, 256)))
    assert loss_units(NUMPY, z, np.array([[3, 4]])).tolist() == [[8 << 32, 8 << 32]]
    sure = np.full((1, 1, 256), -1000.0)
    sure[0, 0, 7] = 1000.0
    assert loss_units(NUMPY, NUMPY.asarray(sure), np.array([[7]])).tolist() == [[0]]
    # a sure wrong guess costs at most 64 bits, and so does a NaN
    assert loss_units(NUMPY, NUMPY.asarray(sure), np.array([[8]])).tolist() == [[64 << 32]]
    bad = np.zeros((1, 1, 256))
    bad[0, 0, 3] = np.nan
    assert loss_units(NUMPY, NUMPY.asarray(bad), np.array([[1]])).tolist() == [[64 << 32]]
    assert bits_per_byte(UNIFORM_MICROBITS) == 0.0 and bits_per_byte(0) == 8.0


def test_uniform_language_model_scores_zero():
    arrays, cfg = decode(save_model(build_model(bm.TINY_GPT, seed=0)))
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    arrays["head.weight"] = np.zeros_like(arrays["head.weight"])
    from pot.ml.modelfile import encode

    assert score(encode(arrays, cfg), bm.text_windows(), LM) == 0


def test_reference_forward_matches_torch_float64():
    """The reference forward passes compute what the torch modules compute (to ~1e-15)."""
    rng = np.random.default_rng(0)
    for cfg, x in [
        (model_config_for("digits", "cnn", channels=[4, 8], hidden=16), rng.random((6, 1, 8, 8)).astype(np.float32)),
        (model_config_for("digits-seq", "lstm", hidden=8, layers=2), rng.random((6, 8, 8)).astype(np.float32)),
        ({"arch": "resnet", "in_shape": [3, 8, 8], "num_classes": 4, "widths": [4, 8], "blocks": 2},
         rng.integers(0, 256, (6, 3, 8, 8)).astype(np.uint8)),
        (bm.TINY_GPT, rng.integers(0, 256, (6, 16)).astype(np.uint8)),
    ]:
        m = build_model(cfg, seed=1)
        with torch.no_grad():  # running statistics that are not the identity
            for name, b in m.named_buffers():
                b.copy_(torch.rand_like(b) + (0.5 if "var" in name else -0.5))
        arrays, c = decode(save_model(m))
        xin = torch.from_numpy(x) if cfg["arch"] == "gpt" else torch.from_numpy(
            x.astype(np.float64) / (255.0 if x.dtype == np.uint8 else 1.0))
        with torch.no_grad():
            want = m.double().eval()(xin).numpy()
        got = forward(NUMPY, c, prepare(NUMPY, arrays), x)
        assert np.max(np.abs(got - want)) < 1e-12, cfg["arch"]


def test_score_does_not_touch_torch_settings(trained, digits):
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    score(trained, digits[1])
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before



def test_memory_of_a_scoring_stays_within_its_budget(monkeypatch):
    """Samples are evaluated a few at a time when they are big: a long-context GPT's attention
    would otherwise take chunk x heads x T^2 doubles at once, past a scoring process's limit."""
    import tracemalloc

    import pot.ml.validation as V

    cfg = {"arch": "gpt", "in_shape": [128], "num_classes": 256, "dim": 32, "heads": 8, "layers": 1, "mlp": 64}
    arrays, cfg = decode(save_model(build_model(cfg, seed=0)))
    tok = np.random.default_rng(0).integers(0, 256, (40, 129)).astype(np.uint8)
    data = Dataset(tok[:, :-1], tok[:, 1:].astype(np.int64))
    scores, peaks = [], []
    for budget in (10**12, 32 * 1024**2):
        monkeypatch.setattr(V, "EVAL_MEMORY_BYTES", budget)
        tracemalloc.start()
        scores.append(V.evaluate(get(LM), cfg, arrays, data))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[0] > 200 * 1024**2  # all 40 windows at once
    assert peaks[1] < 48 * 1024**2  # a chunk of the budget's size (plus the logits kept for the metric)
    assert scores[0] == scores[1]


def test_the_scoring_entry_point_scores_a_language_model():
    """Validators score through pot.ml.scoring: an lm-bits-per-byte score (above 1,000,000) is a
    Scored outcome, not a failure of the machine."""
    from pot.ml import TaskSpec
    from pot.ml.scoring import score_model
    from pot.protocol.scoring import Scored

    spec = TaskSpec(model=bm.TINY_GPT, train_data_cid="bafy-text", metric=LM)
    out = score_model(bm.unigram_gpt(), bm.text_windows(), spec)
    assert out == Scored(score(bm.unigram_gpt(), bm.text_windows(), LM)) and out.score > 1_000_000
