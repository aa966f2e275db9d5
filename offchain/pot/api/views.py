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

from pot.ledger import Ledger, Status
from pot.ledger.ledger import OrderState
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

def _state(ledger: Ledger, order_id: int) -> OrderState:
    st = ledger.order_state(order_id)
    if st is None:
        raise KeyError(order_id)
    return st


def order_entry(ledger: Ledger, order_id: int, now: int | None = None,
                st: OrderState | None = None) -> dict[str, Any]:
    st = st or _state(ledger, order_id)
    order, row = st.order, st.row
    return {"order": codec.to_json(order), "status": st.status.label, "cancelled": bool(row.cancelled),
            "t3": row.t3, "testCid": row.test_cid,
            "phase": phase(order, row.t3, ledger.time if now is None else now).value,
            "rewardPerSecond": order.reward_per_second}


def orders(ledger: Ledger, *, limit: int | None = None, phase_filter: str | None = None,
           now: int | None = None) -> list[dict[str, Any]]:
    """Without a filter: the paper's FetchOrders (orders in training, best reward per second of
    training first, as ``Ledger.fetch_orders`` sorts them). With ``phase_filter``: orders still in
    their cycle in that phase (``"active"``: every one of them), newest first as ``GET /v1/orders``."""
    if phase_filter is None or phase_filter == Phase.TRAINING.value:
        return [order_entry(ledger, o.order_id, now) for o in ledger.fetch_orders(limit=limit, now=now)]
    now = ledger.time if now is None else now
    keys = _matching(ledger, ledger.open_order_ids()[::-1], now, phase_filter, None, None, None)
    return [order_entry(ledger, k, now) for k in keys[:limit]]


def cycle(ledger: Ledger, order_id: int) -> dict[str, Any]:
    """``Ledger.order_cycle_data`` (KeyError for an unknown order)."""
    return ledger.order_cycle_data(order_id)


def validations(ledger: Ledger, order_id: int) -> list[dict[str, Any]]:
    return [codec.to_json(v) for v in ledger.fetch_validations(order_id)]


def settlement(ledger: Ledger, nonce: int) -> dict[str, Any] | None:
    st = ledger.settlement_state(nonce)
    if st is None:
        return None
    row = st.row
    return {"nonce": nonce, "settlement": json.loads(row.body), "digest": _h(row.digest),
            "orderIds": st.order_ids, "executed": bool(row.executed),
            "txHash": _h(row.tx_hash) if row.tx_hash is not None else None,
            "signers": [to_checksum_address(s) for s in sorted(st.sigs)],
            "signatures": [_h(st.sigs[s]) for s in sorted(st.sigs)]}


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
    #: the reveal's salt (opens the miner's claim commitment)
    salt: bytes


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
        models = tuple(ModelView(bytes.fromhex(m["mid"][2:]), m["miner"], m["modelCid"], m["verifiedScore"],
                                 bytes.fromhex(m["salt"][2:])) for m in d["models"])
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


# --- the explorer's reads (also API routes: every one a function of the ledger state) -------------

#: what ``GET /v1/orders?status=`` takes: the ledger's statuses, and "cancelled" (a flag beside them)
STATUSES = ("open", "verifying", "settling", "settled", "skipped", "cancelled")
#: the timeline field each phase ends at (None: finalization has no end)
PHASE_END = {Phase.NOT_STARTED.value: "t0", Phase.TRAINING.value: "train_end",
             Phase.MODEL_REVEAL.value: "reveal_end", Phase.TEST_RELEASE.value: "release_end",
             Phase.VALIDATION.value: "validate_end", Phase.VALIDATION_REVEAL.value: "validation_reveal_end",
             Phase.CHALLENGE.value: "challenge_end", Phase.CHALLENGE_REVEAL.value: "challenge_reveal_end",
             Phase.FINALIZATION.value: None}


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _settlement_of(ledger: Ledger, st: OrderState, parsed: dict[int, Any] | None = None) -> tuple[Any, Settlement | None]:
    """The order's settlement state and batch; ``parsed`` keeps batches already parsed (one batch
    settles up to a hundred orders: a scan over orders parses each once)."""
    nonce = st.row.nonce
    if nonce is None:
        return None, None
    if parsed is not None and nonce in parsed:
        return parsed[nonce]
    sst = ledger.settlement_state(nonce)
    out = (None, None) if sst is None else (sst, settlement_from_json(json.loads(sst.row.body)))
    if parsed is not None:
        parsed[nonce] = out
    return out


