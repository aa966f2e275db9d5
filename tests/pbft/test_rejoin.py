"""A replica that was paused or restarted late re-joins the committee's view (issue 10, item 2),
with real replica processes under load: within two view-change timeouts of resuming, without
forcing a view change on the others, never alone in a higher view."""

from __future__ import annotations

import re
import signal
import time

import pytest

from committee_procs import Committee, Load

VIEW_TIMEOUT = 2.0


def _view_changes(com: Committee, i: int) -> list[str]:
    return re.findall(r"view \d+ -> \d+ view change: .*", com.log(i))


def _wait_joined(com: Committee, i: int, others: list[int], deadline: float) -> tuple[dict, float]:
    """Until replica i is back in the committee: in the others' view (not changing views),
    executing again, and within the log window of them (so it votes on the batches they are
    ordering now); returns its status and the seconds it took."""
    t0 = time.monotonic()
    start = com.status([i])[0]["last_exec"]
    while True:
        st = {s["id"]: s for s in com.status([i] + others)}
        me, view = st[i], {st[j]["view"] for j in others}
        top = max(st[j]["last_exec"] for j in others)
        if (len(view) == 1 and me["view"] in view and not me["in_view_change"]
                and (me["last_exec"] > start or me["last_exec"] >= top) and me["last_exec"] >= top - com.log_size):
            return me, time.monotonic() - t0
        if time.monotonic() - t0 > deadline:
            raise AssertionError(f"replica {i} did not re-join within {deadline:.0f}s: "
                                 + ", ".join(f"r{s['id']} view={s['view']}{'*' if s['in_view_change'] else ''} "
                                             f"last_exec={s['last_exec']}" for s in st.values()))
        time.sleep(0.05)


@pytest.mark.slow
def test_paused_backup_rejoins_without_a_view_change(tmp_path):
    """SIGSTOP a backup for four view-change timeouts while the others keep committing, then
    SIGCONT (twice, two backups). Before the fix its overdue view timer, firing while it read
    its backlog, often sent it alone into view 1, where it stayed."""
    com = Committee(tmp_path, view_timeout=VIEW_TIMEOUT)
    com.start_all()
    # Big requests: the backlog it finds on resuming is more than one read, so its overdue
    # timers may fire before it has read what the others did meanwhile (as on a busy devnet).
    load = Load(com.base, com.n, window=4, size=4000).start()
    try:
        load.wait_progress()
        for paused in (2, 3):
            others = [i for i in range(com.n) if i != paused]
            com.signal(paused, signal.SIGSTOP)
            before = len(load.done)
            time.sleep(4 * VIEW_TIMEOUT)
            assert len(load.done) > before, "the three others kept committing"
            com.signal(paused, signal.SIGCONT)
            me, took = _wait_joined(com, paused, others, 2 * VIEW_TIMEOUT)
            assert me["view"] == 0
            print(f"\nreplica {paused} back in view 0 and executing {took:.2f}s after SIGCONT")
            load.wait_progress()  # ... and the committee keeps committing with it
        load.pause()
        load.wait_drained(30)
        st = com.converge(10)
        assert st[0]["view"] == 0
        for i in range(com.n):
            assert not _view_changes(com, i), (i, _view_changes(com, i))
    finally:
        load.stop()
        com.stop_all()


@pytest.mark.slow
def test_replica_restarted_late_joins_the_view_the_others_moved_to(tmp_path):
    """Kill the primary; the others move to view 1 and commit a few batches; restart it after
    more than the clock skew (10 s). Before the fix it refused the pre-prepares its peers sent
    it again with their votes ('timestamp outside clock skew'), went to view 2 alone and
    stayed there (a quiet committee: the batches it missed are inside its log window)."""
    com = Committee(tmp_path, view_timeout=VIEW_TIMEOUT)
    com.start_all()
    load = Load(com.base, com.n, window=2).start()
    try:
        load.wait_progress()
        com.kill(0)
        load.wait_progress(10)  # committed again: in view 1
        load.pause()
        load.wait_drained(30)
        assert {s["view"] for s in com.status([1, 2, 3])} == {1}
        time.sleep(11)  # > clock_skew
        com.start(0)
        deadline = time.monotonic() + 60
        while com.log(0).count("listening on") < 2:  # up again (imports take a while)
            assert time.monotonic() < deadline
            time.sleep(0.02)
        me, took = _wait_joined(com, 0, [1, 2, 3], 2 * VIEW_TIMEOUT)
        assert me["view"] == 1
        load.resume()
        load.wait_progress(10)
        load.pause()
        load.wait_drained(30)
        st = com.converge(10)
        assert st[0]["view"] == 1, st
        assert "timestamp outside clock skew" not in com.log(0)
        for i in (1, 2, 3):
            assert len(_view_changes(com, i)) == 1, (i, _view_changes(com, i))  # 0 -> 1 only
        print(f"\nreplica 0 in view 1 and executing {took:.2f}s after it answered")
    finally:
        load.stop()
        com.stop_all()
