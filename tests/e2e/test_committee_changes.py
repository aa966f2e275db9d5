"""Issue 15 on real processes: a devnet under orders loses aggregator-3 for good, replaces it by
a new key (``pot devnet replace-aggregator``), grows from 4 to 7 members (``add-aggregator``) and
rotates aggregator-1's key, while orders run. The workers are never restarted nor reconfigured:
they follow the committee's API URLs on their own, and every order has every worker in it. Every
order settles exactly once with token conservation, and at every executed settlement the chain's
members and epoch are the committee the ledger had for the epoch the settlement names, read from
the committee as it is at the end (its joined members backfilled the archive), and every member
serves the first settlement alike."""

from __future__ import annotations

import pytest

from pot.devnet.soak import SoakConfig, run_soak

pytestmark = pytest.mark.slow


def test_replace_grow_and_rotate_with_orders_in_flight(tmp_path):
    cfg = SoakConfig(duration_s=60.0, baseline_s=10.0, order_every_s=12.0, drain_s=240.0, miners=1, validators=1,
                     faults=False, committee_changes=True)
    r = run_soak(cfg, tmp_path / "net")
    chain, members = r["chain"], r["members_at_settlements"]
    detail = {"faults": r["faults"], "orders": [(o["order_id"], o["placed_at"], o["settled_at"])
                                                for o in r["per_order"]], "chain": chain, "members": members}
    assert [f["what"] for f in r["faults"]] == ["kill -9 for good", "replaced", "grown by 3", "rotated"], detail
    assert [f.get("epoch") for f in r["faults"][1:]] == [2, 3, 4], detail
    assert r["orders"] >= 5 and r["all_settled"] and r["settled"] == r["orders"], detail
    # the workers follow the committee's APIs by themselves: never restarted, in every order
    assert r["workers_restarted"] == [], detail
    assert r["every_honest_worker_in_every_order"], [(o["order_id"], o["missing"]) for o in r["per_order"]]
    assert chain["settled_once"] and chain["conservation"], detail
    assert members["equal"] and len(members["epochs"]) >= 2, detail
    # the members who joined by state transfer copied the archive from before they joined
    assert members["first_settlement_everywhere"], members["first_settlement"]
    assert r["digests"]["equal"], r["digests"]