def order_summary(ledger: Ledger, order_id: int, now: int | None = None,
                  parsed: dict[int, Any] | None = None) -> dict[str, Any]:
    """``order_entry`` plus what a list of orders shows: counts, the timeline, when the current
    phase ends, the settlement nonce and the winner once a settlement names one."""
    st = _state(ledger, order_id)
    entry = order_entry(ledger, order_id, now, st)
    tl = st.tl
    tl_json = {k: getattr(tl, k) for k in tl.__dataclass_fields__}
    end_key = PHASE_END[entry["phase"]]
    _st, settlement = _settlement_of(ledger, st, parsed)
    item = next((o for o in settlement.orders if o.order_id == order_id), None) if settlement else None
    winner = None if item is None or int(item.winner, 16) == 0 else to_checksum_address(item.winner)
    return {**entry, "timeline": tl_json, "phaseEnd": tl_json[end_key] if end_key else None,
            "claims": len(st.claims), "models": len(st.reveals), "validations": len(st.vreveals),
            "challenges": len(st.challenges), "nonce": st.row.nonce, "winner": winner}


def _order_matches(ledger: Ledger, oid: int, now: int, phase_filter: str | None, status: str | None,
                   client: str | None, miner: str | None) -> bool:
    st = ledger.order_state(oid)
    if st is None:
        return False
    label, cancelled = st.status.label, bool(st.row.cancelled)
    if status is not None and (status == "cancelled") != cancelled:
        return False
    if status not in (None, "cancelled") and label != status:
        return False
    if phase_filter is not None:
        # a phase is where an order stands in its cycle: closed orders have none (as FetchOrders)
        if label not in ACTIVE_STATUSES or cancelled:
            return False
        if phase_filter != "active" and phase(st.order, st.row.t3, now).value != phase_filter:
            return False
    if client is not None and not _same(st.order.client, client):
        return False
    if miner is not None and bytes.fromhex(miner[2:]) not in st.claims:
        return False
    return True


def _matching(ledger: Ledger, keys: list[int], now: int, phase_filter: str | None, status: str | None,
              client: str | None, miner: str | None) -> list[int]:
    return [k for k in keys if _order_matches(ledger, k, now, phase_filter, status, client, miner)]


def _candidates(ledger: Ledger, phase_filter: str | None, status: str | None, client: str | None,
                miner: str | None) -> list[int]:
    """Order ids that may pass the filters, highest first. Orders with a phase are all in the
    working state; archived ones are narrowed by the archive's columns and account index before
    any is read back."""
    open_ids = ledger.open_order_ids()[::-1]
    if phase_filter is not None or status in ACTIVE_STATUSES:
        return open_ids
    arch = ledger.archived_order_ids(status=Status[status.upper()] if status in ("settled", "skipped") else None,
                                     cancelled=True if status == "cancelled" else None, client=client,
                                     account=miner)
    return sorted(open_ids + arch, reverse=True)


