import pytest
import torch

from pot.ml import ArchitectureError, build_model, check_config, model_config_for
from pot.ml.archs import MAX_PARAMS, param_shapes


@pytest.mark.parametrize(
    "cfg,x_shape",
    [
        (model_config_for("digits", "cnn"), (5, 1, 8, 8)),
        (model_config_for("digits", "mlp"), (5, 1, 8, 8)),
        (model_config_for("digits-flat", "mlp", hidden=[]), (5, 64)),
        (model_config_for("digits-seq", "lstm", layers=2), (5, 8, 8)),
        ({"arch": "cnn", "in_shape": [3, 5, 7], "num_classes": 4, "channels": [4, 4, 4], "kernel": 5}, (2, 3, 5, 7)),
    ],
)
def test_each_arch_builds_and_runs(cfg, x_shape):
    m = build_model(cfg, seed=1)
    assert m(torch.zeros(x_shape)).shape == (x_shape[0], cfg["num_classes"])
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == param_shapes(cfg)
    assert all(v.dtype == torch.float32 for v in m.state_dict().values())


def test_seed_fixes_weights_and_leaves_global_rng_alone():
    cfg = model_config_for("digits", "cnn")
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = build_model(cfg, 7), build_model(cfg, 7), build_model(cfg, 8)
    assert torch.equal(torch.rand(3), before)
    for k in a.state_dict():
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    assert any(not torch.equal(a.state_dict()[k], c.state_dict()[k]) for k in a.state_dict())


def test_normal_form_fills_defaults():
    short = check_config({"arch": "lstm", "in_shape": [8, 8], "num_classes": 10})
    assert short == check_config({**short})
    assert short["hidden"] == 64 and list(short) == sorted(short)


@pytest.mark.parametrize(
    "cfg,msg",
    [
        ({"arch": "transformer", "in_shape": [8], "num_classes": 2}, "unknown architecture 'transformer'"),
        ({"in_shape": [8], "num_classes": 2}, "unknown architecture None"),
        ("cnn", "must be a JSON object"),
        ({"arch": "mlp", "in_shape": [8], "num_classes": 2, "dropout": 0.5}, "unknown config fields"),
        ({"arch": "mlp", "num_classes": 2}, "lacks"),
        ({"arch": "cnn", "in_shape": [8, 8], "num_classes": 2}, "in_shape"),
        ({"arch": "mlp", "in_shape": [8], "num_classes": True}, "num_classes"),
        ({"arch": "mlp", "in_shape": [8], "num_classes": 2, "hidden": [0]}, "hidden"),
        ({"arch": "cnn", "in_shape": [1, 8, 8], "num_classes": 2, "kernel": 4}, "odd"),
    ],
)
def test_bad_configs_are_refused_clearly(cfg, msg):
    with pytest.raises(ArchitectureError, match=msg):
        build_model(cfg)


def test_param_limit_is_checked_without_allocating():
    # 60000 * 60000 * 4 bytes = 14 GB: must be refused from the meta-device shapes alone
    cfg = {"arch": "mlp", "in_shape": [60000], "num_classes": 2, "hidden": [60000]}
    with pytest.raises(ArchitectureError, match=f"limit is {MAX_PARAMS:,}"):
        build_model(cfg)
