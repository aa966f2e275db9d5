"""The off-chain values a dApp produces for a PoT order, in Python with pot.sdk (docs/FORMATS.md):
the data sets and the task spec from your own files, their CIDs, the order's modelType and its
testCommitment. formats.mjs computes the same in JavaScript from the files this writes.

    python formats.py DATA OUT_DIR 0xCLIENT 0xSALT

DATA is your data (docs/DATA.md: an image folder, .npz/.safetensors arrays, .csv, text). Writes
OUT_DIR/train.npz, OUT_DIR/test.npz, OUT_DIR/spec.json and OUT_DIR/task.json (the spec's fields but
train_data_cid, the input of formats.mjs); prints specJson, specCid, trainCid, testCid, modelType,
commitment as one JSON object.
"""

import dataclasses
import json
import sys
from pathlib import Path

from pot.protocol.ids import model_type_to_bytes, test_commitment
from pot.sdk import build_task
from pot.storage import compute_cid


def main(data: str, out: str, client: str, salt: str) -> None:
    # read, split and check the data; write the spec (architecture and metric follow the data)
    task = build_task(data=data, arch="mlp", model={"hidden": [32]}, epochs=40, lr=0.01, test_fraction=0.3)
    train_cid = str(compute_cid(task.train_bytes))  # what `ipfs add --cid-version=1` gives the file
    test_cid = str(compute_cid(task.test_bytes))
    spec = dataclasses.replace(task.spec, train_data_cid=train_cid)
    # canonical: json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    spec_json = spec.to_json()

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.npz").write_bytes(task.train_bytes)
    (d / "test.npz").write_bytes(task.test_bytes)
    (d / "spec.json").write_bytes(spec_json)
    fields = {k: v for k, v in spec.to_dict().items() if k not in ("version", "train_data_cid")}
    (d / "task.json").write_text(json.dumps(fields))
    print(json.dumps({
        "specJson": spec_json.decode(),
        "specCid": str(compute_cid(spec_json)),
        "trainCid": train_cid,
        "testCid": test_cid,
        "modelType": "0x" + model_type_to_bytes(task.spec.metric).hex(),
        "commitment": "0x" + test_commitment(client, test_cid, bytes.fromhex(salt.removeprefix("0x"))).hex(),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:5])
