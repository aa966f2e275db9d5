"""Committee epochs in PBFT (pbft.epoch): changes during chaos in the simulator, a removed
member's messages refused, statements bound to their epoch."""

from __future__ import annotations

import pytest

from pot.pbft.crypto import TableSigner
from pot.pbft.epoch import Epoched, EpochReplica, EpochSigner, EpochSpec
from pot.pbft.messages import Prepare
from pot.pbft.replica import ReplicaConfig
from pot.pbft.sim_epochs import CommitteeKV, EpochSimulation, run_epoch_seed
from pot.pbft.storage import MemoryStore

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


class _ExpiringCommittee(CommitteeKV):
    """Requests carry their deadline (``b"<ms>|body"``); the ledger's way: once the batch time is
    past it the machine refuses the request by itself, so PBFT may forget its id."""

    def forget_after(self, request, result, timestamp):
        return int(request.split(b"|")[0])


def test_an_epoch_replica_forgets_request_ids_behind_the_checkpoint():
    # Before: the epoch wrapper hid the state machine's forget_after, and a committee member
    # remembered every request id it ever executed (the set grew with history).
    genesis = EpochSpec(1, (0,), (b"\x07" * 32,))
    cfg = ReplicaConfig(1, checkpoint_interval=2, log_size=8)
    store = MemoryStore()
    node = EpochReplica(0, genesis, cfg, _ExpiringCommittee(genesis), lambda i, s: TableSigner(i, s.keys),
                        lambda e: store, now=0.0)
    now, sizes = 0.0, []
    for k in range(60):
        node.request(b"%d|req-%d" % (int(now * 1000) + 3000, k), "client", now)
        now += 1.0
        node.tick(now)
        sizes.append(len(node.inner.executed_ids))
    assert node.inner.last_exec == 60
    assert max(sizes[10:]) <= 6  # bounded by the 3 s expiry, not by the 60 requests
