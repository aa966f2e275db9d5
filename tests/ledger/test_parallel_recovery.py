"""A batch's signatures are recovered on several threads (pot.ledger.parallel); the answers and the
state are those of one thread, in the batch's order, whatever the thread count."""

import os
import threading
import time

from ledger_world import DOMAIN, MINERS, T0, commit, mid, order, staked_ledger

from pot.ledger import parallel
from pot.protocol import OrderPlaced, encode
from pot.protocol import types as T
from pot.protocol.eip712 import SECP256K1_N


def test_map_chunks_keeps_order_and_uses_the_threads_it_is_given():
    seen: list[int] = []

    def fn(x: int) -> int:
        seen.append(threading.get_ident())
        time.sleep(0.001)   # busy long enough that each chunk gets a thread of its own
        return x * x

    items = list(range(100))
    assert parallel.map_chunks(fn, items, n_threads=3) == [x * x for x in items]
    assert len(set(seen)) == 3 and threading.get_ident() in seen
    seen.clear()
    assert parallel.map_chunks(fn, items[:10], n_threads=3) == [x * x for x in items[:10]]
    assert set(seen) == {threading.get_ident()}   # too few to hand off


def test_threads_follow_the_environment(monkeypatch):
    monkeypatch.setenv("POT_LEDGER_THREADS", "1")
    assert parallel.threads() == 1
    monkeypatch.setenv("POT_LEDGER_THREADS", "64")
    assert 1 <= parallel.threads() <= parallel.MAX_THREADS


def _batch() -> list[bytes]:
    """Orders, then good, forged, malleable and repeated commits interleaved: 60 signed ops."""
    ops = [encode(OrderPlaced(order(oid))) for oid in range(1, 21)]
    for oid in range(1, 21):
        good = commit(MINERS[0], oid, mid(oid))
        forged = commit(MINERS[1], oid, mid(oid + 100)).message.sign(DOMAIN, MINERS[2].key)
        s = int.from_bytes(good.signature[32:64], "big")
        high_s = T.Signed(commit(MINERS[2], oid, mid(oid + 200)).message, good.signature[:32]
                          + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - good.signature[64]]))
        ops += [encode(good), encode(forged), encode(high_s)] if oid % 2 else [encode(forged), encode(good),
                                                                                  encode(good)]
    return ops


def test_the_answers_and_the_state_do_not_depend_on_the_thread_count(monkeypatch):
    batch = _batch()
    answers, digests = [], []
    for n in ("1", "4"):
        monkeypatch.setenv("POT_LEDGER_THREADS", n)
        led = staked_ledger()
        answers.append([(r.reason_enum, r.text) for r in led.apply_many(batch, T0)])
        digests.append(led.full_digest())
    assert answers[0] == answers[1]
    assert digests[0] == digests[1]
    reasons = [reason.name for reason, _text in answers[0][20:]]
    assert reasons.count("OK") == 20 and reasons.count("BAD_SIGNATURE") == 30 and reasons.count("REPLAY") == 10


def test_a_forked_child_makes_its_own_pool():
    parallel.map_chunks(abs, list(range(-40, 0)), n_threads=2)
    assert parallel._pool is not None
    pid = os.fork()
    if pid == 0:   # the child: the parent's worker thread is not here
        ok = parallel._pool is None and parallel.map_chunks(abs, list(range(-40, 0)), n_threads=2) == list(range(40, 0, -1))
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
