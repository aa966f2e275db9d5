import io
import zipfile

import numpy as np
import pytest

from pot.ml import Dataset, DatasetError, make_dataset
from pot.ml.datasets import BUILTIN, dump_arrays, load_arrays


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_datasets_are_deterministic_plain_npz(name):
    train, test = make_dataset(name, seed=3)
    assert (train, test) == make_dataset(name, seed=3)
    assert make_dataset(name, seed=4)[0] != train
    for blob in (train, test):
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            assert sorted(z.files) == ["x", "y"]
            assert z["x"].dtype == np.float32 and z["y"].dtype == np.int64
    tr, te = Dataset.from_bytes(train), Dataset.from_bytes(test)
    assert tr.in_shape == list(BUILTIN[name].sample_shape)
    # the split is a partition, and every class appears in both parts
    assert set(np.unique(tr.y)) == set(np.unique(te.y))
    assert 0.2 < len(te.y) / (len(tr.y) + len(te.y)) < 0.3


def test_digits_split_sizes_and_no_overlap(digits):
    tr, te = (Dataset.from_bytes(b) for b in digits)
    assert len(tr.y) + len(te.y) == 1797
    rows = {r.tobytes() for r in tr.x.reshape(len(tr.x), -1)}
    # a few digits images are exact duplicates in the source; nearly all test rows are unseen
    assert sum(r.tobytes() in rows for r in te.x.reshape(len(te.x), -1)) < 5


def test_unknown_dataset():
    with pytest.raises(DatasetError, match="unknown data set 'mnist'"):
        make_dataset("mnist")


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return buf.getvalue()


def test_object_arrays_and_pickles_are_refused():
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="not allowed"):
        load_arrays(_zip({"x.npy": buf.getvalue()}))
    with pytest.raises(DatasetError, match="not an npz"):
        load_arrays(b"\x80\x04\x95" + b"\x00" * 40)


def test_npy_header_claiming_gigabytes_is_refused_before_allocating():
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\x00" * 16
    with pytest.raises(DatasetError, match="declares 40,000,000,000 bytes"):
        load_arrays(_zip({"x.npy": npy}))


def test_zip_bomb_is_refused_from_declared_sizes():
    bomb = _zip({"x.npy": b"\x00" * 5_000_000}, compression=zipfile.ZIP_DEFLATED)
    assert len(bomb) < 50_000
    with pytest.raises(DatasetError, match="uncompressed"):
        load_arrays(bomb, max_bytes=1_000_000)


def test_truncated_and_garbage():
    blob = dump_arrays({"x": np.ones((4, 2), np.float32), "y": np.zeros(4, np.int64)})
    with pytest.raises(DatasetError):
        load_arrays(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="exactly the arrays x and y"):
        Dataset.from_bytes(dump_arrays({"x": np.ones((4, 2), np.float32)}))
    with pytest.raises(DatasetError, match="NaN"):
        Dataset.from_bytes(dump_arrays({"x": np.full((4, 2), np.nan, np.float32), "y": np.zeros(4, np.int64)}))


def test_inputs_are_float32_or_uint8():
    """float64 inputs are refused: narrowing them to float32 would depend on the FTZ flag."""
    with pytest.raises(DatasetError, match="x must be float32 or uint8"):
        Dataset.from_bytes(dump_arrays({"x": np.ones((4, 2)), "y": np.zeros(4, np.int64)}))
    img = Dataset.from_bytes(dump_arrays({"x": np.full((4, 1, 2, 2), 7, np.uint8), "y": np.arange(4)}))
    assert img.x.dtype == np.uint8 and not img.tokens
    img.check_for({"arch": "cnn", "in_shape": [1, 2, 2], "num_classes": 4})


def test_language_model_data_fits_only_a_language_model():
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    text = Dataset(x, (x + 1).astype(np.int64))
    assert text.tokens and Dataset.from_bytes(text.to_bytes()).tokens
    gpt = {"arch": "gpt", "in_shape": [4], "num_classes": 256}
    text.check_for(gpt)
    with pytest.raises(DatasetError, match="needs a language model"):
        text.check_for({"arch": "mlp", "in_shape": [4], "num_classes": 256})
    with pytest.raises(DatasetError, match="needs byte windows"):
        Dataset(x.astype(np.float32), np.arange(3)).check_for(gpt)
    with pytest.raises(DatasetError, match="shape of x"):
        Dataset(x, np.zeros((3, 5), np.int64))
