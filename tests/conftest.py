"""Shared fixtures: a real Anvil on a free port and a deployed PoT system.

``anvil`` is session-scoped (one process per test worker); ``pot`` deploys once per Anvil node and
every test runs inside an evm_snapshot/evm_revert pair, so tests are independent and fast.
"""

from __future__ import annotations

import pytest

from pot_system import PotSystem, make_system  # noqa: F401  (re-exported for fixtures)


@pytest.fixture(scope="session")
def anvil():
    from pot.chain.anvil import Anvil

    with Anvil(accounts=10, gas_limit=300_000_000) as node:
        yield node


@pytest.fixture(scope="session")
def _pot_systems():
    """One deployed system per Anvil node. Some directories (tests/roles, tests/aggregator)
    override ``anvil`` with their own node: a single session-wide system would stay bound to the
    node of whichever test asked first, and a later test elsewhere would snapshot and revert
    one chain while its system lives on another (its changes then leaked into every later test)."""
    return {}


def _system_for(systems: dict, anvil):
    system = systems.get(anvil.url)
    if system is None:
        system = systems[anvil.url] = make_system(anvil)
    return system


@pytest.fixture
def pot(_pot_systems, anvil):
    system = _system_for(_pot_systems, anvil)
    snap = anvil.snapshot()
    system.resync()
    try:
        yield system
    finally:
        reverted = anvil.revert(snap)
        system.resync()
        assert reverted, f"evm_revert({snap}) failed: the chain kept this test's changes"


@pytest.fixture
def pot_fresh(_pot_systems, anvil):
    """For hypothesis: call it at the start of each example to get a clean chain state."""
    system = _system_for(_pot_systems, anvil)
    snaps: list[str] = []

    def fresh():
        if snaps:
            anvil.revert(snaps.pop())
        snaps.append(anvil.snapshot())
        system.resync()
        return system

    yield fresh
    if snaps:
        anvil.revert(snaps.pop())
    system.resync()
