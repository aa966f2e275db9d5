"""Shared fixtures: a real Anvil on a free port and a deployed PoT system.

``anvil`` is session-scoped (one process per test worker); ``pot`` deploys once per session and
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
def _pot_session(anvil):
    return make_system(anvil)


@pytest.fixture
def pot(_pot_session, anvil):
    snap = anvil.snapshot()
    _pot_session.resync()
    try:
        yield _pot_session
    finally:
        anvil.revert(snap)
        _pot_session.resync()


@pytest.fixture
def pot_fresh(_pot_session, anvil):
    """For hypothesis: call it at the start of each example to get a clean chain state."""
    snaps: list[str] = []

    def fresh():
        if snaps:
            anvil.revert(snaps.pop())
        snaps.append(anvil.snapshot())
        _pot_session.resync()
        return _pot_session

    yield fresh
    if snaps:
        anvil.revert(snaps.pop())
    _pot_session.resync()
