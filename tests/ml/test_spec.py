import json

import pytest

from pot.ml import SpecError, TaskSpec, TrainHints, model_config_for


def test_round_trip_and_canonical_json():
    spec = TaskSpec(model=model_config_for("digits", "cnn"), train_data_cid="bafkrei-data", hints=TrainHints(epochs=5))
    blob = spec.to_json()
    assert TaskSpec.from_json(blob) == spec and TaskSpec.from_json(blob).to_json() == blob
    d = json.loads(blob)
    assert d["init"] == {"seed": 0} and d["metric"] == "classification-accuracy-v2" and d["model"]["kernel"] == 3
    w = TaskSpec(model=spec.model, train_data_cid="x", init_seed=None, init_weights_cid="bafy-weights")
    assert json.loads(w.to_json())["init"] == {"weights_cid": "bafy-weights"}
    assert TaskSpec.from_json(w.to_json()) == w


@pytest.mark.parametrize(
    "patch,msg",
    [
        ({"metric": "mse-v9"}, "unknown validation function"),
        ({"model": {"arch": "mamba"}}, "unknown architecture"),
        ({"init": {}}, "init must be"),
        ({"init": {"seed": -1}}, "seed"),
        ({"hints": {"epochs": 0}}, "epochs"),
        ({"hints": {"optimizer": "lion"}}, "optimizer"),
        ({"hints": {"momentum": 0.9}}, "hints"),
        ({"version": 2}, "version"),
        ({"extra": 1}, "unknown task spec fields"),
    ],
)
def test_bad_specs(patch, msg):
    d = json.loads(TaskSpec(model=model_config_for("iris", "mlp"), train_data_cid="c").to_json())
    d.update(patch)
    with pytest.raises(SpecError, match=msg):
        TaskSpec.from_json(json.dumps(d))


def test_not_json():
    with pytest.raises(SpecError, match="not JSON"):
        TaskSpec.from_json(b"\xff{")
    with pytest.raises(SpecError, match="bytes"):
        TaskSpec.from_json(b" " * 100_000)
