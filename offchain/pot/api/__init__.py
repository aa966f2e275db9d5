"""The aggregator's HTTP API (FastAPI) and its clients.

    app = create_app(node)                 # node: anything implementing pot.api.Node
    async with ApiClient(url) as api: ...  # one replica
    committee = CommitteeClient(urls)      # BFT reads and submissions: the first f+1 replicas alike

FastAPI is imported only by ``create_app``'s module, so a worker that only needs the clients
does not load it.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "create_app": "pot.api.app", "MAX_MESSAGE_BYTES": "pot.api.app", "STATUS_OF_REASON": "pot.api.app",
    "Node": "pot.api.node", "LocalNode": "pot.api.node", "NodeUnavailable": "pot.api.node",
    "ApiClient": "pot.api.client", "CommitteeClient": "pot.api.client", "ApiError": "pot.api.client",
    "NoQuorum": "pot.api.client", "RateLimited": "pot.api.client", "HttpReplica": "pot.api.http",
    "OrderView": "pot.api.views", "CycleView": "pot.api.views", "ModelView": "pot.api.views",
    "SettlementView": "pot.api.views",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pot.api' has no attribute {name!r}")
