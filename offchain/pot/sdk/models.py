"""The winning model: what the settlement names, checked back to the miner's commitment.

A settled order names its winner and ``winningMid`` (``OrderSettled``; the committee's ledger holds
the same). The committee's cycle data links that mid to the miner's reveal (model CID and salt). A
model the client can trust is one where

1. the reveal belongs to the winner and opens the claim commitment the miner made during training
   (``keccak256(abi.encode(orderId, miner, mid, salt))``), so it is the model committed in time;
2. the file fetched by its CID (the store checks every block against it) hashes to the mid
   (``mid = sha256(file)``);
3. the file is a canonical safetensors model file of the spec's architecture (parsed without
   unpickling anything);
4. optionally, its score on the client's own test set equals the one the network settled on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pot.api.views import CycleView, ModelView
from pot.ml import TaskSpec
from pot.ml.modelfile import ModelFileError, decode, read_header, write_model_file
from pot.ml.spec import SpecError
from pot.protocol.ids import claim_commitment, mid_of

if TYPE_CHECKING:
    from torch import nn


class ModelCheckError(ValueError):
    """A winning model that does not check out (the message says which step and why)."""


class NotSettled(LookupError):
    """The order has no settlement yet."""


@dataclass(frozen=True)
class WinningModel:
    """A checked winning model: its file, its architecture and, if asked for, its score here."""

    order_id: int
    winner: str
    mid: bytes
    model_cid: str
    #: the canonical safetensors file (its sha256 is ``mid``)
    data: bytes
    #: the architecture from the file's header (equal to the spec's)
    config: dict[str, Any]
    metric: str
    #: the score on the client's own test set (None: not scored)
    local_score: int | None = None
    #: the score the network settled on (None: unknown)
    network_score: int | None = None

    @property
    def score_matches(self) -> bool:
        """Scored here, and the same integer as the network's."""
        return self.local_score is not None and self.local_score == self.network_score

    def load(self) -> nn.Module:
        """The model as a PyTorch module (CPU, float32, eval mode), built from the safetensors file."""
        from pot.ml import load_model

        return load_model(self.data)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file (atomically); a directory gets ``winner-<order>-<mid>.safetensors``."""
        p = Path(path).expanduser()
        if p.is_dir():
            p = p / f"winner-{self.order_id}-{self.mid.hex()[:16]}.safetensors"
        write_model_file(p, self.data)
        return p


def check_reveal(cycle: CycleView, order_id: int, winner: str, mid: bytes) -> ModelView:
    """The reveal of ``mid`` in the committee's cycle data, checked to be ``winner``'s and to open
    the claim commitment ``winner`` made for ``order_id``."""
    model = cycle.model(mid)
    if model is None:
        raise ModelCheckError(f"the committee has no reveal of the winning model 0x{mid.hex()}")
    if model.miner.lower() != winner.lower():
        raise ModelCheckError(f"model 0x{mid.hex()} was revealed by {model.miner}, the settlement pays {winner}")
    claim = next((c for c in cycle.raw["claims"] if c["miner"].lower() == winner.lower()), None)
    if claim is None:
        raise ModelCheckError(f"the committee holds no claim commitment of {winner}")
    if "0x" + claim_commitment(order_id, model.miner, mid, model.salt).hex() != claim["commitment"].lower():
        raise ModelCheckError(f"the reveal of 0x{mid.hex()} does not open {winner}'s claim commitment "
                              f"{claim['commitment']}")
    return model


def check_model_file(data: bytes, mid: bytes, spec: TaskSpec | None = None) -> dict[str, Any]:
    """Check a model file against its mid and (given) the order's spec; returns its architecture.

    The header is read first, bounded by the spec's model size, so a file of the wrong family or
    size is refused before its weights are parsed."""
    if mid_of(data) != mid:
        raise ModelCheckError(f"the model file hashes to 0x{mid_of(data).hex()}, not to the mid 0x{mid.hex()}")
    try:
        if spec is not None:
            spec.check_model(read_header(data, max_bytes=spec.max_model_bytes))
        _, config = decode(data)
    except (ModelFileError, SpecError) as exc:
        raise ModelCheckError(f"model 0x{mid.hex()}: {exc}") from None
    return config


def standing_score(cycle: CycleView, mid: bytes) -> int | None:
    """The score the network stands by: the committee's PoT.Verify result if it ran, else the score
    every validator of the model agreed on (None: they disagreed, or nobody validated it)."""
    m = cycle.model(mid)
    if m is not None and m.verified_score is not None:
        return m.verified_score
    for raw in cycle.raw["models"]:
        if raw["mid"] == "0x" + mid.hex():
            scores = {v["score"] for v in raw["validations"]}
            return scores.pop() if len(scores) == 1 else None
    return None
