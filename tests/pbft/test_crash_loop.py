"""Power loss of the whole committee (issue 10, item 0): four real replica processes under
continuous load, kill -9 of all of them at once, or of three at once and the primary 50 ms
later, at many different moments, in a loop. After each restart:

- no two replicas executed different batches at one sequence number (over every run);
- every request some replica answered is executed at every replica;
- the committee keeps committing (the client's requests get f+1 replies again).

CI runs ``POT_PBFT_CRASH_LOOPS`` iterations (default 10, ~60 s); run by hand with 50:
``POT_PBFT_CRASH_LOOPS=50 .venv/bin/python -m pytest tests/pbft/test_crash_loop.py -s``.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from committee_procs import Committee, Load, diverging_seqs

LOOPS = int(os.environ.get("POT_PBFT_CRASH_LOOPS", "10"))


@pytest.mark.slow
def test_whole_committee_kill_9_loop(tmp_path):
    rng = random.Random(int(os.environ.get("POT_PBFT_CRASH_SEED", "0")) or None)
    com = Committee(tmp_path)
    com.start_all()
    load = Load(com.base, com.n).start()
    kills = compared = 0
    t0 = time.monotonic()
    try:
        load.wait_progress()  # the committee is up and committing
        view = 0
        for it in range(LOOPS):
            time.sleep(rng.uniform(0.05, 1.2))  # a different moment of the traffic each time
            pattern = "all" if it % 2 == 0 else "three-then-primary"
            primary = view % com.n
            if pattern == "all":
                for i in range(com.n):
                    com.signal(i, signal.SIGKILL)
            else:
                for i in range(com.n):
                    if i != primary:
                        com.signal(i, signal.SIGKILL)
                time.sleep(0.05)
                com.signal(primary, signal.SIGKILL)
            for i in range(com.n):
                com.kill(i)
            kills += com.n
            time.sleep(rng.uniform(0.0, 0.3))
            t_kill = time.monotonic()
            com.start_all()
            # the committee commits again: everything in flight and new requests get f+1 replies
            time.sleep(rng.uniform(0.5, 1.5))
            load.pause()
            try:
                load.wait_drained(60)
                t_drained = time.monotonic()
                st = com.converge(30)
            finally:
                load.resume()
            print(f"iteration {it:2d} {pattern:18s} drained {t_drained - t_kill:5.1f}s after the restart, "
                  f"converged at seq {st[0]['last_exec']} view {st[0]['view']} "
                  f"(+{time.monotonic() - t_drained:.1f}s)", flush=True)
            view = st[0]["view"]
            traces = com.traces()
            bad = diverging_seqs(traces)
            assert not bad, f"iteration {it} ({pattern}): replicas executed different batches at seqs {bad[:10]}"
            compared += sum(len(h) for h in traces.values())
            acked = set(load.acked)
            for s in st:
                missing = acked - s["ids"]
                assert not missing, (f"iteration {it} ({pattern}): replica {s['id']} lost {len(missing)} of "
                                     f"{len(acked)} answered requests (first answers, replica and seq: "
                                     f"{sorted(load.acked[r] for r in missing)[:8]}; status "
                                     f"{[{k: v for k, v in x.items() if k != 'ids'} for x in st]})")
        print(f"\n{LOOPS} iterations, {kills} kill -9, {len(load.acked)} requests answered, "
              f"{compared} (replica, seq) digests compared, last seq {st[0]['last_exec']}, "
              f"view {view}, {time.monotonic() - t0:.0f}s")
    finally:
        load.stop()
        com.stop_all()