def list_orders(ledger: Ledger, *, phase_filter: str | None = None, status: str | None = None,
                client: str | None = None, miner: str | None = None, limit: int | None = None,
                cursor: int | None = None, sort: str = "newest", now: int | None = None) -> dict[str, Any]:
    """Every order that passes the filters, newest (highest id) first; ``cursor`` is the id a page
    stops before (``nextCursor`` of the page before), so paging stays stable while orders arrive.
    ``sort="reward"`` is the paper's FetchOrders: orders in training, best reward per second first."""
    now = ledger.time if now is None else now
    if sort == "reward":
        keys = [o.order_id for o in ledger.fetch_orders(now=now)]
    else:
        keys = _candidates(ledger, phase_filter, status, client, miner)
    if phase_filter is None and status is None and client is None and miner is None:
        matching = keys   # nothing to filter: no order is read back to count them
    else:
        matching = _matching(ledger, keys, now, phase_filter, status, client, miner)
    total = len(matching)
    if cursor is not None:
        matching = [k for k in matching if k < cursor]
    page = matching[:limit] if limit is not None else matching
    more = limit is not None and len(matching) > limit
    parsed: dict[int, Any] = {}
    return {"orders": [order_summary(ledger, k, now, parsed) for k in page],
            "nextCursor": page[-1] if more and sort == "newest" else None, "total": total}


def _roles_in(st: OrderState, order: T.Order, members: tuple[str, ...], address: str) -> list[str]:
    """What ``address`` was in one order (several at once is possible: a member may also stake)."""
    roles = []
    raw = bytes.fromhex(address[2:])
    if _same(order.client, address):
        roles.append("client")
    if raw in st.claims:
        roles.append("miner")
    if any(v == raw for v, _mid in st.vreveals):
        roles.append("validator")
    if raw in st.challenges:
        roles.append("challenger")
    if any(_same(m, address) for m in members):
        roles.append("committee")
    return roles


def order_outcome(ledger: Ledger, order_id: int) -> dict[str, Any]:
    """How order ``order_id`` ended, from its settlement: the winner with its standing score, what
    the order paid by address (the committee's tax shares included: ``Settlement.paid``), the
    slashes and challenge verdicts it caused, and where the settlement stands. Before the ledger
    built a settlement every outcome field is empty. KeyError for an unknown order."""
    from pot.protocol.finalize import NeedsVerification, model_scores

    rec = _state(ledger, order_id)
    order = rec.order
    st, settlement = _settlement_of(ledger, rec)
    out: dict[str, Any] = {"orderId": order_id, "status": rec.status.label, "cancelled": bool(rec.row.cancelled),
                           "reward": order.reward, "nonce": rec.row.nonce, "executed": False, "txHash": None,
                           "winner": None, "winningMid": None, "winningScore": None, "perMember": 0,
                           "members": 0, "paid": [], "slashes": [], "verdicts": [], "scores": [], "batchOrders": 0}
    if settlement is None:
        return out
    item = next(o for o in settlement.orders if o.order_id == order_id)
    has_winner = int(item.winner, 16) != 0
    try:
        standing = model_scores(ledger.cycle(order_id))
    except NeedsVerification:
        standing = {}
    score = standing.get(bytes(item.winning_mid)) if has_winner else None
    # every revealed model's standing score: what a losing miner compares its own with
    scores = [{"mid": _h(r.mid), "miner": to_checksum_address(r.miner), "score": standing.get(r.mid)}
              for r in sorted(rec.reveals.values(), key=lambda r: r.seq)]
    members = settlement.members
    paid = []
    for p in settlement.paid(order_id):
        roles = _roles_in(rec, order, members, p.to)
        if has_winner and _same(p.to, item.winner):
            roles.insert(0, "winner")
        paid.append({"to": to_checksum_address(p.to), "amount": p.amount, "roles": roles})
    executed = bool(st.row.executed)
    out.update({"executed": executed, "txHash": _h(st.row.tx_hash) if st.row.tx_hash is not None else None,
                "applied": rec.status is Status.SETTLED if executed else None,
                "winner": to_checksum_address(item.winner) if has_winner else None,
                "winningMid": _h(item.winning_mid) if has_winner else None, "winningScore": score,
                "perMember": item.per_member, "members": len(members), "paid": paid,
                "slashes": [s.as_dict() for s in settlement.slashes if s.order_id == order_id],
                "verdicts": [v.as_dict() for v in settlement.verdicts if v.order_id == order_id],
                "scores": scores, "batchOrders": len(settlement.orders)})
    return out


