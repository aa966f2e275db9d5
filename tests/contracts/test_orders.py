"""OrderBook: placement, test-data release, reclaim, and settlement only through the multisig."""

from __future__ import annotations

from contracts.helpers import D, SALT, TEST_CID, contract_balances_ok, goto, place, reverts, settle_batch, sign
from pot.chain.clients import OrderSpec, data_commitment


def test_place_order_escrows_and_emits(pot):
    client = pot.users[0]
    before = pot.c.token.balance_of(client.address)
    oid, res = place(pot, client, reward=1234)
    ev = res.event("OrderPlaced")
    assert oid == 1 and ev["reward"] == 1234 and ev["specCid"] == "bafy-spec"
    assert ev["modelType"].rstrip(b"\0") == b"classification-accuracy-v1"
    o = pot.c.orders.get_order(oid)
    assert o["client"] == client.address and o["t0"] == ev["t0"] and o["status"] == 1
    assert pot.c.token.balance_of(client.address) == before - 1234
    assert place(pot, client)[0] == 2  # sequential ids
    contract_balances_ok(pot, orders=[1, 2])


def test_place_order_reverts(pot):
    client = pot.users[0]
    pot.c.token.approve(client, pot.c.orders.address, 10**30)
    tc = b"\x01" * 32
    with reverts("ZeroReward"):
        pot.c.orders.place_order(client, OrderSpec(0, D, D, D, D, "m", tc, "s"))
    with reverts("ZeroDuration"):
        pot.c.orders.place_order(client, OrderSpec(1, 0, D, D, D, "m", tc, "s"))
    with reverts("RevealDurationTooShort"):
        pot.c.orders.place_order(client, OrderSpec(1, D, D, D, 9, "m", tc, "s"))
    poor = pot.users[6]
    pot.c.token.transfer(poor, pot.users[5].address, pot.c.token.balance_of(poor.address))
    pot.c.token.approve(poor, pot.c.orders.address, 10**30)
    with reverts("ERC20InsufficientBalance"):
        pot.c.orders.place_order(poor, OrderSpec(1, D, D, D, D, "m", tc, "s"))


def test_release_test_data_window_and_opening(pot):
    client, other = pot.users[0], pot.users[1]
    oid, _ = place(pot, client)
    w = pot.c.orders.windows(oid)
    with reverts("OutsideWindow"):  # still in the model reveal window
        pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)
    goto(pot, w["reveal_end"])
    with reverts("NotClient"):
        pot.c.orders.release_test_data(other, oid, TEST_CID, SALT)
    with reverts("BadTestOpening"):
        pot.c.orders.release_test_data(client, oid, TEST_CID, b"\x00" * 32)
    with reverts("BadTestOpening"):
        pot.c.orders.release_test_data(client, oid, "bafy-other-set", SALT)
    with reverts("UnknownOrder"):
        pot.c.orders.release_test_data(client, 99, TEST_CID, SALT)
    res = pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)
    ev = res.event("TestDataReleased")
    assert ev["testCid"] == TEST_CID and pot.c.orders.get_order(oid)["t3"] == ev["t3"]
    with reverts("AlreadyReleased"):
        pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)


def test_release_after_window_refused(pot):
    client = pot.users[0]
    oid, _ = place(pot, client)
    goto(pot, pot.c.orders.windows(oid)["release_end"])
    with reverts("OutsideWindow"):
        pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)


def test_test_commitment_binds_client(pot):
    """Another client's opening of the same test set does not match (commitment binds the client)."""
    client = pot.users[0]
    tc = data_commitment(pot.users[1].address, TEST_CID, SALT)
    oid, _ = place(pot, client, commitment=tc)
    goto(pot, pot.c.orders.windows(oid)["reveal_end"])
    with reverts("BadTestOpening"):
        pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)


def test_reclaim_rules(pot):
    client, other = pot.users[0], pot.users[1]
    oid, _ = place(pot, client, reward=500)
    at = pot.c.orders.call("reclaimableAt", oid)
    assert at == pot.c.orders.windows(oid)["release_end"] + pot.params.settlement_grace
    with reverts("TooEarly"):
        pot.c.orders.reclaim(client, oid)
    goto(pot, at)
    with reverts("NotClient"):
        pot.c.orders.reclaim(other, oid)
    before = pot.c.token.balance_of(client.address)
    res = pot.c.orders.reclaim(client, oid)
    assert res.event("OrderReclaimed")["amount"] == 500
    assert pot.c.token.balance_of(client.address) == before + 500
    with reverts("NotOpen"):
        pot.c.orders.reclaim(client, oid)
    # and the committee can no longer settle it: its settlement skips it, paying nothing
    b = settle_batch(pot, oid, [(client.address, 500)])
    before = pot.c.token.balance_of(client.address)
    res = pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert res.event("OrderSkipped")["reason"] == 1 and pot.c.token.balance_of(client.address) == before
    contract_balances_ok(pot, orders=[oid])


def test_reclaim_after_release_waits_for_challenge_reveals(pot):
    client = pot.users[0]
    oid, _ = place(pot, client)
    goto(pot, pot.c.orders.windows(oid)["reveal_end"])
    pot.c.orders.release_test_data(client, oid, TEST_CID, SALT)
    w = pot.c.orders.windows(oid)
    assert pot.c.orders.call("reclaimableAt", oid) == w["challenge_reveal_end"] + pot.params.settlement_grace
    goto(pot, w["release_end"] + pot.params.settlement_grace)
    with reverts("TooEarly"):  # the release moved the deadline
        pot.c.orders.reclaim(client, oid)


def test_cancel_with_no_claims_is_a_settlement_refund(pot):
    """CONVENTIONS.md: cancel = committee refund at/after trainEnd, not a client-only call."""
    client = pot.users[0]
    oid, _ = place(pot, client, reward=700)
    b = settle_batch(pot, oid, [(client.address, 700)], winner="0x" + "00" * 20)
    with reverts("TooEarly"):  # before trainEnd even k members cannot cancel
        pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    goto(pot, pot.c.orders.windows(oid)["train_end"])
    before = pot.c.token.balance_of(client.address)
    pot.c.multisig.execute_signed(pot.deployer, b, sign(pot, b))
    assert pot.c.token.balance_of(client.address) == before + 700
    with reverts("NotOpen"):  # no reclaim after a refund
        pot.c.orders.reclaim(client, oid)


def test_settle_only_via_multisig(pot):
    client = pot.users[0]
    oid, _ = place(pot, client)
    goto(pot, pot.c.orders.windows(oid)["train_end"])
    with reverts("OnlyMultisig"):
        pot.c.orders.transact(client, "settle", settle_batch(pot, oid, [(client.address, 1000)]).as_abi())
    with reverts("OnlyMultisig"):
        pot.c.orders.transact(client, "setSettlementGrace", 0)
    with reverts("OnlyMultisig"):
        pot.c.orders.transact(client, "setMaxOrderLifetime", 0)
    with reverts("OnlyMultisig"):
        pot.c.orders.transact(client, "setMinRevealDuration", 0)
