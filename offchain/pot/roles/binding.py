"""A replica's data directory belongs to one deployment (ARCHITECTURE.md §4).

The PBFT log in ``data_dir`` rebuilds the ledger at every start. Replayed onto another
deployment it brings the old orders and nonces back: on a fresh devnet chain the contracts get
the same addresses and chain id, so only the chain's own history tells them apart. The first
start writes ``data_dir/deployment-binding.json`` (chain id, contract addresses, the hashes of
block 0 and of the deployment block); every later start compares and refuses another one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BINDING_FILE = "deployment-binding.json"


class DataDirMismatch(ValueError):
    """The data directory holds another deployment's ledger and PBFT log."""


def deployment_identity(w3, deployment) -> dict[str, Any]:
    """What identifies a deployment: its chain (id, block 0, the deployment block) and addresses."""
    def block_hash(number: int) -> str:
        return "0x" + bytes(w3.eth.get_block(number)["hash"]).hex()

    return {"chainId": int(deployment.chain_id), "genesisHash": block_hash(0),
            "deploymentBlock": int(deployment.block), "deploymentBlockHash": block_hash(deployment.block),
            "addresses": {k: v for k, v in sorted(deployment.addresses.items())}}


def bind_data_dir(data_dir: Path, identity: dict[str, Any]) -> None:
    """Write the binding on first use; raise ``DataDirMismatch`` (one line, with the fix) when
    ``data_dir`` was bound to another deployment."""
    path = Path(data_dir) / BINDING_FILE
    try:
        bound = json.loads(path.read_text())
    except FileNotFoundError:
        bound = None
    except (OSError, ValueError) as exc:
        raise DataDirMismatch(f"{path} is unreadable ({exc}): move {data_dir} away to start this replica "
                              "afresh") from None
    if bound is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return
    if bound != identity:
        what = next((k for k in ("chainId", "genesisHash", "addresses", "deploymentBlockHash")
                     if bound.get(k) != identity.get(k)), "deployment")
        raise DataDirMismatch(
            f"data_dir {data_dir} holds the ledger of another deployment ({what} differs: chain "
            f"{bound.get('chainId')}, OrderBook {bound.get('addresses', {}).get('OrderBook')}, genesis "
            f"{str(bound.get('genesisHash'))[:18]}…); this config is for chain {identity['chainId']}, OrderBook "
            f"{identity['addresses'].get('OrderBook')}, genesis {identity['genesisHash'][:18]}…: point data_dir "
            f"at a fresh directory (or move {data_dir} away)")
