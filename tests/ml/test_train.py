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
    t = time.monotonic()
    res = train(model, Dataset.from_bytes(train_b), TrainHints(epochs=6), on_improve=seen.append, progress=False)
    assert time.monotonic() - t < 20
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
        progress=False,
    )
    assert len(res.history) == 4


def test_data_must_fit_the_model(digits_seq):
    with pytest.raises(ValueError, match="model expects"):
        train(build_model(model_config_for("digits", "cnn")), Dataset.from_bytes(digits_seq[0]), progress=False)
