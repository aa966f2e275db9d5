import io
import json
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load as st_load
from safetensors.torch import save as st_save

from pot.ml import ModelFileError, build_model, decode, encode, load_model, mid, model_config_for, save_model
from pot.ml.modelfile import read_model_file

CNN = model_config_for("digits", "cnn")


def _header(blob: bytes) -> dict:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n])


def _rewrite(header: dict, body: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


@pytest.mark.parametrize("arch,ds", [("cnn", "digits"), ("mlp", "digits-flat"), ("lstm", "digits-seq")])
def test_same_weights_same_bytes(arch, ds):
    cfg = model_config_for(ds, arch)
    a, b = build_model(cfg, seed=5), build_model(cfg, seed=5)
    blob = save_model(a)
    assert blob == save_model(b)
    # the same weights reached another way: a state dict in another key order, non-contiguous
    # tensors, float64 copies of float32 values, a config spelled without defaults
    state = {k: v.double().t().contiguous().t() if v.ndim == 2 else v.double() for k, v in reversed(a.state_dict().items())}
    assert encode(state, cfg) == blob
    assert len(blob) % 4 == 0 and (8 + struct.unpack("<Q", blob[:8])[0]) % 8 == 0
    # a standard safetensors reader opens it, with the architecture in the metadata
    tensors = st_load(blob)
    assert set(tensors) == set(a.state_dict())
    assert json.loads(_header(blob)["__metadata__"]["pot.arch"])["arch"] == arch
    # round trip
    m = load_model(blob)
    assert save_model(m) == blob and m.pot_config == a.pot_config
    assert mid(blob) == __import__("hashlib").sha256(blob).digest() and len(mid(blob)) == 32


def test_same_bytes_in_fresh_processes():
    code = (
        "import hashlib,sys; from pot.ml import build_model, save_model, model_config_for;"
        "sys.stdout.write(hashlib.sha256(save_model(build_model(model_config_for('digits-seq','lstm'), seed=11))).hexdigest())"
    )
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    here = mid(save_model(build_model(model_config_for("digits-seq", "lstm"), seed=11))).hex()
    assert outs == {here}


def test_changed_weight_changes_mid():
    m = build_model(CNN, seed=0)
    blob = save_model(m)
    with torch.no_grad():
        m.head[-1].bias[0] = torch.nextafter(m.head[-1].bias[0], torch.tensor(1.0))
    assert mid(save_model(m)) != mid(blob)


def test_pickle_and_torch_save_are_refused():
    m = build_model(CNN)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(buf.getvalue())
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(pickle.dumps(m.state_dict()))
    with pytest.raises(ModelFileError):
        load_model(pickle.dumps({"a": 1}, protocol=0))


def test_truncated_file_is_refused():
    blob = save_model(build_model(CNN))
    for cut in (0, 4, 8, 20, len(blob) // 2, len(blob) - 4, len(blob) - 1):
        with pytest.raises(ModelFileError):
            load_model(blob[:cut])


def test_header_claiming_gigabytes_is_refused_before_reading():
    blob = save_model(build_model(CNN))
    with pytest.raises(ModelFileError, match="header claims 8,589,934,592 bytes"):
        load_model(struct.pack("<Q", 8 << 30) + blob[8:])
    # a tensor that claims gigabytes in a small file: checked against the bytes present
    h = _header(blob)
    n = struct.unpack("<Q", blob[:8])[0]
    name = sorted(k for k in h if k != "__metadata__")[0]
    h[name]["shape"] = [100000, 100000]
    h[name]["data_offsets"] = [0, 40_000_000_000]
    with pytest.raises(ModelFileError, match="declares 40,000,000,000 bytes"):
        load_model(_rewrite(h, blob[8 + n :]))


def test_file_over_limit_is_refused_before_reading(tmp_path):
    blob = save_model(build_model(CNN))
    p = tmp_path / "m.safetensors"
    p.write_bytes(blob)
    assert read_model_file(p) == blob
    with pytest.raises(ModelFileError, match="limit"):
        read_model_file(p, max_bytes=1000)
    with pytest.raises(ModelFileError, match="limit"):
        load_model(blob, max_bytes=1000)


def test_architecture_not_in_registry_is_refused():
    blob = save_model(build_model(CNN))
    h = _header(blob)
    n = struct.unpack("<Q", blob[:8])[0]
    cfg = json.loads(h["__metadata__"]["pot.arch"])
    h["__metadata__"]["pot.arch"] = json.dumps({**cfg, "arch": "resnet-evil"})
    with pytest.raises(ModelFileError, match="unknown architecture 'resnet-evil'"):
        load_model(_rewrite(h, blob[8 + n :]))
    # an architecture whose parameters would need gigabytes: refused on the meta device
    h["__metadata__"]["pot.arch"] = json.dumps({"arch": "mlp", "in_shape": [65536], "num_classes": 2, "hidden": [65536]})
    with pytest.raises(ModelFileError, match="limit"):
        load_model(_rewrite(h, blob[8 + n :]))


def test_shape_mismatch_and_foreign_safetensors_are_refused():
    small = build_model({**CNN, "hidden": 32})
    # a canonical file whose weights are of another width than its config says
    state = small.state_dict()
    with pytest.raises(ModelFileError, match="expected"):
        encode(state, CNN)
    blob = save_model(small)
    h = _header(blob)
    n = struct.unpack("<Q", blob[:8])[0]
    h["__metadata__"]["pot.arch"] = json.dumps(CNN)
    with pytest.raises(ModelFileError, match="do not match architecture"):
        load_model(_rewrite(h, blob[8 + n :]))
    # the safetensors library's own layout, right weights and metadata: valid safetensors, not canonical
    meta = _header(save_model(small))["__metadata__"]
    foreign = st_save({k: v.contiguous() for k, v in state.items()}, metadata=meta)
    with pytest.raises(ModelFileError):
        load_model(foreign)
    # float64 tensors are refused
    f64 = st_save({k: v.double() for k, v in state.items()}, metadata=meta)
    with pytest.raises(ModelFileError, match="F64"):
        load_model(f64)


def test_noncanonical_variants_are_refused():
    blob = save_model(build_model(CNN))
    n = struct.unpack("<Q", blob[:8])[0]
    with pytest.raises(ModelFileError, match="canonical"):
        load_model(blob + b"\x00" * 8)  # trailing bytes
    h = _header(blob)
    spaced = json.dumps(h, sort_keys=True, indent=1).encode()
    spaced += b" " * (-len(spaced) % 8)
    with pytest.raises(ModelFileError, match="canonical"):
        load_model(struct.pack("<Q", len(spaced)) + spaced + blob[8 + n :])
    for bad in (b"not json", json.dumps([1, 2]).encode()):
        with pytest.raises(ModelFileError):
            load_model(struct.pack("<Q", len(bad)) + bad)


def test_decode_does_not_copy_weights():
    blob = save_model(build_model(CNN))
    arrays, cfg = decode(blob)
    assert all(not a.flags.writeable for a in arrays.values())
    assert cfg == build_model(CNN).pot_config
    assert np.array_equal(arrays["head.3.bias"], build_model(CNN).state_dict()["head.3.bias"].numpy())


def test_header_length_that_looks_like_a_pickle_opcode_still_loads():
    # its header is 640 = 0x0280 bytes long, so the file starts with the bytes of pickle protocol 2
    cfg = {"arch": "lstm", "in_shape": [34, 12], "num_classes": 123, "hidden": 1234, "layers": 1}
    blob = save_model(build_model(cfg, seed=None))
    assert blob[:2] == b"\x80\x02"
    assert save_model(load_model(blob)) == blob
