"""A client's own files as data sets: image folders, arrays, CSV, text; bad files in one line."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pot.cli import main
from pot.ml import Dataset, build_model, save_model
from pot.ml.demo_data import grammar_text, write_shape_images
from pot.ml.userdata import UserDataError, default_arch, load, model_config, split
from pot.roles.client import build_task
from pot.roles.config import ClientConfig


def _image(path, size=(10, 7), mode="RGB", color=(200, 10, 10)):
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)


@pytest.fixture
def rgb_folder(tmp_path):
    root = tmp_path / "pets"
    for name, color in (("cats", (250, 0, 0)), ("dogs", (0, 0, 250))):
        (root / name).mkdir(parents=True)
        for i in range(5):
            _image(root / name / f"{i}.png" if i % 2 else root / name / f"{i}.JPG", color=color)
    return root


def test_image_folder(rgb_folder):
    u = load(rgb_folder, image_size=(12, 9))
    assert u.kind == "images" and u.classes == ["cats", "dogs"] and u.num_classes == 2
    assert u.data.x.shape == (10, 3, 12, 9) and u.data.x.dtype == np.uint8
    assert u.data.y.tolist() == [0] * 5 + [1] * 5
    # red cats, blue dogs (JPEG is lossy: roughly)
    assert u.data.x[0, 0].mean() > 200 and u.data.x[9, 2].mean() > 200
    assert "10 images in 2 classes" in u.description
    assert default_arch(u) == "resnet"
    cfg = model_config(u, "resnet", {"widths": [4]})
    assert cfg["in_shape"] == [3, 12, 9] and cfg["num_classes"] == 2


def test_grey_images_get_one_channel_unless_asked(tmp_path):
    root = write_shape_images(tmp_path / "shapes", per_class=3, size=8)
    u = load(root, image_size=(8, 8))
    assert u.data.x.shape == (18, 1, 8, 8)
    assert u.classes == ["circle", "cross", "diagonal", "ring", "square", "stripes"]
    assert load(root, image_size=(8, 8), channels=3).data.x.shape == (18, 3, 8, 8)


@pytest.mark.parametrize("make, match", [
    (lambda r: (r / "cats" / "notes.txt").write_text("hi"), "notes.txt: not a PNG or JPEG"),
    (lambda r: (r / "cats" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really"), "bad.png: not a readable"),
    (lambda r: (r / "birds").mkdir(), "birds: class folder holds no images"),
])
def test_bad_image_folders_are_refused_in_one_line(rgb_folder, make, match):
    make(rgb_folder)
    with pytest.raises(UserDataError, match=match):
        load(rgb_folder)


def test_one_class_is_not_a_task(tmp_path):
    (tmp_path / "only").mkdir()
    _image(tmp_path / "only" / "a.png")
    with pytest.raises(UserDataError, match="at least 2"):
        load(tmp_path, kind="images")


def test_arrays_npz_and_safetensors(tmp_path):
    from safetensors.numpy import save_file

    x = np.random.default_rng(0).integers(0, 256, (20, 3, 4, 4)).astype(np.uint8)
    y = np.arange(20) % 4
    np.savez(tmp_path / "a.npz", x=x, y=y)
    save_file({"x": x.astype(np.float32) / 255, "y": y.astype(np.int64)}, str(tmp_path / "a.safetensors"))
    a, b = load(tmp_path / "a.npz"), load(tmp_path / "a.safetensors")
    assert a.kind == b.kind == "arrays" and a.num_classes == 4
    assert a.data.x.dtype == np.uint8 and b.data.x.dtype == np.float32
    assert np.array_equal(a.data.x, x) and np.array_equal(b.data.y, y)
    np.savez(tmp_path / "bad.npz", x=x)
    with pytest.raises(UserDataError, match="needs arrays named x"):
        load(tmp_path / "bad.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=y[:1])
    with pytest.raises(UserDataError, match="not allowed"):
        load(tmp_path / "obj.npz")


def test_csv(tmp_path):
    f = tmp_path / "flowers.csv"
    f.write_text("petal,sepal,kind\n1.0,2.0,rose\n1.5,2.5,tulip\n3,4,rose\n5,1,tulip\n2,2,rose\n6,6,tulip\n")
    u = load(f)
    assert u.kind == "csv" and u.classes == ["rose", "tulip"] and u.data.x.shape == (6, 2)
    train, test = split(u, 0.34, seed=1)
    # standardised by the training part only
    assert np.allclose(train.x.mean(axis=0), 0, atol=1e-6) and np.allclose(train.x.std(axis=0), 1, atol=1e-5)
    f.write_text("petal,kind\n1.0,rose\nabc,tulip\n2,rose\n")
    with pytest.raises(UserDataError, match="line 3: column 'petal' is 'abc', not a number"):
        load(f)
    with pytest.raises(UserDataError, match="no column 'colour'"):
        load(f, label_column="colour")


def test_text_file_and_folder(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_bytes(grammar_text(3000, seed=1))
    (tmp_path / "docs" / "b.md").write_bytes(grammar_text(2000, seed=2))
    u = load(tmp_path / "docs", context=16)
    assert u.kind == "text" and u.num_classes == 256 and u.data.tokens
    assert u.data.x.shape[1] == 16 and u.data.x.dtype == np.uint8
    # y is x shifted by one byte, window after window
    assert np.array_equal(u.data.x[:, 1:], u.data.y[:, :-1]) and u.data.y[0, -1] == u.data.x[1, 0]
    train, test = split(u, 0.2)
    assert len(train.y) + len(test.y) == len(u.data.y) and test.tokens
    assert model_config(u, "gpt")["in_shape"] == [16]
    with pytest.raises(UserDataError, match="language model"):
        model_config(u, "mlp")
    (tmp_path / "tiny.txt").write_text("hello")
    with pytest.raises(UserDataError, match="at least 4"):
        load(tmp_path / "tiny.txt")


def test_build_task_from_own_images_and_text(tmp_path):
    root = write_shape_images(tmp_path / "shapes", per_class=6, size=8)
    built = build_task(ClientConfig(data=str(root), image_size=8, arch="cnn", model={"channels": [4], "hidden": 8}))
    assert built.spec.model["in_shape"] == [1, 8, 8] and built.spec.metric == "classification-accuracy-v2"
    test = Dataset.from_bytes(built.test_bytes)
    assert built.spec.test_samples == len(test.y) == 12 and test.x.dtype == np.uint8  # 2 of 6 per class
    (tmp_path / "book.txt").write_bytes(grammar_text(5000))
    lm = build_task(ClientConfig(data=str(tmp_path / "book.txt"), context=16, model={"dim": 8, "heads": 2}))
    assert lm.spec.model["arch"] == "gpt" and lm.spec.metric == "lm-bits-per-byte-v1"
    assert "bytes of text" in lm.summary and "lm-bits-per-byte-v1" in lm.summary


def test_build_task_checks_initial_weights(tmp_path):
    cfg = {"arch": "mlp", "in_shape": [64], "num_classes": 10, "hidden": [8]}
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    good.write_bytes(save_model(build_model(cfg, seed=3)))
    bad.write_bytes(save_model(build_model({**cfg, "hidden": [9]}, seed=3)))
    built = build_task(ClientConfig(dataset="digits-flat", model={"hidden": [8]}, init_weights=str(good)))
    assert built.spec.init_seed is None and built.spec.init_weights_cid.startswith("b")
    with pytest.raises(ValueError, match="initial weights .* are a"):
        build_task(ClientConfig(dataset="digits-flat", model={"hidden": [8]}, init_weights=str(bad)))


def test_build_task_refuses_test_sets_over_the_budget_or_the_window(tmp_path):
    (tmp_path / "book.txt").write_bytes(grammar_text(200_000))
    book = str(tmp_path / "book.txt")
    with pytest.raises(ValueError, match="validation budget is 6e\\+10: use fewer test samples"):
        build_task(ClientConfig(data=book, context=256, test_fraction=0.5, model={"dim": 256, "layers": 4, "mlp": 1024}))
    # 625 windows of the default GPT: within the budget, about a minute on a reference validator
    with pytest.raises(ValueError, match="the validation window is 10 s: raise --validate-duration"):
        build_task(ClientConfig(data=book, test_fraction=0.2, validate_duration=10))
    assert build_task(ClientConfig(data=book, test_fraction=0.2, validate_duration=600)).spec.test_samples == 625


def test_cli_refuses_a_bad_file_in_one_line(rgb_folder):
    (rgb_folder / "dogs" / "x.gif").write_bytes(b"GIF89a")
    r = CliRunner().invoke(main, ["client", "place-order", "--data", str(rgb_folder)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [f"Error: {rgb_folder / 'dogs' / 'x.gif'}: not a PNG or JPEG file "
                                             "(image folders hold .png, .jpg or .jpeg only)"]
    # every option docs/DATA.md names exists (--data-seed was documented but missing)
    r = CliRunner().invoke(main, ["client", "place-order", "--data", str(rgb_folder), "--data-seed", "7",
                                  "--test-fraction", "0.5", "--image-size", "8"])
    assert r.exit_code == 1 and "not a PNG or JPEG file" in r.output


def test_written_dataset_round_trips(rgb_folder):
    train, _ = split(load(rgb_folder, image_size=(4, 4)), 0.4)
    back = Dataset.from_bytes(train.to_bytes())
    assert back.x.dtype == np.uint8 and np.array_equal(back.x, train.x) and np.array_equal(back.y, train.y)


@pytest.mark.parametrize("kind,arch", [("images", "resnet"), ("text", "gpt")])
def test_the_devnet_client_config_takes_own_files(tmp_path, kind, arch):
    """`pot devnet up` prints `pot client place-order --config client-1.toml`; adding --data to it
    (docs/DATA.md) must order the model that fits the data. Its [client] table pinned an MLP,
    and text was refused ("text data trains a language model (--arch gpt), not 'mlp'")."""
    from pot.devnet.network import load_devnet_config
    from pot.roles.config import load_config

    if kind == "images":
        data = write_shape_images(tmp_path / "shapes", per_class=4, size=8)
    else:
        data = tmp_path / "book.txt"
        data.write_bytes(grammar_text(4_000))
    table = load_devnet_config().roles["client"]
    cfg = load_config(ClientConfig, env={}, **{**table, "data": str(data), "image_size": 8, "context": 16,
                                              "validate_duration": 900})
    assert build_task(cfg).spec.model["arch"] == arch
