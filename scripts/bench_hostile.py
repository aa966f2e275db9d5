"""Costs of hostile inputs and of the first score (issue 10, items 7-11): prints a table, writes JSON.

    .venv/bin/python scripts/bench_hostile.py --json docs/bench/hostile.json

Each case runs in a fresh process, so imports and memory are counted from a cold start:

- first-score: a validator's Scorer is created (the worker starts), then its first model is scored,
  at once and after 10 s (a validation window opens later than the worker starts). Also the
  longest stall of the worker's event loop meanwhile.
- lstm-64m: an LSTM of 64.2M parameters revealed for a small CNN order: time until the Scorer's
  answer, and how much the peak memory (VmHWM) of the worker and of its scoring process grew.
- big-file: a 700 MiB file revealed as a model: the same.
- diamond-car: a 90 KB CAR whose DAG links one node 1,000 times, twice over: import, then a read.
- endless-500: an IPFS node answering 500 with an endless body, read with a 1 MiB size limit:
  bytes the node got out before the reader quit, and time.

Runs against whichever ``pot`` is importable, so the same script measures an older checkout
(``PYTHONPATH=old/offchain``) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# --------------------------------------------------------------------------- cases (child side)

SETUP = """
import asyncio, hashlib, inspect, json, os, resource, sys, tempfile, time
from pot.storage import EmbeddedStore
from pot.roles.scoring import Scorer

def peak_mb():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / 1024, 1)

NEW = "spec_cid" in inspect.signature(Scorer.score).parameters

async def score_one(scorer, data, test_cid, spec_cid, store):
    cid = store.add_bytes(data)
    mid = hashlib.sha256(data).digest()
    args = (mid, cid, test_cid, "classification-accuracy-v1") + ((spec_cid,) if NEW else ())
    try:
        return repr(await scorer.score(*args))[:160]
    except Exception as exc:
        return f"raised {type(exc).__name__}: {str(exc)[:120]}"
"""

FILES = """
def prepare(dirname, *extra):
    # the test set, the spec and the honest model, made in a separate process (the parent
    # measured must not have imported PyTorch for them)
    import subprocess
    code = '''
import sys
from pot.ml import TaskSpec, build_model, make_dataset, model_config_for, save_model
d = sys.argv[1]
_, test = make_dataset("digits", seed=0)
cfg = model_config_for("digits", "cnn")
open(d + "/test.npz", "wb").write(test)
open(d + "/spec.json", "wb").write(TaskSpec(model=cfg, train_data_cid="x").to_json())
open(d + "/honest.safetensors", "wb").write(save_model(build_model(cfg, seed=1)))
if len(sys.argv) > 2:
    lstm = {"arch": "lstm", "in_shape": [8, 8], "num_classes": 10, "hidden": 1790, "layers": 3}
    open(d + "/lstm.safetensors", "wb").write(save_model(build_model(lstm, seed=None)))
'''
    subprocess.run([sys.executable, "-c", code, dirname, *extra], check=True)
"""


def case_first_score(wait: float) -> str:
    return SETUP + FILES + textwrap.dedent(f"""
        d = tempfile.mkdtemp()
        prepare(d)
        store = EmbeddedStore(d + "/store")
        test_cid = store.add_bytes(open(d + "/test.npz", "rb").read())
        spec_cid = store.add_bytes(open(d + "/spec.json", "rb").read())
        model = open(d + "/honest.safetensors", "rb").read()

        async def main():
            lag, stop = [0.0], asyncio.Event()
            async def ticker():
                while not stop.is_set():
                    t = time.monotonic()
                    await asyncio.sleep(0.01)
                    lag[0] = max(lag[0], time.monotonic() - t - 0.01)
            tick = asyncio.create_task(ticker())
            scorer = Scorer(store)        # the worker starts
            await asyncio.sleep({wait})   # ... and the validation window opens
            t = time.monotonic()
            out = await score_one(scorer, model, test_cid, spec_cid, store)
            first = time.monotonic() - t
            stop.set()
            await tick
            if hasattr(scorer, "close"):
                scorer.close()
            print(json.dumps({{"seconds": round(first, 3), "loop_stall_s": round(lag[0], 3), "outcome": out,
                               "torch_in_worker": "torch" in sys.modules}}))
        asyncio.run(main())
    """)


PREP_BIG = """
import hashlib, json, os, sys
from pot.ml import TaskSpec, build_model, make_dataset, model_config_for, save_model
from pot.storage import EmbeddedStore
store = EmbeddedStore(sys.argv[1])
_, test = make_dataset("digits", seed=0)
cfg = model_config_for("digits", "cnn")
if sys.argv[2] == "lstm":
    lstm = {"arch": "lstm", "in_shape": [8, 8], "num_classes": 10, "hidden": 1790, "layers": 3}
    data = save_model(build_model(lstm, seed=None))
else:
    data = os.urandom(700 * 1024 * 1024)
print(json.dumps({"test": store.add_bytes(test),
                  "spec": store.add_bytes(TaskSpec(model=cfg, train_data_cid="x").to_json()),
                  "model": store.add_bytes(data), "mid": hashlib.sha256(data).hexdigest(),
                  "bytes": len(data)}))
