"""Scenario helpers shared by the contract tests."""

from __future__ import annotations

import contextlib

import pytest

from pot.chain.clients import OrderSpec, data_commitment
from pot.chain.errors import ChainRevert
from pot.protocol.settlement import OrderSettlement, Payout, Settlement

SALT = b"\x5a" * 32
TEST_CID = "bafy-test-set"
D = 100  # every duration, seconds (>= min_reveal_duration 10)
MID = b"\x42" * 32


@contextlib.contextmanager
def reverts(error: str):
    with pytest.raises(ChainRevert) as info:
        yield info
    assert info.value.error == error, f"expected {error}, got {info.value}"


def place(pot, client, reward=1000, d=D, commitment=None):
    c = pot.c
    c.token.ensure_allowance(client, c.orders.address, 2**96 - 1)
    tc = commitment if commitment is not None else data_commitment(client.address, TEST_CID, SALT)
    res = c.orders.place_order(client, OrderSpec(reward, d, d, d, d, "classification-accuracy-v1", tc, "bafy-spec"))
    return res.event("OrderPlaced")["orderId"], res


def timeline(pot, order_id):
    return pot.c.orders.windows(order_id)


def now(pot) -> int:
    return pot.w3.eth.get_block("latest")["timestamp"]


def goto(pot, ts: int) -> None:
    """Make the next block's timestamp ``ts`` (must be in the future)."""
    cur = now(pot)
    if ts <= cur:
        raise ValueError(f"cannot go back in time: {ts} <= {cur}")
    pot.node.set_next_timestamp(ts)
    pot.node.mine()


def settle_batch(pot, order_id, payouts, nonce=None, slashes=(), verdicts=(), winner=None, *, members=(),
                 per_member=0, epoch=1, deadline=2**64 - 1):
    """One order's settlement (``order_id`` 0: none) paying ``payouts`` [(address, amount)], the
    first one as the winner unless ``winner`` says otherwise."""
    return Settlement(nonce or pot.next_nonce(), epoch, deadline, tuple(members),
                      (OrderSettlement(order_id, winner or payouts[0][0], MID, per_member,
                                       tuple(Payout(a, v) for a, v in payouts)),) if order_id else (),
                      tuple(slashes), tuple(verdicts))


def sign(pot, batch, members=None):
    ms = pot.c.multisig
    keys = [m.key for m in (members if members is not None else pot.members[:3])]
    return ms.sign_settlement(batch, keys)


def contract_balances_ok(pot, orders=(), stakers=(), challenges=()) -> None:
    """Tokens held by the contracts == open escrow + stakes + locked challenge stakes."""
    c = pot.c
    orders = range(1, c.orders.order_count() + 1)  # every order, not only the ones a test names
    escrow = sum(o["reward"] for o in (c.orders.get_order(i) for i in orders) if o["status"] == 1)
    stakes = sum(c.stakes.staker(a)["stake"] for a in stakers)
    locked = sum(c.challenges.get_challenge(o, a)["stake"] for o, a in challenges)
    assert c.token.balance_of(c.orders.address) == escrow
    assert c.token.balance_of(c.stakes.address) == stakes
    assert c.token.balance_of(c.challenges.address) == locked
    assert c.token.balance_of(c.multisig.address) == 0


# ---- used by test_reverts.py (added helpers; the ones above are unchanged) ----------------------

@contextlib.contextmanager
def action_reverts(inner: str):
    """executeAction reverted with ActionFailed(reason) and ``reason`` decodes to error ``inner``."""
    from pot.chain.errors import decode_error_data

    with reverts("ActionFailed") as info:
        yield info
    got = decode_error_data(bytes(info.value.args_[0])).error
    assert got == inner, f"expected ActionFailed({inner}), got ActionFailed({got})"


def deploy_contract(pot, name: str, *args) -> str:
    """Deploy artifact ``name`` from the deployer; a constructor revert raises ChainRevert."""
    from eth_utils import to_checksum_address
    from pot.chain.compile import load_artifact
    from web3 import Web3

    art = load_artifact(name)
    data = Web3().eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(*args).data_in_transaction
    return to_checksum_address(pot.deployer.send(None, data)["contractAddress"])


def member_senders(pot):
    """Senders for the committee members (funded with gas money)."""
    from pot.chain.sender import Sender

    out = [Sender(pot.w3, m) for m in pot.members]
    for s in out:
        pot.node.set_balance(s.address, 10**20)
    return out
