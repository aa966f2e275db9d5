import subprocess
import sys

import numpy as np
import pytest
import torch

from pot.ml import (
    Dataset,
    TrainHints,
    ValidationError,
    build_model,
    model_config_for,
    save_model,
    score,
    train,
)
from pot.ml.datasets import dump_arrays
from pot.ml.validation import MARGIN_REL, PPM, correct_by_margin, deterministic_cpu

CNN = model_config_for("digits", "cnn")


@pytest.fixture(scope="module")
def trained(digits):
    """A CNN trained briefly on digits: a model with a spread of margins, not just a random one."""
    res = train(build_model(CNN, seed=0), Dataset.from_bytes(digits[0]), TrainHints(epochs=3), progress=False)
    return res.best.model_bytes


def test_score_is_ppm_integer(trained, digits):
    s = score(trained, digits[1], "classification-accuracy-v1")
    assert isinstance(s, int) and 0 <= s <= PPM
    assert s > 500_000


def test_same_score_with_1_and_2_threads(trained, digits):
    old = torch.get_num_threads()
    try:
        scores = set()
        for outer in (1, 2):
            torch.set_num_threads(outer)
            scores.add(score(trained, digits[1]))
            assert torch.get_num_threads() == outer  # restored after the evaluation
        # the evaluation itself run with 2 threads gives the same logits' decisions
        from pot.ml import load_model
        from pot.ml.validation import _classification_accuracy_v1

        for inner in (1, 2):
            with deterministic_cpu(threads=inner):
                scores.add(_classification_accuracy_v1(load_model(trained), Dataset.from_bytes(digits[1])))
        assert len(scores) == 1
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(old)


def test_same_score_in_fresh_process(trained, digits, tmp_path):
    (tmp_path / "m").write_bytes(trained)
    (tmp_path / "t").write_bytes(digits[1])
    code = (
        "import sys,pathlib; from pot.ml import score; p=pathlib.Path(sys.argv[1]);"
        "print(score((p/'m').read_bytes(), (p/'t').read_bytes(), 'classification-accuracy-v1'))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert int(out.stdout) == score(trained, digits[1])


def test_unknown_validation_function(trained, digits):
    with pytest.raises(ValidationError, match="unknown validation function 'accuracy-v0'"):
        score(trained, digits[1], "accuracy-v0")


def test_test_data_must_fit_the_model(trained):
    other = dump_arrays({"x": np.zeros((3, 64), np.float32), "y": np.zeros(3, np.int64)})
    with pytest.raises(ValidationError, match="does not fit"):
        score(trained, other)
    labels = dump_arrays({"x": np.zeros((3, 1, 8, 8), np.float32), "y": np.array([0, 1, 10])})
    with pytest.raises(ValidationError, match="10 classes"):
        score(trained, labels)


def test_margin_rule():
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    z = np.array(
        [
            [1.0, 0.0, 0.0],  # clear win
            [1.0, 1.0, 0.0],  # exact tie: wrong, never decided by rounding
            [1.0 + 1e-12, 1.0, 0.0],  # wins by less than the margin: wrong
            [1.0 + 1e-6, 1.0, 0.0],  # wins by far more than float64 rounding: right
            [1e12 + 1e2, 1e12, 0.0],  # margin 100 < 1e-9 * 1e12 = 1000: wrong (relative)
            [np.nan, 0.0, 0.0],  # NaN: wrong
            [np.inf, 0.0, 0.0],  # infinite: wrong
            [0.0, 2 * MARGIN_REL, 0.0],  # wins by 2x the absolute margin at scale 1: right
        ]
    )
    assert correct_by_margin(z, y).tolist() == [True, False, False, True, False, False, False, True]


def test_tied_model_scores_zero(digits):
    """A zero model ties every class: under argmax it would score ~10% by tie-breaking; here 0."""
    m = build_model(CNN)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    assert score(save_model(m), digits[1]) == 0


def test_rounding_noise_does_not_change_decisions(trained, digits):
    """Perturb the logits by far more than float64 rounding: no sample changes its verdict."""
    from pot.ml import load_model
    from pot.ml.validation import logits_float64

    data = Dataset.from_bytes(digits[1])
    with deterministic_cpu():
        z = logits_float64(load_model(trained), data.x)
    base = correct_by_margin(z, data.y)
    rng = np.random.default_rng(0)
    for _ in range(5):
        noisy = z * (1 + rng.uniform(-1e-13, 1e-13, z.shape))
        assert np.array_equal(correct_by_margin(noisy, data.y), base)
