"""pot.sdk against a real Anvil with the contracts deployed (tests/conftest.py's ``pot``) and a real
embedded store: a task from a user's CSV, the order and its secret, the release window, the watch.
The full cycle with miners, validators and the committee is tests/e2e/test_sdk_example.py."""

from __future__ import annotations

import csv
import json

import pytest
from eth_account import Account

from pot.chain.anvil import DEV_KEYS
from pot.chain.errors import ChainRevert
from pot.ml import Dataset, TaskSpec
from pot.protocol import ids
from pot.sdk import OrderSecret, OrderTerms, Phase, PotClient, build_task
from pot.storage import EmbeddedStore, compute_cid

TERMS = OrderTerms(reward=50 * 10**18, train_duration=100, validate_duration=60, challenge_duration=50,
                   reveal_duration=20)


@pytest.fixture
def sdk(pot, tmp_path):
    with PotClient(pot.w3, pot.deployment, Account.from_key(DEV_KEYS[1]), EmbeddedStore(tmp_path / "store")) as c:
        yield c


@pytest.fixture(scope="module")
def flowers(tmp_path_factory):
    """A user's CSV: string labels, a header, numeric features."""
    path = tmp_path_factory.mktemp("data") / "flowers.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "kind"])
        for i in range(60):
            w.writerow([i % 7, (i * 3) % 11, ["rose", "tulip", "iris"][i % 3]])
    return path


def test_a_task_from_a_csv_uploads_the_spec_and_training_set_and_keeps_the_test_set(sdk, flowers):
    task = sdk.prepare_task(data=flowers, model={"hidden": [8]}, epochs=3, test_fraction=0.25)
    spec = TaskSpec.from_json(sdk.store.get(task.spec_cid))
    assert spec == task.spec and spec.to_json() == task.spec_json
    assert spec.train_data_cid == task.train_cid and Dataset.from_bytes(sdk.store.get(task.train_cid)).x.shape == (45, 2)
    assert spec.model == {"arch": "mlp", "in_shape": [2], "num_classes": 3, "hidden": [8]}
    assert spec.test_samples == 15 and task.metric == "classification-accuracy-v2"
    # the test set is not on the store, only its CID is known
    assert task.test_cid == str(compute_cid(task.test_bytes)) and not sdk.store.has(task.test_cid)
    # the same files give the same CIDs (what a second machine, or formats.mjs, computes)
    again = build_task(data=flowers, model={"hidden": [8]}, epochs=3, test_fraction=0.25)
    assert again.train_bytes == Dataset.from_bytes(sdk.store.get(task.train_cid)).to_bytes()
    assert str(compute_cid(again.test_bytes)) == task.test_cid


def test_a_task_that_cannot_be_scored_in_the_window_is_refused_before_any_transaction(sdk, flowers, pot):
    task = sdk.prepare_task(data=flowers, model={"hidden": [8]})
    count = pot.c.orders.order_count()
    with pytest.raises(ValueError, match="the validation window is 0 s"):
        sdk.place_order(task, OrderTerms(reward=10**18, validate_duration=0))
    assert pot.c.orders.order_count() == count


