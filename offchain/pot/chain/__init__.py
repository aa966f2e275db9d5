"""On-chain half of PoT: compiled artifacts, Anvil, deployment, typed clients, events, sender.

Heavy imports (web3) load lazily, so ``import pot.chain`` stays cheap::

    from pot.chain import Anvil, deploy, DeployParams, Deployment, Contracts, Sender, EventFollower
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Anvil": "pot.chain.anvil", "DEV_KEYS": "pot.chain.anvil", "AnvilError": "pot.chain.anvil",
    "compile_contracts": "pot.chain.compile", "load_artifact": "pot.chain.compile",
    "deploy": "pot.chain.deployment", "DeployParams": "pot.chain.deployment", "Deployment": "pot.chain.deployment",
    "Contracts": "pot.chain.clients", "OrderSpec": "pot.chain.clients", "Action": "pot.chain.clients",
    "data_commitment": "pot.chain.clients", "challenge_commitment": "pot.chain.clients",
    "model_type_bytes": "pot.chain.clients", "pack_signatures": "pot.chain.clients",
    "Sender": "pot.chain.sender", "TxResult": "pot.chain.sender", "TxFailed": "pot.chain.sender",
    "connect": "pot.chain.sender", "ChainRevert": "pot.chain.errors",
    "EventFollower": "pot.chain.events", "ChainEvent": "pot.chain.events",
    "load_account": "pot.chain.keys",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pot.chain' has no attribute {name!r}")
