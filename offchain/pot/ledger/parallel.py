"""A batch's signature recoveries on every core the process may use.

Recovering the signer of a message is one libsecp256k1 call of ~40 µs, and cffi lets go of the
GIL for it: two threads recover two signatures at once (``pot bench ledger`` on 2 cores: 46 µs a
recovery on one thread, 25 µs on two). ``Ledger.apply_many`` recovers a batch's signatures before
its rules run, so it hands them to ``map_chunks``: the calling thread takes the first chunk and
the pool's threads the others. The rules themselves stay on one thread, in order: a recovery is a
pure function of the message, so the results (and the state) are the same on any number of
threads.

Small batches stay on the calling thread (a hand-off costs more than a few recoveries), and so
does everything in a process with one core. ``POT_LEDGER_THREADS`` caps the threads (1: none).
A forked child starts without the parent's pool and makes its own when it needs one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: fewer items than this per extra thread: one thread does them all
MIN_PER_THREAD = 8
#: the most threads a batch uses (the calling thread included)
MAX_THREADS = 4

_pool: ThreadPoolExecutor | None = None
_pool_workers = 0


def threads() -> int:
    """How many threads a large batch uses: the cores this process may run on, at most MAX_THREADS
    (and at most ``POT_LEDGER_THREADS`` when set)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    cap = os.environ.get("POT_LEDGER_THREADS", "")
    if cap.strip().isdigit():
        cores = min(cores, max(1, int(cap)))
    return max(1, min(cores, MAX_THREADS))


def _forget_pool() -> None:
    global _pool, _pool_workers
    _pool, _pool_workers = None, 0   # the child has none of the parent's threads


os.register_at_fork(after_in_child=_forget_pool)


def map_chunks(fn: Callable[[Any], Any], items: Sequence[Any], n_threads: int | None = None) -> list[Any]:
    """``[fn(x) for x in items]``, in order, spread over up to ``n_threads`` threads."""
    n = threads() if n_threads is None else n_threads
    n = min(n, len(items) // MIN_PER_THREAD)
    if n <= 1:
        return [fn(x) for x in items]
    global _pool, _pool_workers
    if _pool is None or _pool_workers < n - 1:
        _pool, _pool_workers = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="pot-recover"), n - 1
    size = -(-len(items) // n)
    chunks = [items[i:i + size] for i in range(size, len(items), size)]
    futures = [_pool.submit(_run, fn, chunk) for chunk in chunks]
    out = [fn(x) for x in items[:size]]
    for f in futures:
        out += f.result()
    return out


def _run(fn: Callable[[Any], Any], chunk: Sequence[Any]) -> list[Any]:
    return [fn(x) for x in chunk]
