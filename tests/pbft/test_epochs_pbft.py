"""Committee epochs in PBFT (pbft.epoch): changes during chaos in the simulator, a removed
member's messages refused, statements bound to their epoch."""

from __future__ import annotations

import pytest

from pot.pbft.crypto import TableSigner
from pot.pbft.epoch import Epoched, EpochSigner
from pot.pbft.messages import Prepare
from pot.pbft.sim_epochs import EpochSimulation, run_epoch_seed

# Each seed: a member killed for good and replaced by a fresh node with a new key (joining by
# state transfer), growth from 4 to 7, a key rotation, and in about half a live member removed,
# all while messages drop, duplicate and reorder, a node is partitioned and one crashes.
SEEDS = list(range(24))


@pytest.mark.parametrize("seed", SEEDS)
def test_epoch_changes_during_chaos(seed):
    r = run_epoch_seed(seed)
    assert r.epochs >= 4 and len(r.members) >= 6


def test_removed_member_is_refused_from_the_boundary():
    sim = EpochSimulation(3, remove_live=True)
    sim.run()
    gone = sim.removed_live
    last = sim.specs[-1]
    assert gone not in last.members
    member = next(m for m in last.members if m not in sim.dead)
    node = sim.nodes[member]
    before = (node.refused, node.inner.last_exec, node.inner.view)
    # The removed member signs a vote for the new epoch with the key it had: nobody counts it.
    old = sim.specs[-2]
    signer = EpochSigner(TableSigner(old.index(gone), old.keys), last.number)
    p = Prepare(node.inner.view, node.inner.last_exec + 1, b"\1" * 32, old.index(gone))
    p = Prepare(p.view, p.seq, p.digest, p.replica, signer.sign(p.signable()))
    node.receive(Epoched(last.number, p), gone, sim.now)
    assert node.refused == before[0] + 1
    assert (node.inner.last_exec, node.inner.view) == before[1:]
    assert all(node.inner.slots.get(p.seq) is None or not node.inner.slots[p.seq].prepares
               for _ in [0])


def test_statements_are_bound_to_their_epoch():
    keys = [bytes([i]) * 32 for i in range(4)]
    one, two = EpochSigner(TableSigner(1, keys), 1), EpochSigner(TableSigner(1, keys), 2)
    sig = one.sign(b"prepare")
    assert one.verify(1, b"prepare", sig)
    assert not two.verify(1, b"prepare", sig)


def test_joined_member_restarted_after_growth_rejoins_its_epoch():
    # Seed 123: node 7 joins at the growth, its frozen epoch-3 replica takes part in a view
    # change (view 1) and makes the boundary stable, then node 7 crashes. On restart it opened
    # epoch 4 with epoch 3's store, came up alone in view 1 and stayed there.
    sim = EpochSimulation(123)
    sim.run()
    views = {m: sim.nodes[m].inner.view for m in sim._live_members()}
    assert len(set(views.values())) == 1, views
    assert 7 in views and "restart 7" in " ".join(sim.log)
