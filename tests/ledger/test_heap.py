"""The ledger keeps the cyclic collector off its working state (pot.ledger.heap): after a durable
batch the survivors are frozen; a reference cycle among them is still collected by the next sweep."""

import gc
import weakref

from ledger_world import T0, order, staked_ledger

from pot.ledger import heap
from pot.protocol import OrderPlaced


class _Node:
    pass


def test_a_batch_freezes_its_survivors_and_a_sweep_collects_frozen_cycles(tmp_path):
    heap.sweep()
    led = staked_ledger(str(tmp_path / "ledger.db"))
    a, b = _Node(), _Node()
    a.other, b.other = b, a                # a reference cycle, alive while the batch commits
    gone = weakref.ref(a)
    assert led.apply_many([OrderPlaced(order(1))], T0)[0].ok
    assert gc.get_freeze_count() > 0      # the batch's survivors left the collector's scans
    del a, b
    gc.collect()
    assert gone() is not None             # frozen: the usual collection does not see the cycle
    heap.sweep()
    assert gone() is None                 # the sweep does
    assert gc.get_freeze_count() == 0
    led.close()


def test_a_sweep_comes_when_due(tmp_path, monkeypatch):
    led = staked_ledger(str(tmp_path / "ledger.db"))
    a = _Node()
    a.me = a
    gone = weakref.ref(a)
    assert led.apply_many([OrderPlaced(order(1))], T0)[0].ok
    del a
    monkeypatch.setattr(heap, "_last_sweep", heap._last_sweep - heap.SWEEP_S - 1)
    assert led.apply_many([OrderPlaced(order(2))], T0)[0].ok   # due: unfreeze, collect, freeze
    assert gone() is None
    led.close()
