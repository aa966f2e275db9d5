"""Fixtures of the storage tests; helpers live in storage_support.py."""

from __future__ import annotations

import pytest
from storage_support import SKIP_REASON, JsIpfsNode, available, start


@pytest.fixture(scope="session")
def jsipfs(tmp_path_factory) -> JsIpfsNode:
    """One offline js-ipfs node per test session (or xdist worker); startup takes a few seconds."""
    if not available():
        pytest.skip(SKIP_REASON)
    node = start(tmp_path_factory.mktemp("jsipfs"))
    yield node
    node.stop()