def settlement_summary(ledger: Ledger, nonce: int) -> dict[str, Any]:
    """One settlement as a list shows it: its orders, what it paid by address over all of them
    (tax shares included), its slashes and verdicts, signatures and where it stands."""
    st = ledger.settlement_state(nonce)
    if st is None:
        raise KeyError(nonce)
    row = st.row
    settlement = settlement_from_json(json.loads(row.body))
    paid: dict[str, int] = {}
    for oid in settlement.order_ids:
        for p in settlement.paid(oid):
            paid[p.to] = paid.get(p.to, 0) + p.amount
    skipped = [oid for oid in st.order_ids if row.executed
               and (ledger.order_status(oid) or (None,))[0] is Status.SKIPPED]
    return {"nonce": nonce, "orderIds": st.order_ids, "executed": bool(row.executed),
            "txHash": _h(row.tx_hash) if row.tx_hash is not None else None,
            "digest": _h(row.digest), "epoch": settlement.epoch, "deadline": settlement.deadline,
            "signatures": len(st.sigs), "threshold": ledger.config.threshold,
            "paid": [{"to": to, "amount": a} for to, a in paid.items()], "total": sum(paid.values()),
            "slashes": [s.as_dict() for s in settlement.slashes],
            "verdicts": [v.as_dict() for v in settlement.verdicts], "skipped": skipped}


def list_settlements(ledger: Ledger, *, limit: int = 20, cursor: int | None = None,
                     executed: bool | None = None) -> dict[str, Any]:
    """Settlements newest (highest nonce) first; ``cursor`` as in ``list_orders``."""
    nonces = [n for n in ledger.settlement_nonces()
              if executed is None or ledger.settlement_executed(n) == executed]
    total = len(nonces)
    if cursor is not None:
        nonces = [n for n in nonces if n < cursor]
    page = nonces[:limit]
    return {"settlements": [settlement_summary(ledger, n) for n in page],
            "nextCursor": page[-1] if len(nonces) > limit else None, "total": total}


def account_order_ids(ledger: Ledger, address: str) -> list[int]:
    """The orders ``address`` may have a part in, highest first: every open one (a bounded set),
    the archived ones the archive's account index names, and those of settlements not executed yet
    that tax for it as a member. What an account's page costs is its own history."""
    ids = set(ledger.open_order_ids()) | set(ledger.archived_order_ids(account=address))
    for p in ledger.pending_settlements():
        if any(_same(m, address) for m in p["settlement"].members):
            ids.update(p["orderIds"])
    return sorted(ids, reverse=True)


