"""An order placed while the whole committee is down reaches the ledger after the restart
(issue 10, item 0), against a real Anvil that, like a pruned or remote node, no longer serves
the state of old blocks. Before the fix each replica's chain follower started again from the
deployment block, failed on the first old stake event (BlockOutOfRangeError), had already moved
its position to the head, and skipped the order for good (its escrow stayed open)."""

from __future__ import annotations

import signal

import pytest
from committee_support import Committee, place_order, stake

from pot.chain.anvil import DEV_KEYS, Anvil, rpc
from pot.protocol import types as T


@pytest.mark.slow
def test_order_placed_while_the_committee_is_down_reaches_the_ledger(tmp_path):
    # (automine only: with a block time this Anvil keeps every state)
    with Anvil(extra_args=("--prune-history", "32")) as anvil:
        com = Committee(anvil, tmp_path, view_timeout=1.0)
        com.start_all()
        try:
            miner = stake(com, DEV_KEYS[7], roles=T.MINER)  # a stake event, soon an old block
            first, _ = place_order(com, DEV_KEYS[8], train=600)
            com.wait_for(lambda: all(com.get(i, f"/v1/orders/{first}") for i in range(com.n))
                         and all(com.get(i, f"/v1/nodes/{miner}") for i in range(com.n)),
                         60, "stake and first order attested")
            for i in range(com.n):
                com.kill(i, signal.SIGKILL)
            rpc(anvil.url, "anvil_mine", [hex(100)])  # the stake's block state is pruned now
            second, _ = place_order(com, DEV_KEYS[9], train=600)
            for i in range(com.n):
                com.start(i)
            com.wait_ready()
            com.wait_for(lambda: all(com.get(i, f"/v1/orders/{second}") for i in range(com.n)),
                         60, f"order {second}, placed while the committee was down, in every ledger")
        finally:
            com.stop_all()
