"""Shared by the Ape scripts (``ape run ape_deploy``, ``ape run ape_place_order``); `ape run` skips
files whose name starts with "_". Reads and writes the deployment file of `pot contracts deploy`
(one entry per chain id), so Ape, the `pot` CLI, the npm package and every role share one format::

    {"97": {"chain_id": 97, "block": 123, "deployer": "0x..", "addresses": {"PoTToken": "0x..", ...},
            "parameters": {...}}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import rlp
from eth_utils import keccak, to_bytes, to_checksum_address

CONTRACTS = ("PoTToken", "StakeRegistry", "OrderBook", "ChallengeManager", "RewardMultisig")


def create_address(deployer: str, nonce: int) -> str:
    """The address CREATE gives the ``nonce``-th transaction of ``deployer``."""
    return to_checksum_address(keccak(rlp.encode([to_bytes(hexstr=deployer), nonce]))[12:])


def load_deployment(path: str | Path, chain_id: int) -> dict[str, Any]:
    """Ape contract instances of the deployment on ``chain_id`` in ``path``, by contract name."""
    from ape import project

    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SystemExit(f"deployment file {path} not found: deploy with `ape run ape_deploy` or "
                         "`pot contracts deploy`") from None
    entry = doc.get(str(chain_id))
    if entry is None:
        raise SystemExit(f"{path} has no deployment for chain id {chain_id} (has {', '.join(sorted(doc)) or 'none'})")
    missing = [n for n in CONTRACTS if n not in entry.get("addresses", {})]
    if missing:
        raise SystemExit(f"{path}: the deployment on chain {chain_id} lacks {', '.join(missing)}")
    return {name: getattr(project, name).at(entry["addresses"][name]) for name in CONTRACTS}


def save_deployment(path: str | Path, chain_id: int, addresses: dict[str, str], block: int, deployer: str,
                    parameters: dict[str, Any]) -> Path:
    """Write (or update) this chain's entry; other chains in the file are kept."""
    path = Path(path)
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc[str(chain_id)] = {"chain_id": chain_id, "addresses": {k: to_checksum_address(v) for k, v in addresses.items()},
                          "block": block, "deployer": to_checksum_address(deployer), "parameters": parameters}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