def account(ledger: Ledger, address: str, *, limit: int = 50) -> dict[str, Any]:
    """What the ledger knows of ``address``: its stake and roles, what settlements paid it (the
    executed ones: ``earned``; the rest: ``pending``), its slashes, and the orders it took part
    in, newest first (at most ``limit`` of each list; the totals count everything)."""
    address = to_checksum_address(address)
    info = ledger.node_info(address)
    node_view = None if info is None else {
        **info, "roleNames": [name for bit, name in sorted(T.ROLE_NAMES.items()) if info["roles"] & bit]}
    members = ledger.config.committee
    orders, earnings, slashes = [], [], []
    earned = pending = slashed = 0
    parsed: dict[int, Any] = {}
    for key in account_order_ids(ledger, address):
        rec = ledger.order_state(key)
        if rec is None:
            continue
        order = rec.order
        st, settlement = _settlement_of(ledger, rec, parsed)
        roles = _roles_in(rec, order, settlement.members if settlement else (), address)
        if not roles:
            continue
        executed = bool(st and st.row.executed)
        applied = executed and rec.status is Status.SETTLED
        if settlement is not None:
            amount = sum(p.amount for p in settlement.paid(int(key)) if _same(p.to, address))
            if amount:
                if applied:
                    earned += amount
                elif not executed:
                    pending += amount
                earnings.append({"orderId": int(key), "nonce": rec.row.nonce, "amount": amount, "source": "payout",
                                 "executed": executed, "applied": applied})
            for s in settlement.slashes:
                if s.order_id != int(key):
                    continue
                # a slash takes at most the stake that is there (docs/SETTLEMENT.md): amounts are upper bounds
                if _same(s.staker, address):
                    slashed += s.amount if executed else 0
                    slashes.append({**s.as_dict(), "nonce": rec.row.nonce, "executed": executed})
                if _same(s.to, address):
                    earned += s.amount if executed else 0
                    pending += 0 if executed else s.amount
                    earnings.append({"orderId": int(key), "nonce": rec.row.nonce, "amount": s.amount,
                                     "source": "slash", "executed": executed, "applied": executed})
        item = next((o for o in settlement.orders if o.order_id == int(key)), None) if settlement else None
        if item is not None and int(item.winner, 16) and _same(item.winner, address):
            roles.insert(0, "winner")
        if roles != ["committee"]:  # every order taxes for the committee: list only real parts
            orders.append({"orderId": int(key), "roles": roles, "status": rec.status.label,
                           "cancelled": bool(rec.row.cancelled), "phase": phase(order, rec.row.t3, ledger.time).value,
                           "reward": order.reward})
    return {"address": address, "node": node_view, "member": address in members, "earned": earned,
            "pending": pending, "slashed": slashed, "orderCount": len(orders),
            "orders": orders[:limit], "earnings": earnings[:limit], "slashes": slashes[:limit]}


def _members(c) -> list[dict[str, Any]]:
    return [{"account": m, "publicKey": _h(c.keys[i]) if c.keys and c.keys[i] else None,
             "endpoint": (c.endpoints[i] or None) if c.endpoints else None,
             "apiUrl": (c.api_urls[i] or None) if c.api_urls else None} for i, m in enumerate(c.members)]


def committee(ledger: Ledger) -> dict[str, Any]:
    """The current committee (``GET /v1/committee/members``): epoch, k, members with their keys,
    endpoints and API URLs. Nothing in it moves within an epoch, so honest replicas in the same
    epoch answer byte for byte alike whatever their ledger height: what ``CommitteeClient``
    follows a committee change by."""
    c = ledger.committee()
    return {"epoch": c.epoch, "threshold": c.threshold, "n": c.n, "f": c.f, "members": _members(c)}


def epoch_status(ledger: Ledger) -> dict[str, Any]:
    """The committee's epoch (docs/COMMITTEE.md): its members (PBFT order, with keys and
    endpoints), k, whether settling is paused, and every committee change of the epoch with its
    votes, deadline and status (voting, decided, confirmed, void); ``next``: the committee a
    confirmed change switches to at the next PBFT checkpoint."""
    c = ledger.committee()
    members = _members(c)
    changes = []
    for ch in ledger.committee_changes():
        change, nxt = ch["change"], ch["next"]
        changes.append({"digest": _h(ch["digest"]), "status": ch["status"], "kind": change.kind.value,
                        "epoch": change.epoch, "removed": list(change.removed), "added": ch["joins"],
                        "threshold": change.threshold, "deadline": ch["deadline"], "votes": len(ch["voters"]),
                        "needed": c.threshold, "voters": ch["voters"], "decidedSeq": ch["decidedSeq"],
                        "next": None if nxt is None else nxt.as_json()})
    pending = ledger.pending_committee()
    return {"epoch": c.epoch, "threshold": c.threshold, "n": c.n, "f": c.f, "members": members,
            "settlingPaused": any(ch["status"] in ("decided", "confirmed") for ch in changes),
            "changes": changes, "pending": None if pending is None else pending.as_json(),
            "ledgerTime": ledger.time, "ledgerSeq": ledger.seq}
