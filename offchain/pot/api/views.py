"""The JSON views of the global ledger the HTTP API serves, and their typed readers.

One module renders a ``Ledger`` into JSON (the API, and ``LocalGateway`` so that in-process and
HTTP workers see identical data) and parses that JSON back into typed views. Everything rendered
is a function of the ledger state alone (no wall clock), so honest replicas at the same sequence
number give byte-identical answers: that is what a BFT read compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any

from eth_utils import to_checksum_address

from pot.ledger import Ledger
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.settlement import Settlement, settlement_from_json, settlement_to_json
from pot.protocol.timeline import Phase, phase

#: statuses of orders still in their cycle (the ledger's own names)
ACTIVE_STATUSES = ("open", "verifying", "settling")


def _h(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def canonical(obj: Any) -> bytes:
    """The bytes two answers are compared by (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# --- rendering ------------------------------------------------------------------------------

def order_entry(ledger: Ledger, order_id: int, now: int | None = None) -> dict[str, Any]:
    rec = ledger.s["orders"][str(order_id)]
    order = ledger.order(order_id)
    assert order is not None
    return {"order": codec.to_json(order), "status": rec["status"], "cancelled": rec["cancelled"],
            "t3": rec["t3"], "testCid": rec["testCid"],
            "phase": phase(order, rec["t3"], ledger.time if now is None else now).value,
            "rewardPerSecond": order.reward_per_second}


def orders(ledger: Ledger, *, limit: int | None = None, phase_filter: str | None = None,
           now: int | None = None) -> list[dict[str, Any]]:
    """Without a filter: the paper's FetchOrders (orders in training, best reward per second of
    training first, as ``Ledger.fetch_orders`` sorts them). With ``phase_filter``: orders still in
    their cycle in that phase (``"active"``: every one of them), by order id."""
    if phase_filter is None or phase_filter == Phase.TRAINING.value:
        return [order_entry(ledger, o.order_id, now) for o in ledger.fetch_orders(limit=limit, now=now)]
    out = []
    for key in sorted(ledger.s["orders"], key=int):
        rec = ledger.s["orders"][key]
        if rec["status"] not in ACTIVE_STATUSES or rec["cancelled"]:
            continue
        entry = order_entry(ledger, int(key), now)
        if phase_filter == "active" or entry["phase"] == phase_filter:
            out.append(entry)
        if limit is not None and len(out) >= limit:
            break
    return out


def cycle(ledger: Ledger, order_id: int) -> dict[str, Any]:
    """``Ledger.order_cycle_data`` (KeyError for an unknown order)."""
    return ledger.order_cycle_data(order_id)


def validations(ledger: Ledger, order_id: int) -> list[dict[str, Any]]:
    return [codec.to_json(v) for v in ledger.fetch_validations(order_id)]


def settlement(ledger: Ledger, nonce: int) -> dict[str, Any] | None:
    st = ledger.s["settlements"].get(str(nonce))
    if st is None:
        return None
    return {"nonce": nonce, "settlement": st["settlement"], "digest": st["digest"],
            "orderIds": list(st["orderIds"]), "executed": st["executed"], "txHash": st["txHash"],
            "signers": sorted(st["signatures"], key=lambda a: int(a, 16))}


def pending_settlements(ledger: Ledger) -> list[dict[str, Any]]:
    return [{"nonce": p["nonce"], "settlement": settlement_to_json(p["settlement"]), "digest": _h(p["digest"]),
             "orderIds": p["orderIds"], "signers": p["signers"],
             "signatures": [_h(s) for s in p["signatures"]], "ready": p["ready"]}
            for p in ledger.pending_settlements()]


def node(ledger: Ledger, address: str) -> dict[str, Any] | None:
    info = ledger.node_info(address)
    if info is None:
        return None
    return {"address": to_checksum_address(address), **info}


# --- typed readers (what the workers use) ---------------------------------------------------

@dataclass(frozen=True)
class OrderView:
    """An order with where it stands in its cycle."""
    order: T.Order
    status: str
    cancelled: bool
    t3: int | None
    test_cid: str | None
    phase: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OrderView:
        return cls(codec.from_json(d["order"]), d["status"], bool(d["cancelled"]), d["t3"], d["testCid"],
                   d["phase"])


@dataclass(frozen=True)
class ModelView:
    mid: bytes
    miner: str
    model_cid: str
    verified_score: int | None


@dataclass(frozen=True)
class CycleView:
    """The order cycle data ⟨order, phase, mList⟩ as a worker needs it."""
    order: T.Order
    phase: str
    status: str
    cancelled: bool
    t3: int | None
    test_cid: str | None
    models: tuple[ModelView, ...]
    claimers: tuple[str, ...]
    challengers: tuple[str, ...]
    nonce: int | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CycleView:
        models = tuple(ModelView(bytes.fromhex(m["mid"][2:]), m["miner"], m["modelCid"], m["verifiedScore"])
                       for m in d["models"])
        return cls(codec.from_json(d["order"]), d["phase"], d["status"], bool(d["cancelled"]), d["t3"],
                   d["testCid"], models, tuple(c["miner"] for c in d["claims"]),
                   tuple(c["challenger"] for c in d["challenges"]), d["nonce"], d)

    def model(self, mid: bytes) -> ModelView | None:
        return next((m for m in self.models if m.mid == mid), None)


@dataclass(frozen=True)
class SettlementView:
    nonce: int
    settlement: Settlement
    digest: bytes
    order_ids: tuple[int, ...]
    executed: bool
    tx_hash: str | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SettlementView:
        return cls(int(d["nonce"]), settlement_from_json(d["settlement"]), bytes.fromhex(d["digest"][2:]),
                   tuple(d["orderIds"]), bool(d["executed"]), d["txHash"])

    def for_order(self, order_id: int):
        return next((o for o in self.settlement.orders if o.order_id == order_id), None)


def parse_validations(items: list[dict[str, Any]]) -> list[T.ValidationReveal]:
    out = []
    for d in items:
        v = codec.from_json(d)
        if not isinstance(v, T.ValidationReveal):
            raise codec.DecodeError(f"expected a ValidationReveal, got {type(v).__name__}")
        out.append(v)
    return out


def sort_fetch_orders(views: list[OrderView]) -> list[OrderView]:
    """Best reward per second of training first (exact rational order, ties by id)."""
    def cmp(a: OrderView, b: OrderView) -> int:
        x, y = a.order.reward * b.order.train_duration, b.order.reward * a.order.train_duration
        return -1 if x > y else 1 if x < y else (a.order.order_id > b.order.order_id) - (
            a.order.order_id < b.order.order_id)
    return sorted(views, key=cmp_to_key(cmp))
