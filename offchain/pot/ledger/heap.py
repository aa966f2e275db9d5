"""Keeping Python's cyclic garbage collector off the ledger's working state.

A replica holds a large, long-lived working state: thousands of open orders, each with its
claims, reveals and validations as row objects (namedtuples, which the collector never untracks).
CPython's oldest-generation collection walks every tracked object, and it runs again each time a
quarter as many new objects have survived: with 1,000 orders open, that was 4 µs per message at
1,000 orders of history and 11 µs at 5,000 (``pot bench ledger``), on a 110 µs message.

After each durable batch the survivors are long-lived by definition, so ``after_commit`` moves
them out of the collector's scans (``gc.freeze``); what the next batch allocates is still
collected as usual. Reference counting frees frozen objects as before; only a reference cycle
that forms among frozen objects waits, until ``sweep`` unfreezes and collects everything, at most
``SWEEP_S`` seconds apart (one full collection, about what the collector did each few seconds
before).
"""

from __future__ import annotations

import gc
import time

#: longest wait between full collections (seconds)
SWEEP_S = 30.0

_last_sweep = time.monotonic()


def sweep() -> None:
    """Unfreeze and collect everything now: the cycles that formed since the last sweep go."""
    global _last_sweep
    gc.unfreeze()
    gc.collect()
    _last_sweep = time.monotonic()


def after_commit() -> None:
    """Call after a batch is durable: freeze its survivors; sweep when one is due."""
    if not gc.isenabled():
        return  # someone else manages the collector (a benchmark, a debugger)
    if time.monotonic() - _last_sweep >= SWEEP_S:
        sweep()
    gc.freeze()
