"""The checkpoint digest is kept up to date row by row; it must always equal the digest
recomputed from scratch, and a snapshot restored elsewhere (or the ledger file reopened) must give
the same digest and the same answers, archived orders and settlements included."""

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_world import CONFIG, CREVEAL_END, T0, staked_ledger
from test_properties import POOL

from pot.ledger import Ledger
from pot.ledger.records import parse_row
from pot.protocol import SettlementExecuted, Tick

steps = st.lists(st.tuples(st.integers(0, len(POOL) - 1), st.integers(0, 40)), min_size=5, max_size=80)


def answers(led: Ledger) -> dict:
    return {"open": led.open_order_ids(),
            "cycles": {o: led.order_cycle_data(o) for o in led.order_ids()},
            "pending": [(p["nonce"], p["digest"], p["signatures"]) for p in led.pending_settlements()],
            "verify": led.pending_verifications(), "settlements": led.settlement_nonces(),
            "nodes": {m: led.node_info(m) for m in CONFIG.committee}}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_incremental_digest_equals_full_recompute_and_survives_snapshot_and_reopen(seq):
    path = tempfile.mktemp(suffix=".db")
    led = staked_ledger(path)
    t = T0 - 5
    for i, dt in seq:
        t += dt
        led.apply(POOL[i], t)
        assert led.digest() == led.full_digest()
    # finish the cycle: finalize, then execute whatever settled, so orders move to the archive
    t = max(t, CREVEAL_END + 700)
    led.apply(Tick(), t)
    for p in led.pending_settlements():
        assert led.apply(SettlementExecuted(p["nonce"], tuple(p["orderIds"]), b"\x01" * 32), t).ok
        assert led.digest() == led.full_digest()
    snap = led.snapshot()
    restored = Ledger.restore(snap, CONFIG)
    assert restored.digest() == led.digest() == restored.full_digest()
    assert {parse_row(x) for x in restored.snapshot().split(b"\n")[1:]} == \
        {parse_row(x) for x in snap.split(b"\n")[1:]}
    reopened = Ledger(CONFIG, path)
    assert reopened.digest() == led.digest() == reopened.full_digest()
    assert answers(reopened) == answers(led)
    # a replica restored by state transfer serves the working state alike (it has no archive rows)
    mine = answers(led)
    theirs = answers(restored)
    assert theirs["open"] == mine["open"] and theirs["pending"] == mine["pending"]
    assert theirs["verify"] == mine["verify"] and theirs["nodes"] == mine["nodes"]
    assert all(theirs["cycles"][o] == mine["cycles"][o] for o in mine["open"])


def test_a_tampered_snapshot_row_changes_the_digest():
    led = staked_ledger()
    for t, op in [(T0, POOL[0])]:
        led.apply(op, t)
    head, *rows = led.snapshot().split(b"\n")
    # a peer that lies about one stake: the restored digest is not the one 2f+1 signed
    i = next(k for k, r in enumerate(rows) if parse_row(r).__class__.__name__ == "NodeRow")
    node = parse_row(rows[i])
    from pot.ledger.records import row_text
    rows[i] = row_text(node._replace(stake=node.stake + 1))
    assert Ledger.restore(b"\n".join([head, *rows]), CONFIG).digest() != led.digest()
    # and a row that is not canonical data is refused outright
    bad = b"\n".join([head, *rows[:-1], b"J(__import__('os'),)"])
    try:
        Ledger.restore(bad, CONFIG)
    except ValueError:
        pass
    else:
        raise AssertionError("a row that is code, not data, was accepted")


def test_a_snapshot_header_cannot_pay_for_a_tampered_row():
    """The header's archive accumulator travels in the snapshot. Were it summed with the working
    rows' into one number, a peer could change any row and move the difference into the header,
    and the restored ledger would show the digest 2f+1 replicas signed for another state."""
    import json

    from pot.ledger import ledger as L
    from pot.ledger.records import row_text

    led = staked_ledger()
    led.apply(POOL[0], T0)
    head, *rows = led.snapshot().split(b"\n")
    i = next(k for k, r in enumerate(rows) if parse_row(r).__class__.__name__ == "NodeRow")
    node = parse_row(rows[i])
    forged = row_text(node._replace(stake=node.stake + 10**24))
    doc = json.loads(head)
    doc["accArchive"] = str((int(doc["accArchive"]) + L._hash(rows[i]) - L._hash(forged)) & L._MASK)
    rows[i] = forged
    assert Ledger.restore(b"\n".join([L._canonical(doc), *rows]), CONFIG).digest() != led.digest()


def test_the_accumulators_are_wide_enough_against_generalized_birthday_forgeries():
    """A sum of row hashes mod 2^k is forged by Wagner's k-tree algorithm in about 2^(2*sqrt(k))
    work when the forger may vary many rows (2^32 for k = 256): k = 4096 puts it near 2^128."""
    from pot.ledger import ledger as L

    assert L._MASK == (1 << 4096) - 1
    assert L._hash(b"row").bit_length() > 4000
