import math
import time

import pytest

from pot.ml import Dataset, TrainHints, build_model, load_model, model_config_for, save_model, score, train


@pytest.mark.parametrize("ds,arch", [("digits", "cnn"), ("digits-seq", "lstm"), ("digits", "mlp")])
def test_training_improves_over_init_and_reports_each_better_model(ds, arch, request):
    from pot.ml import make_dataset

    train_b, test_b = make_dataset(ds, seed=0)
    cfg = model_config_for(ds, arch)
    model = build_model(cfg, seed=0)
    init_score = score(save_model(model), test_b)
    seen = []
    res = train(model, Dataset.from_bytes(train_b), TrainHints(epochs=6), on_improve=seen.append, progress=False)
    assert res.epochs == 6 and res.stopped_by == "epochs"
    assert seen and seen[-1] is res.best
    # each callback is a strictly better model on the holdout, with its canonical file and mid
    keys = [(c.holdout_accuracy, -c.holdout_loss) for c in seen]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for c in seen:
        assert save_model(load_model(c.model_bytes)) == c.model_bytes
        assert __import__("hashlib").sha256(c.model_bytes).digest() == c.mid
    final = score(res.best.model_bytes, test_b)
    assert final > init_score + 400_000, (init_score, final)
    assert final > 600_000


def test_deadline_stops_training(digits):
    data = Dataset.from_bytes(digits[0])
    t = time.monotonic()
    res = train(build_model(model_config_for("digits", "cnn")), data, TrainHints(epochs=10_000), time_budget_s=1.0, progress=False)
    assert res.stopped_by == "deadline" and res.steps > 0
    # stops at the next batch boundary; slack for a loaded CI machine
    assert time.monotonic() - t < 3.0
    past = train(build_model(model_config_for("digits", "cnn")), data, deadline=time.time() - 1, progress=False)
    assert past.steps == 0 and past.best is None


def test_several_evaluations_per_epoch(digits):
    res = train(
        build_model(model_config_for("digits", "mlp")),
        Dataset.from_bytes(digits[0]),
        TrainHints(epochs=1, batch_size=32),
        evals_per_epoch=4,
        max_eval_share=1.0,
        progress=False,
    )
    assert len(res.history) == 4


def test_model_selection_keeps_to_its_share_of_the_time(digits):
    """Evaluations past max_eval_share are skipped, but the last model is still scored."""
    res = train(build_model(model_config_for("digits", "mlp")), Dataset.from_bytes(digits[0]),
                TrainHints(epochs=6, batch_size=32), evals_per_epoch=4, max_eval_share=0.0,
                eval_interval_s=math.inf, progress=False)
    assert [e for e, _, _ in res.history] == [0, 5]  # the first, then only the final one


def test_data_must_fit_the_model(digits_seq):
    with pytest.raises(ValueError, match="model expects"):
        train(build_model(model_config_for("digits", "cnn")), Dataset.from_bytes(digits_seq[0]), progress=False)


def test_model_selection_uses_the_validation_function(digits):
    """The holdout score a miner commits by is the order's validation function on the file it commits."""
    from pot.ml.train import MAX_HOLDOUT_OPS, holdout_split
    from pot.ml.validation import eval_ops

    data = Dataset.from_bytes(digits[0])
    cfg = model_config_for("digits", "mlp", hidden=[16])
    seen = []
    res = train(build_model(cfg, seed=0), data, TrainHints(epochs=3), on_improve=seen.append, progress=False, seed=4)
    _, hold = holdout_split(data, TrainHints().holdout_fraction, 4)
    holdout = data.subset(hold[: MAX_HOLDOUT_OPS // eval_ops(cfg, 1)]).to_bytes()
    for c in seen:
        assert c.holdout_score == score(c.model_bytes, holdout, "classification-accuracy-v2")
        assert c.holdout_accuracy == c.holdout_score / 1_000_000
    assert res.best is seen[-1]
    assert [c.holdout_score for c in seen] == sorted(c.holdout_score for c in seen)


def test_a_bar_class_of_the_caller_shows_the_rate_and_the_time_left(digits):
    """The miner draws the bar with its console's class (no rate of its own): the rate and the time
    left come as fields."""
    bars = []

    class Bar:
        def __init__(self, total=None, unit="it", disable=False, **_options):
            self.disable, self.unit, self.fields = disable, unit, {}
            bars.append(self)

        def update(self, n=1):
            pass

        def set_postfix(self, ordered_dict=None, refresh=True, **fields):
            self.fields = {**(ordered_dict or {}), **fields}

        def close(self):
            pass

    train(build_model(model_config_for("digits", "mlp")), Dataset.from_bytes(digits[0]), TrainHints(epochs=1),
          time_budget_s=600, progress=Bar)
    assert len(bars) == 1 and bars[0].unit == "sample"
    assert float(bars[0].fields["sample/s"].replace(",", "")) > 0 and ":" in bars[0].fields["left"]


def test_language_model_trains_with_a_progress_bar_in_tokens(tmp_path, capsys):
    """A byte-level GPT on grammar text: the bar counts tokens per second and shows the time left."""
    from pot.ml.demo_data import grammar_text
    from pot.ml.userdata import load_text

    (tmp_path / "t.txt").write_bytes(grammar_text(20_000))
    data = load_text(tmp_path / "t.txt", 16, 10**9).data
    cfg = {"arch": "gpt", "in_shape": [16], "num_classes": 256, "dim": 16, "heads": 2, "layers": 1, "mlp": 32}
    res = train(build_model(cfg, seed=0), data, TrainHints(epochs=2, batch_size=32, lr=3e-3),
                time_budget_s=60, progress=True)
    err = capsys.readouterr().err
    assert "tok/s" in err and "left=" in err
    assert res.tokens_per_sample == 16 and res.tokens_per_s == 16 * res.samples_per_s
    assert res.best is not None and res.best.holdout_score > 1_000_000  # under 7 bits per byte
