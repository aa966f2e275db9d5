"""Re-entrancy through a hostile token receiver (HookToken calls the receiver on every transfer)."""

from __future__ import annotations

import pytest
from web3 import Web3

from contracts.helpers import SALT, TEST_CID, goto, place, settle_batch, sign
from pot.chain.compile import load_artifact


@pytest.fixture(scope="module")
def hooked(anvil):
    """A second PoT system on the same Anvil whose token is the hook token."""
    from pot_system import make_system
    from pot.chain.anvil import DEV_KEYS
    from pot.chain.sender import Sender

    w3 = anvil.w3()
    dep = Sender(w3, DEV_KEYS[0])
    art = load_artifact("HookToken")
    data = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(dep.address, 10**27).data_in_transaction
    token = dep.send(None, data)["contractAddress"]
    dep.resync()
    system = make_system(anvil, token=token)
    for u in system.users:
        system.c.token.transfer(system.deployer, u.address, 10**24)
    art = load_artifact("Reenterer")
    data = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor().data_in_transaction
    attacker = system.deployer.send(None, data)["contractAddress"]
    contract = w3.eth.contract(address=attacker, abi=art["abi"])
    tok = system.c.token
    system.deployer.send(attacker, contract.encode_abi("exec", args=[tok.address, w3.eth.contract(abi=load_artifact("HookToken")["abi"]).encode_abi("registerHook")]))
    return system, contract


def _exec(pot, attacker, target, data):
    return pot.deployer.send(attacker.address, attacker.encode_abi("exec", args=[target, data]))


def test_withdraw_reentry_refused(hooked, anvil):
    pot, attacker = hooked
    snap = anvil.snapshot()
    pot.resync()
    try:
        st = pot.c.stakes
        pot.c.token.transfer(pot.deployer, attacker.address, 1000)
        _exec(pot, attacker, pot.c.token.address, pot.c.token.encode("approve", st.address, 10**30))
        _exec(pot, attacker, st.address, st.encode("register", 1, 500))
        _exec(pot, attacker, st.address, st.encode("requestUnregister"))
        goto(pot, st.staker(attacker.address)["unbonding_end"])
        pot.deployer.send(attacker.address, attacker.encode_abi("arm", args=[st.address, bytes.fromhex(st.encode("withdraw")[2:])]))
        _exec(pot, attacker, st.address, st.encode("withdraw"))
        assert attacker.functions.attempted().call() and not attacker.functions.lastOk().call()
        assert pot.c.token.balance_of(attacker.address) == 1000  # paid once, not twice
        assert pot.c.token.balance_of(st.address) == 0
    finally:
        anvil.revert(snap)
        pot.resync()


def test_reclaim_and_settlement_reentry_refused(hooked, anvil):
    pot, attacker = hooked
    snap = anvil.snapshot()
    pot.resync()
    try:
        ob = pot.c.orders
        pot.c.token.transfer(pot.deployer, attacker.address, 1000)
        _exec(pot, attacker, pot.c.token.address, pot.c.token.encode("approve", ob.address, 10**30))
        from pot.chain.clients import OrderSpec, data_commitment

        spec = OrderSpec(600, 100, 100, 100, 100, "m", data_commitment(attacker.address, TEST_CID, SALT), "s")
        _exec(pot, attacker, ob.address, ob.encode("placeOrder", spec.as_abi()))
        place(pot, pot.users[0], reward=400)  # another order's escrow to steal
        goto(pot, ob.call("reclaimableAt", 1))
        pot.deployer.send(attacker.address, attacker.encode_abi("arm", args=[ob.address, bytes.fromhex(ob.encode("reclaim", 1)[2:])]))
        _exec(pot, attacker, ob.address, ob.encode("reclaim", 1))
        assert attacker.functions.attempted().call() and not attacker.functions.lastOk().call()
        assert pot.c.token.balance_of(attacker.address) == 1000
        assert pot.c.token.balance_of(ob.address) == 400
        # a settlement paying the attacker: re-entering executeSigned with the same batch fails
        b = settle_batch(pot, 2, [(attacker.address, 400)])
        sigs = b"".join(sign(pot, b))
        ms = pot.c.multisig
        pot.deployer.send(attacker.address, attacker.encode_abi(
            "arm", args=[ms.address, bytes.fromhex(ms.encode("executeSigned", b.as_abi(), sigs)[2:])]))
        ms.execute_signed(pot.deployer, b, sigs)
        assert attacker.functions.attempted().call() and not attacker.functions.lastOk().call()
        assert pot.c.token.balance_of(attacker.address) == 1400
        assert pot.c.token.balance_of(ob.address) == 0
        assert Web3.to_hex(attacker.functions.lastReturn().call())[:10] in (
            "0x3ee5aeb5",  # ReentrancyGuardReentrantCall()
        )
    finally:
        anvil.revert(snap)
        pot.resync()