"""


def case_big(kind: str) -> str:
    return SETUP + textwrap.dedent(f"""
        import subprocess
        # another process fills the store: this one's memory is the scoring path's alone
        d = tempfile.mkdtemp()
        ids = json.loads(subprocess.run([sys.executable, "-c", {PREP_BIG!r}, d, {kind!r}], check=True,
                                        capture_output=True, text=True).stdout)
        store = EmbeddedStore(d)

        def hwm_mb(pid="self"):
            with open(f"/proc/{{pid}}/status") as f:
                return round(next(int(x.split()[1]) for x in f if x.startswith("VmHWM:")) / 1024, 1)

        async def main():
            scorer = Scorer(store)
            child = getattr(getattr(scorer, "process", None), "pid", None)
            if child is not None:
                await asyncio.to_thread(scorer.process.hello)  # started with the worker, not measured
            before = {{"worker": hwm_mb(), "scorer": hwm_mb(child) if child else 0.0}}
            t = time.monotonic()
            args = (bytes.fromhex(ids["mid"]), ids["model"], ids["test"], "classification-accuracy-v1")
            args += (ids["spec"],) if NEW else ()
            try:
                out = repr(await scorer.score(*args))[:160]
            except Exception as exc:
                out = f"raised {{type(exc).__name__}}: {{str(exc)[:120]}}"
            took = time.monotonic() - t
            alive = child is not None and os.path.exists(f"/proc/{{child}}")
            after = {{"worker": hwm_mb(), "scorer": hwm_mb(child) if alive else before["scorer"]}}
            if hasattr(scorer, "close"):
                scorer.close()
            grew = sum(after[k] - before[k] for k in after)
            print(json.dumps({{"file_mb": round(ids["bytes"] / 2**20, 1), "seconds": round(took, 2),
                               "peak_growth_mb": round(grew, 1), "before_mb": before, "after_mb": after,
                               "outcome": out}}))
        asyncio.run(main())
    """)


CASE_DIAMOND = """
import io, json, tempfile, time
from pot.storage import CID, EmbeddedStore
from pot.storage.car import write_car
from pot.storage.cid import DAG_PB, RAW
from pot.storage.unixfs import T_FILE, Link, encode_pbnode, encode_unixfs
k = 1000
leaf = b"x"
leaf_cid = CID.hash(leaf, RAW, 1)
a = encode_pbnode([Link(leaf_cid, 1)] * k, encode_unixfs(T_FILE, None, k, [1] * k))
a_cid = CID.hash(a, DAG_PB, 1)
root = encode_pbnode([Link(a_cid, len(a) + k)] * k, encode_unixfs(T_FILE, None, k * k, [k] * k))
root_cid = CID.hash(root, DAG_PB, 1)
buf = io.BytesIO()
write_car(buf, [root_cid], [(root_cid, root), (a_cid, a), (leaf_cid, leaf)])
store = EmbeddedStore(tempfile.mkdtemp())
t = time.monotonic()
store.import_car(io.BytesIO(buf.getvalue()))
imp = time.monotonic() - t
t = time.monotonic()
try:
    out = f"read {len(store.get(str(root_cid)))} bytes"
except Exception as exc:
    out = f"{type(exc).__name__}: {str(exc)[:100]}"
print(json.dumps({"car_bytes": len(buf.getvalue()), "import_s": round(imp, 2),
                  "read_s": round(time.monotonic() - t, 2), "read": out}))
"""

CASE_ENDLESS = """
import json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pot.storage import KuboStore, compute_cid

CAP = 2 * 1024**3
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.send_response(500)
        self.end_headers()
        chunk = b"error " * 50_000
        try:
            while self.server.sent < CAP:
                self.wfile.write(chunk)
                self.server.sent += len(chunk)
        except OSError:
            pass
        self.close_connection = True
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.sent = 0
threading.Thread(target=srv.serve_forever, daemon=True).start()
t = time.monotonic()
try:
    KuboStore(f"http://127.0.0.1:{srv.server_address[1]}", max_size=1024 * 1024).get(compute_cid(b"x"))
    out = "no error"
except Exception as exc:
    out = f"{type(exc).__name__}: {str(exc)[:80]}"
took = time.monotonic() - t
time.sleep(0.3)
print(json.dumps({"server_sent_mb": round(srv.sent / 2**20, 1), "seconds": round(took, 2), "outcome": out}))
"""


def run_case(code: str, timeout: float) -> dict:
    t = time.monotonic()
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f}s"}
    if res.returncode != 0:
        return {"error": f"rc={res.returncode}: {res.stderr.strip().splitlines()[-1:] if res.stderr else ''}",
                "wall_s": round(time.monotonic() - t, 1)}
    return json.loads(res.stdout.strip().splitlines()[-1])


CASES = {
    "first-score-at-start": (lambda: case_first_score(0.0), 600),
    "first-score-after-10s": (lambda: case_first_score(10.0), 600),
    "lstm-64m": (lambda: case_big("lstm"), 900),
    "big-file-700m": (lambda: case_big("file"), 900),
    "diamond-car": (lambda: CASE_DIAMOND, 900),
    "endless-500": (lambda: CASE_ENDLESS, 900),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these cases")
    ap.add_argument("--label", default="", help="a name for this run (e.g. before/after) in the JSON")
    args = ap.parse_args()
    results = {}
    for name, (make, timeout) in CASES.items():
        if args.only and name not in args.only:
            continue
        results[name] = run_case(make(), timeout)
        print(f"{name:24s} {json.dumps(results[name])}", flush=True)
    doc = {"label": args.label, "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
           "results": results}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