def test_place_keep_release_in_the_window_and_watch(sdk, flowers, pot, anvil, tmp_path):
    task = sdk.prepare_task(data=flowers, model={"hidden": [8]}, epochs=3)
    keep = tmp_path / "orders"
    balance = pot.c.token.balance_of(sdk.address)
    order = sdk.place_order(task, TERMS, save_to=keep)

    # escrowed, and the chain holds the commitment to this secret's test set
    assert pot.c.token.balance_of(sdk.address) == balance - TERMS.reward
    on_chain = pot.c.orders.get_order(order.order_id)
    assert on_chain["data_commitment"] == order.commitment == ids.test_commitment(sdk.address, task.test_cid, order.salt)
    # the secret survives a restart: the document and the test set, nothing pending left
    assert sorted(p.name for p in keep.iterdir()) == [f"order-{order.order_id}.json", f"test-{task.test_cid}.npz"]
    assert OrderSecret.load(keep / f"order-{order.order_id}.json") == order
    assert json.loads((keep / f"order-{order.order_id}.json").read_text())["salt"] == "0x" + order.salt.hex()
    assert (keep / f"test-{task.test_cid}.npz").stat().st_mode & 0o077 == 0

    watch = sdk.watch(order, poll_interval=0.1)
    first = watch.poll()
    assert [u.kind for u in first] == ["OrderPlaced", "phase"] and first[-1].status.phase is Phase.TRAINING
    assert watch.poll() == []  # nothing new

    # too early: the chain refuses the release before revealEnd, and nothing was released
    with pytest.raises(ChainRevert, match="OutsideWindow"):
        sdk.release_test_data(order)
    tl = watch.status().timeline
    anvil.set_next_timestamp(tl.reveal_end)
    anvil.mine()
    assert [u.status.phase for u in watch.poll()] == [Phase.TEST_RELEASE]

    t3 = sdk.release_test_data(order)
    assert sdk.store.get(task.test_cid) == task.test_bytes  # uploaded for the validators
    updates = watch.poll()
    assert [u.kind for u in updates] == ["TestDataReleased", "phase"]
    assert updates[-1].status.phase is Phase.VALIDATION and updates[-1].status.t3 == t3
    st = sdk.status(order.order_id)
    assert (st.status, st.t3, st.test_cid, st.done, st.winner) == ("open", t3, task.test_cid, False, None)
    with pytest.raises(ChainRevert, match="AlreadyReleased"):
        sdk.release_test_data(order)


def test_watch_yields_the_phase_a_final_event_happened_in_before_it_ends(sdk, flowers, pot, anvil):
    """The CI failure of tests/e2e/test_sdk_example.py: the block that settled the order was also the
    first past the challenge-reveal window, so one poll read both; the watch put the event first and
    its iteration ended at the event, so the reader never saw the order reach finalization."""
    order = sdk.place_order(sdk.prepare_task(data=flowers, model={"hidden": [8]}), TERMS)
    watch = sdk.watch(order, poll_interval=0.05, timeout=30)
    assert [u.kind for u in watch.poll()] == ["OrderPlaced", "phase"]
    anvil.set_next_timestamp(pot.c.orders.call("reclaimableAt", order.order_id))
    pot.c.orders.transact(sdk.sender, "reclaim", order.order_id, gas=200_000)  # one block: past every window, and the event
    updates = list(watch)
    assert [u.kind for u in updates] == ["phase", "OrderReclaimed"]
    assert updates[0].status.phase is Phase.FINALIZATION and updates[-1].status.done


def test_a_test_set_changed_since_the_order_is_not_released(sdk, flowers, pot, anvil):
    task = sdk.prepare_task(data=flowers, model={"hidden": [8]}, epochs=3)
    order = sdk.place_order(task, TERMS)
    anvil.set_next_timestamp(sdk.status(order).timeline.reveal_end)
    anvil.mine()
    tampered = OrderSecret(**{**order.__dict__, "test_bytes": order.test_bytes + b"\0"})
    with pytest.raises(ValueError, match="committed to"):
        sdk.release_test_data(tampered)
    assert sdk.status(order).t3 is None


def test_watch_ends_with_a_timeout_while_the_order_is_open(sdk, flowers):
    order = sdk.place_order(sdk.prepare_task(data=flowers, model={"hidden": [8]}), TERMS)
    with pytest.raises(TimeoutError, match=f"order {order.order_id} did not settle"):
        list(sdk.watch(order, poll_interval=0.05, timeout=0.3))


def test_fetching_a_winner_before_the_settlement_says_so(sdk, flowers):
    from pot.sdk import NotSettled

    order = sdk.place_order(sdk.prepare_task(data=flowers, model={"hidden": [8]}), TERMS)
    with pytest.raises(NotSettled, match="is open, phase training: not settled yet"):
        sdk.fetch_winner(order)


def test_the_blocking_facade_reads_the_committee_from_inside_a_running_event_loop():
    # a notebook runs its cells inside an event loop: asyncio.run there would raise
    import asyncio

    from pot.sdk.client import _run

    async def read() -> int:
        await asyncio.sleep(0)
        return 7

    async def cell() -> int:
        return _run(read)

    assert _run(read) == 7 and asyncio.run(cell()) == 7
