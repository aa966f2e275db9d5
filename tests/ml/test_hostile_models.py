"""Hostile model files and specs (issue 10, items 8-10): every one is refused with a ModelFileError
or SpecError that says why, decided from the header alone; none crashes the process or escapes as
another exception type."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap

import pytest

from pot.ml import ModelFileError, SpecError, TaskSpec, build_model, decode, model_config_for, save_model
from pot.ml.modelfile import file_size_for, read_header
from pot.ml.spec import SpecMismatch

CNN = model_config_for("digits", "cnn")


def with_header(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


def split(blob: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def patched(blob: bytes, arch_text: str | None = None, **entries) -> bytes:
    """The same weights under a header edited as given (``pot.arch`` replaced by raw text)."""
    header, body = split(blob)
    if arch_text is not None:
        header["__metadata__"]["pot.arch"] = arch_text
    header.update(entries)
    return with_header(json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), body)


def test_deep_headers_are_refused_in_a_process_that_raised_the_recursion_limit(tmp_path):
    # Importing the roles pulls in py_ecc, which raises the recursion limit to 100,000: json.loads
    # of 200,000 nested "[" then overflowed the C stack (SIGSEGV, rc 139) before any Python guard.
    blob = save_model(build_model(CNN, seed=0))
    files = {
        "deep-header": with_header(b"[" * 200_000),
        "deep-object": with_header(b'{"a":' * 100_000),
        "deep-arch": patched(blob, arch_text="[" * 200_000),
        "deep-spec": b"[" * 60_000,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import pot.roles.validator  # noqa: F401  (py_ecc)
        assert sys.getrecursionlimit() >= 100_000, sys.getrecursionlimit()
        from pot.ml import ModelFileError, SpecError, TaskSpec, decode
        for name in {sorted(files)!r}:
            data = (Path({str(tmp_path)!r}) / name).read_bytes()
            try:
                TaskSpec.from_json(data) if name == "deep-spec" else decode(data)
            except (ModelFileError, SpecError) as exc:
                print(name, "refused:", exc)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"rc={res.returncode}\n{res.stderr[-2000:]}"
    lines = res.stdout.splitlines()
    assert len(lines) == 4 and all("nested deeper than" in line for line in lines), res.stdout


@pytest.mark.parametrize("arch_text,match", [
    # a 5,000-digit integer: json.loads raised ValueError (Python's int-to-str guard)
    (json.dumps({**CNN, "hidden": 0}).replace('"hidden": 0', '"hidden": ' + "9" * 5000), "number longer"),
    # the architecture's name as a list: check_config raised TypeError (unhashable)
    (json.dumps({**CNN, "arch": ["cnn"]}), "arch as a string"),
    (json.dumps({**CNN, "hidden": 64.0}), "non-integer"),
    (json.dumps({**CNN, "hidden": float("nan")}), "non-integer"),
    ('{"arch":"cnn","arch":"mlp"}', "repeats a key"),
    ("not json", "not JSON"),
])
def test_hostile_arch_metadata_is_a_model_file_error(arch_text, match):
    blob = patched(save_model(build_model(CNN, seed=0)), arch_text=arch_text)
    with pytest.raises(ModelFileError, match=match):
        decode(blob)


def test_hostile_tensor_entries_are_model_file_errors():
    blob = save_model(build_model(CNN, seed=0))
    header, body = split(blob)
    name = sorted(k for k in header if k != "__metadata__")[0]
    for entry, match in [
        ({**header[name], "shape": ["8"]}, "bad shape"),
        ({**header[name], "shape": [1] * 9}, "bad shape"),
        ({**header[name], "dtype": ["F32"]}, "only F32"),
        ([1, 2], "malformed entry"),
    ]:
        with pytest.raises(ModelFileError, match=match):
            decode(patched(blob, **{name: entry}))
    (n,) = struct.unpack("<Q", blob[:8])
    text = blob[8 : 8 + n].replace(b'"data_offsets":[0,', b'"data_offsets":[' + b"9" * 5000 + b",", 1)
    with pytest.raises(ModelFileError, match="number longer"):
        decode(with_header(text, body))
    with pytest.raises(ModelFileError, match="metadata values"):
        decode(patched(blob, __metadata__={"format": "pt", "pot.arch": {"arch": "cnn"}, "pot.version": "1"}))


def test_header_alone_gives_architecture_and_size():
    model = build_model(CNN, seed=3)
    blob = save_model(model)
    hdr = read_header(blob)
    assert hdr.config == model.pot_config and hdr.arch == "cnn"
    assert hdr.num_params == sum(p.numel() for p in model.parameters())
    # the header is enough: the weights need not be there to know what the file is
    prefix = blob[: 8 + hdr.header_len]
    assert read_header(prefix, file_size=len(blob)) == hdr
    assert file_size_for(CNN) == len(blob)


def test_spec_fixes_the_architecture():
    spec = TaskSpec(model=CNN, train_data_cid="bafkrei-data")
    assert spec.max_model_bytes == len(save_model(build_model(CNN, seed=0)))
    spec.check_model(read_header(save_model(build_model(CNN, seed=9))))
    mlp = read_header(save_model(build_model({"arch": "mlp", "in_shape": [1, 8, 8], "num_classes": 10,
                                              "hidden": [8]}, seed=0)))
    with pytest.raises(SpecMismatch, match="model is a 'mlp'; the order's spec asks for a 'cnn'"):
        spec.check_model(mlp)
    wider = read_header(save_model(build_model({**CNN, "hidden": 128}, seed=0)))
    with pytest.raises(SpecMismatch, match="hidden is 128, the spec says 64"):
        spec.check_model(wider)


@pytest.mark.parametrize("model,match", [
    ({"arch": ["cnn"], "in_shape": [1, 8, 8], "num_classes": 10}, "arch as a string"),
    ({"arch": "cnn", "in_shape": [1, 8, 8], "num_classes": int("9" * 30)}, "num_classes"),
    ([1, 2], "JSON object"),
])
def test_hostile_specs_are_spec_errors(model, match):
    d = json.loads(TaskSpec(model=CNN, train_data_cid="c").to_json())
    d["model"] = model
    with pytest.raises(SpecError, match=match):
        TaskSpec.from_json(json.dumps(d))
    text = json.dumps({**d, "model": CNN}).replace('"num_classes": 10', '"num_classes": ' + "1" * 5000)
    with pytest.raises(SpecError, match="number longer"):
        TaskSpec.from_json(text)


def _pot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pot.cli", *args], capture_output=True, text=True, timeout=120)


def test_pot_model_inspect(tmp_path):
    model = build_model(CNN, seed=4)
    good = tmp_path / "good.safetensors"
    good.write_bytes(save_model(model))
    spec = tmp_path / "spec.json"
    spec.write_bytes(TaskSpec(model=CNN, train_data_cid="c").to_json())
    other = tmp_path / "other.json"
    other.write_bytes(TaskSpec(model=model_config_for("digits", "mlp"), train_data_cid="c").to_json())

    res = _pot("model", "inspect", str(good), "--spec", str(spec), "--json")
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert found["arch"] == "cnn" and found["config"] == model.pot_config
    assert found["parameters"] == sum(p.numel() for p in model.parameters())
    assert found["mid"] == "0x" + __import__("hashlib").sha256(good.read_bytes()).hexdigest()
    assert found["spec"]["matches"] is True
    res = _pot("model", "inspect", str(good))
    assert res.returncode == 0 and "parameters  13,706 in 8 tensors" in res.stdout, res.stdout

    deep = tmp_path / "deep.safetensors"
    deep.write_bytes(with_header(b"[" * 200_000))
    deep_spec = tmp_path / "deep.json"
    deep_spec.write_bytes(b"[" * 60_000)
    for args, says in [((str(deep),), "header is nested deeper than 3 levels"),
                       ((str(good), "--spec", str(other)), "model is a 'cnn'; the order's spec asks for a 'mlp'"),
                       ((str(good), "--spec", str(deep_spec)), "task spec is nested deeper")]:
        res = _pot("model", "inspect", *args)
        assert res.returncode == 1 and res.stdout == "", res
        [line] = res.stderr.strip().splitlines()  # one clear line, no traceback
        assert says in line, line
