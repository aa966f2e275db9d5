"""Crash at any write, reopen: nothing half-applied, nothing committed lost. Reopened ledgers and
snapshots give equal digests."""

import os

import pytest
from ledger_world import CONFIG, CREVEAL_END, happy_ops, staked_ledger

from pot.ledger import Ledger
from pot.protocol import SettlementExecuted, Tick, encode


def batches():
    ops = happy_ops(1) + happy_ops(2)
    ops.sort(key=lambda x: x[0])
    out, cur, t = [], [], None
    for time, op in ops:
        if t is not None and time != t:
            out.append((t, cur))
            cur = []
        cur.append(op)
        t = time
    out.append((t, cur))
    out.append((CREVEAL_END, [Tick()]))
    # the settlement executes: both orders move to the archive
    out.append((CREVEAL_END + 1, [SettlementExecuted(1, (1, 2), b"\x0e" * 32)]))
    return out


def reference_digests():
    led = staked_ledger()
    digests = [led.digest()]
    for t, ops in batches():
        led.apply_many(ops, t)
        digests.append(led.digest())
    return digests


class Crash(Exception):
    pass


def run_child(path, crash_at):
    """Fork; the child applies every batch and dies (os._exit) at its crash_at-th write."""
    pid = os.fork()
    if pid == 0:
        calls = {"n": 0, "batch": 0}

        def hook(point):
            calls["n"] += 1
            if calls["n"] == crash_at:
                os.write(w, f"{calls['batch']}:{point}".encode())
                os._exit(9)
        try:
            led = Ledger(CONFIG, path, write_hook=hook)
            for calls["batch"], (t, ops) in enumerate(batches(), start=1):
                led.apply_many(ops, t)
            os.write(w, b"done")
        finally:
            os._exit(0)
    return pid


def test_crash_between_any_two_writes(tmp_path):
    global w
    ref = reference_digests()
    base = staked_ledger(str(tmp_path / "base.db"))
    base.close()
    seen_points = set()
    crash_at = 1
    while True:
        path = tmp_path / f"c{crash_at}.db"
        path.write_bytes((tmp_path / "base.db").read_bytes())
        r, w = os.pipe()
        pid = run_child(str(path), crash_at)
        os.close(w)
        msg = os.read(r, 100).decode()
        os.close(r)
        os.waitpid(pid, 0)
        if msg == "done":
            break
        batch, point = msg.split(":")
        seen_points.add(point)
        reopened = Ledger(CONFIG, str(path))
        done = int(batch) if point == "committed" else int(batch) - 1
        assert reopened.digest() == ref[done], (crash_at, msg)
        # and it carries on exactly like the reference
        for t, ops in batches()[done:]:
            reopened.apply_many(ops, t)
        assert reopened.digest() == ref[-1]
        reopened.close()
        crash_at += 1
    assert seen_points == {"delete", "write", "archive", "commit", "committed"}
    assert crash_at > 40


def test_reopen_loads_what_each_batch_wrote(tmp_path):
    path = str(tmp_path / "l.db")
    led = staked_ledger(path)
    for t, ops in batches():
        led.apply_many(ops, t)
        assert Ledger(CONFIG, path).digest() == led.digest()   # durable at every batch, not at close
    d = led.digest()
    led.close()
    again = Ledger(CONFIG, path)
    assert again.digest() == d == again.full_digest()
    assert again.open_order_ids() == [] and again.order_cycle_data(1)["status"] == "settled"


def test_foreign_database_and_snapshot_refused(tmp_path):
    from dataclasses import replace
    path = str(tmp_path / "l.db")
    staked_ledger(path).close()
    other = replace(CONFIG, chain_id=1)
    with pytest.raises(ValueError, match="another configuration"):
        Ledger(other, path)
    with pytest.raises(ValueError, match="another ledger configuration"):
        Ledger(other).restore_snapshot(staked_ledger().snapshot())
    with pytest.raises(ValueError, match="not a ledger snapshot"):
        Ledger(CONFIG).restore_snapshot(b"\x80garbage")


def test_snapshot_restored_elsewhere_persists(tmp_path):
    led = staked_ledger()
    for t, ops in batches()[:-1]:   # the settlement still pending
        led.apply_many(ops, t)
    path = str(tmp_path / "r.db")
    restored = Ledger.restore(led.snapshot(), CONFIG, path)
    assert restored.digest() == led.digest()
    assert restored.pending_settlements()[0]["settlement"] == led.pending_settlements()[0]["settlement"]
    assert restored.order_cycle_data(1) == led.order_cycle_data(1)
    assert Ledger(CONFIG, path).digest() == led.digest()
    # both carry on alike: the orders leave for the archive on both
    t, ops = batches()[-1]
    assert led.apply_many(ops, t) == restored.apply_many(ops, t)
    assert restored.digest() == led.digest() == restored.full_digest()
    assert Ledger(CONFIG, path).order_cycle_data(2) == led.order_cycle_data(2)


def test_snapshot_after_archiving_carries_the_archive_digest_not_its_rows(tmp_path):
    led = staked_ledger()
    for t, ops in batches():
        led.apply_many(ops, t)
    restored = Ledger.restore(led.snapshot(), CONFIG, str(tmp_path / "r.db"))
    assert restored.digest() == led.digest()
    # archived ids still decide: the same order placed again is a duplicate on both
    again = happy_ops(1)[0]
    assert led.apply(again[1], CREVEAL_END + 2) == restored.apply(again[1], CREVEAL_END + 2)
    assert not led.apply(again[1], CREVEAL_END + 2).ok
    assert restored.digest() == led.digest()
    assert led.order_state(1) is not None and restored.order_state(1) is None   # no archive rows there
    assert encode(Tick())
