"""kill -9 of a real process while it writes the ledger: reopened, the ledger holds every batch
the process had reported committed (and at most the one it was writing), never part of a batch,
and its digest is the digest of that prefix of the history."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger_world import CONFIG, T0, VALIDATORS, happy_ops, staked_ledger

from pot.ledger import Ledger
from pot.protocol import VALIDATOR, StakeChanged

HERE = Path(__file__).parent
ORDERS = 20


def batches():
    """Many orders' honest cycles side by side, in batches of up to 16 ops at one ledger time."""
    # validators lock 100 per validation: give them stake for all of them
    ops = [(T0 - 1, StakeChanged(v.addr, VALIDATOR, 10**9)) for v in VALIDATORS]
    for oid in range(1, ORDERS + 1):
        ops += happy_ops(oid)
    ops.sort(key=lambda x: x[0])
    out: list[tuple[int, list]] = []
    for t, op in ops:
        if not out or out[-1][0] != t or len(out[-1][1]) == 16:
            out.append((t, []))
        out[-1][1].append(op)
    return out


CHILD = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from test_crash_kill import batches
from pot.ledger import Ledger
from pot.protocol import VALIDATOR, StakeChanged
from ledger_world import CONFIG
led = Ledger(CONFIG, sys.argv[1])
print("ready", flush=True)
for k, (t, ops) in enumerate(batches(), start=1):
    res = led.apply_many(ops, t)
    assert all(r.ok for r in res), [r.text for r in res if not r.ok]
    print(k, flush=True)          # batch k is durable: apply_many returned
print("done", flush=True)
"""


def test_kill_9_mid_write_loses_nothing_committed(tmp_path):
    ref = staked_ledger()
    digests = [ref.digest()]
    for t, ops in batches():
        assert all(r.ok for r in ref.apply_many(ops, t))
        digests.append(ref.digest())
    base = tmp_path / "base.db"
    staked_ledger(str(base)).close()
    rng = random.Random(11)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    mid_run = 0
    for attempt in range(5):
        path = tmp_path / f"kill{attempt}.db"
        path.write_bytes(base.read_bytes())
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True,
                                 env=env)
        assert child.stdout.readline().strip() == "ready"
        # kill once the child reported some batch, wherever it is then (whatever the machine's speed)
        stop_after = rng.randrange(1, len(digests) - 3)
        while child.stdout.readline().strip() != str(stop_after):
            pass
        time.sleep(rng.uniform(0, 0.02))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        reported = [int(x) for x in out.split() if x.isdigit()]
        committed = max([stop_after, *reported])   # lines written before the kill (a pipe keeps them)
        if "done" in out:
            continue
        mid_run += 1
        reopened = Ledger(CONFIG, str(path))
        d = reopened.digest()
        assert d == reopened.full_digest()
        # every reported batch is there; the one being written is all there or not at all
        assert d in (digests[committed], digests[min(committed + 1, len(digests) - 1)]), (attempt, committed)
        if attempt < 2:                   # and it carries on exactly like the reference
            for t, ops in batches()[digests.index(d):]:
                assert all(r.ok for r in reopened.apply_many(ops, t))
            assert reopened.digest() == digests[-1]
        reopened.close()
    assert mid_run >= 2, "the process finished before most kills: make the history longer"
