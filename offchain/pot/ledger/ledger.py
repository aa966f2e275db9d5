"""The global ledger L of the paper as a deterministic state machine.

``Ledger.apply(op, ledger_time) -> Result``: an op is a chain event, a signed participant
message, a committee VerifyResult, a settlement signature or a Tick. An accepted op changes
the state and is appended to the op log; a rejected op changes nothing and says why.
The state is a plain JSON-able tree, so its canonical JSON is the snapshot for PBFT state
transfer and its hash (with the configuration's) is the checkpoint digest.

Persistence (SQLite, WAL): each ``apply_many`` is one transaction that appends the accepted
ops and, every ``checkpoint_every`` ops, the whole state. Reopening loads the last state and
replays the ops after it; a crash at any point loses at most the uncommitted batch, never half
of one (``apply`` is deterministic, so replay rebuilds exactly what was there).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from pot.ledger.draft import DraftDict
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.committee import max_faulty
from pot.protocol.eip712 import Domain, recover_digest
from pot.protocol.finalize import OrderCycle, Params, disputed_models, plan
from pot.protocol.ids import claim_commitment, validation_commitment
from pot.protocol.settlement import Settlement, settlement_from_json, settlement_to_json
from pot.protocol.timeline import Phase, phase, t3_valid, timeline
from pot.protocol.types import Reason, Result

SCHEMA_VERSION = 1

log = logging.getLogger("pot.ledger")

#: Refusals ``precheck`` gives that the ledger would give to the same op at any later time
#: (windows only close, seen messages stay seen, closed orders stay closed, signatures and
#: authorisations do not change), or that only a fact the sender must bring first can lift (its
#: stake, its order in the ledger): the API refuses these before consensus. The others (no
#: commitment yet, unknown model or nonce, ...) may still change while the op waits in PBFT.
FINAL_REASONS = frozenset({
    Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.WRONG_WINDOW, Reason.UNKNOWN_ORDER, Reason.NOT_ENOUGH_STAKE,
    Reason.REPLAY, Reason.NOT_AUTHORIZED, Reason.DUPLICATE, Reason.ORDER_CLOSED, Reason.INVALID, Reason.TOO_LARGE})


def _h(b: bytes) -> str:
    return "0x" + b.hex()


def _b(s: str) -> bytes:
    return bytes.fromhex(s[2:])


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class LedgerConfig:
    """What every replica must share: deployment domains, the committee and the parameters."""
    chain_id: int
    order_book: str
    reward_multisig: str
    committee: tuple[str, ...]
    params: Params = Params()
    #: signatures needed on a settlement; default 2f+1 for n = 3f+1
    threshold: int | None = None
    #: chain events enter only as ChainAttestations of f+1 members (the replicated committee);
    #: off for a single trusted process that applies the chain bridge's ops directly
    attested_chain_events: bool = False
    #: RewardMultisig's membership epoch the committee signs settlements for (1 after deployment)
    epoch: int = 1

    def __post_init__(self) -> None:
        committee = tuple(to_checksum_address(m) for m in self.committee)
        if len(set(committee)) != len(committee):
            raise ValueError("committee members must be distinct")
        object.__setattr__(self, "committee", committee)
        if self.threshold is None:
            object.__setattr__(self, "threshold", self.quorum)
        if not 1 <= self.threshold <= max(len(committee), 1):
            raise ValueError("threshold must be in [1, n]")

    @property
    def f(self) -> int:
        return max_faulty(len(self.committee))

    @property
    def quorum(self) -> int:
        """2f+1 equal VerifyResults make a PoT.Verify result stand."""
        return 2 * self.f + 1

    @property
    def attest_quorum(self) -> int:
        """f+1 identical ChainAttestations: at least one of them comes from a correct member."""
        return self.f + 1

    @property
    def message_domain(self) -> Domain:
        return Domain.messages(self.chain_id, self.order_book)

    @property
    def multisig_domain(self) -> Domain:
        return Domain.multisig(self.chain_id, self.reward_multisig)

    def as_json(self) -> dict[str, Any]:
        out = {"chainId": self.chain_id, "orderBook": to_checksum_address(self.order_book),
                "rewardMultisig": to_checksum_address(self.reward_multisig),
                "committee": list(self.committee), "threshold": self.threshold,
                "epoch": self.epoch, "params": self.params.as_json()}
        if self.attested_chain_events:  # only when set, so existing ledgers keep their digest
            out["attestedChainEvents"] = True
        return out


def _empty_state() -> dict[str, Any]:
    return {"version": SCHEMA_VERSION, "seq": 0, "time": 0, "nodes": {}, "orders": {}, "models": {},
            "nextNonce": 1, "settlements": {}}


class _Reject(Exception):
    def __init__(self, reason: Reason, text: str) -> None:
        self.result = Result.rejected(reason, text)


class Ledger:
    """The global ledger. ``path=None`` keeps it in memory only (simulations, tests)."""

    #: precheck: a window not open yet is taken as open (the op may execute later)
    _optimistic_windows = False

    def __init__(self, config: LedgerConfig, path: str | None = None, *, checkpoint_every: int = 256,
                 write_hook: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._members = set(config.committee)
        self._domain = config.message_domain
        self._config_json = _canonical(config.as_json())
        self._config_hash = hashlib.sha256(self._config_json).digest()
        self._checkpoint_every = checkpoint_every
        self._hook = write_hook or (lambda point: None)
        self._orders: dict[str, T.Order] = {}
        self.s = _empty_state()
        self._db: sqlite3.Connection | None = None
        # rollback point of a failed op: a state and the accepted ops since (see _rollback)
        self._base = b""
        self._journal: list[tuple[Any, int]] = []
        if path is not None:
            self._open(path)
        self._rebase()

    # --- persistence ----------------------------------------------------------------------

    def _open(self, path: str) -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a replica replies only after its state is durable
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS ops (seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, "
                   "op BLOB NOT NULL)")
        self._db = db
        row = db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        if row is None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO meta VALUES ('config', ?)", (self._config_json,))
            db.execute("INSERT INTO meta VALUES ('state', ?)", (_canonical(self.s),))
            db.execute("COMMIT")
            return
        if bytes(row[0]) != self._config_json:
            raise ValueError(f"ledger database {path} belongs to another configuration")
        self._load_state(json.loads(db.execute("SELECT value FROM meta WHERE key='state'").fetchone()[0]))
        for seq, time, raw in db.execute("SELECT seq, time, op FROM ops WHERE seq > ? ORDER BY seq",
                                         (self.s["seq"],)).fetchall():
            res = self._apply(codec.decode(bytes(raw)), time)
            if not res.ok or self.s["seq"] != seq:
                raise RuntimeError(f"ledger replay diverged at op {seq}: {res.text}")

    def _load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != SCHEMA_VERSION:
            raise ValueError("unsupported ledger state version")
        self.s = state
        self._orders = {k: codec.from_json(r["order"]) for k, r in state["orders"].items()}
        self._rebase()

    def _rebase(self) -> None:
        self._base = _canonical(self.s)
        self._journal = []

    def _rollback(self) -> None:
        """Back to the state before the op that just failed: the base state plus the accepted ops
        since, replayed (apply is deterministic). Costs nothing until an op fails."""
        journal = self._journal
        self.s = json.loads(self._base)
        self._orders = {k: codec.from_json(r["order"]) for k, r in self.s["orders"].items()}
        self._journal = []
        for op, t in journal:
            res = self._apply(op, t)
            if not res.ok:
                raise RuntimeError(f"ledger rollback diverged: {res.text}")

    def close(self) -> None:
        if self._db is not None:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE meta SET value=? WHERE key='state'", (_canonical(self.s),))
            self._db.execute("COMMIT")
            self._db.close()
            self._db = None

    # --- apply ----------------------------------------------------------------------------

    def apply(self, op: T.Op, ledger_time: int) -> Result:
        """Apply one op at ``ledger_time`` (the PBFT batch time, seconds) and persist it."""
        return self.apply_many([op], ledger_time)[0]

    def precheck(self, op: T.Op, ledger_time: int) -> Result:
        """What ``apply`` would answer for ``op`` at ``ledger_time`` or later, changing nothing: the
        same handlers run on a copy-on-write view of the state. A window that has not opened yet
        counts as open, so a refusal here in ``FINAL_REASONS`` is one the ledger would also give
        when the op executes (the API uses it to refuse before consensus)."""
        scratch = copy.copy(self)
        scratch.s = DraftDict(self.s)
        scratch._orders = DraftDict(self._orders)
        scratch._db = None
        scratch._journal = []
        scratch._optimistic_windows = True
        return scratch._apply(op, max(int(ledger_time), self.s["time"]))

    def apply_many(self, ops: Sequence[T.Op | bytes], ledger_time: int) -> list[Result]:
        """Apply a batch in order at one ledger time, as one durable transaction.

        Items may be decoded ops or their wire bytes (a malformed frame gets a MALFORMED result)."""
        if type(ledger_time) is not int or ledger_time < 0:
            raise ValueError("ledger_time must be a non-negative int (seconds)")
        results: list[Result] = []
        accepted: list[tuple[int, bytes]] = []
        for item in ops:
            raw = None
            if isinstance(item, (bytes, bytearray, memoryview)):
                raw = bytes(item)
                try:
                    item = codec.decode(raw)
                except codec.DecodeError as exc:
                    results.append(Result.rejected(Reason.MALFORMED, str(exc)))
                    continue
            res = self._apply(item, ledger_time)
            results.append(res)
            if res.ok and self._db is not None:
                accepted.append((self.s["seq"], raw if raw is not None else codec.encode(item)))
        if self._db is not None and accepted:
            self._persist(accepted, ledger_time)
        if len(self._journal) >= self._checkpoint_every:
            self._rebase()
        return results

    def _persist(self, accepted: list[tuple[int, bytes]], ledger_time: int) -> None:
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            for seq, raw in accepted:
                db.execute("INSERT INTO ops VALUES (?, ?, ?)", (seq, ledger_time, raw))
                self._hook("op")
            first = accepted[0][0]
            if (first - 1) // self._checkpoint_every != self.s["seq"] // self._checkpoint_every:
                db.execute("UPDATE meta SET value=? WHERE key='state'", (_canonical(self.s),))
                self._hook("state")
            self._hook("commit")
            db.execute("COMMIT")
            self._hook("committed")
        except BaseException:
            # memory already holds the batch but the disk does not: rebuild from the disk so the
            # two never disagree (PBFT will re-execute the batch from its own log)
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._reload()
            raise

    def _reload(self) -> None:
        assert self._db is not None
        db = self._db
        self._load_state(json.loads(db.execute("SELECT value FROM meta WHERE key='state'").fetchone()[0]))
        for seq, time, raw in db.execute("SELECT seq, time, op FROM ops WHERE seq > ? ORDER BY seq",
                                         (self.s["seq"],)).fetchall():
            self._apply(codec.decode(bytes(raw)), time)

    def _apply(self, op: Any, t: int) -> Result:
        if t < self.s["time"]:
            return Result.rejected(Reason.TIME_BACKWARDS,
                                   f"ledger time {t} is before the last accepted time {self.s['time']}")
        handler = self._HANDLERS.get(type(op))
        if handler is None:
            return Result.rejected(Reason.MALFORMED, f"not a ledger op: {type(op).__name__}")
        if self.config.attested_chain_events and type(op) in T.CHAIN_EVENTS:
            return Result.rejected(Reason.NOT_AUTHORIZED, f"{type(op).__name__} enters this ledger only as "
                                   f"ChainAttestations of {self.config.attest_quorum} committee members")
        try:
            res = handler(self, op, t)  # handlers check everything before they mutate
        except _Reject as rej:
            return rej.result
        except Exception as exc:  # noqa: BLE001 - a bug must not leave half an op behind
            # every replica fails alike (apply is deterministic), so all of them refuse the op
            # and carry on from the same state instead of stopping at this batch
            log.exception("%s failed inside the ledger at time %d; rolled back", type(op).__name__, t)
            self._rollback()
            return Result.rejected(Reason.FAILED, f"{type(op).__name__} failed inside the ledger and changed "
                                   f"nothing: {type(exc).__name__}: {exc}")
        self.s["time"] = t
        self.s["seq"] += 1
        self._journal.append((op, t))
        return res

    # --- helpers --------------------------------------------------------------------------

    def _rec(self, order_id: int, *, open_only: bool = True) -> tuple[dict, T.Order]:
        rec = self.s["orders"].get(str(order_id))
        if rec is None:
            raise _Reject(Reason.UNKNOWN_ORDER, f"order {order_id} is not in the ledger")
        if open_only and (rec["status"] != "open" or rec["cancelled"]):
            raise _Reject(Reason.ORDER_CLOSED, f"order {order_id} is {rec['status']}"
                          + (" (cancelled)" if rec["cancelled"] else ""))
        return rec, self._orders[str(order_id)]

    def _need_stake(self, account: str, role: int) -> dict:
        node = self.s["nodes"].get(account)
        need = self.config.params.min_stake.get(role, 0)
        if node is None or not node["roles"] & role or node["stake"] < need:
            have = 0 if node is None else node["stake"]
            raise _Reject(Reason.NOT_ENOUGH_STAKE, f"{account} is not staked as {T.ROLE_NAMES[role]} "
                          f"(needs {need}, has {have})")
        return node

    def _window(self, t: int, start: int | None, end: int | None, what: str) -> None:
        closed = end is not None and t >= end
        if closed or (not self._optimistic_windows and (start is None or t < start)):
            raise _Reject(Reason.WRONG_WINDOW, f"{what} window is [{start}, {end}), ledger time is {t}")

    @staticmethod
    def _not_seen(rec: dict, digest_hex: str) -> None:
        # the EIP-712 digest is the message's identity: the same message twice is a replay, and
        # an older ClaimCommit replayed after a newer one must not roll the claim back
        if digest_hex in rec["seen"]:
            raise _Reject(Reason.REPLAY, "this exact message was already accepted")

    # --- signed participant messages ------------------------------------------------------

    def _on_signed(self, op: T.Signed, t: int) -> Result:
        msg = op.message
        digest = msg.digest(self._domain)
        try:
            signer = recover_digest(digest, op.signature)
        except ValueError as exc:
            raise _Reject(Reason.BAD_SIGNATURE, f"malformed signature: {exc}") from None
        if signer != bytes.fromhex(msg.signer[2:]):
            raise _Reject(Reason.BAD_SIGNATURE, f"signature is not {msg.signer}'s for this deployment "
                          f"(chain {self.config.chain_id}, OrderBook {self._domain.verifying_contract})")
        return self._MSG_HANDLERS[type(msg)](self, msg, _h(digest), t)

    def _claim_commit(self, m: T.ClaimCommit, dh: str, t: int) -> Result:
        rec, order = self._rec(m.order_id)
        tl = timeline(order, rec["t3"])
        self._window(t, tl.t0, tl.train_end, "training (ClaimCommit)")
        self._need_stake(m.miner, T.MINER)
        self._not_seen(rec, dh)
        replaced = m.miner in rec["claims"]
        # a later commit replaces the earlier one and takes a later place in ledger order
        rec["claims"][m.miner] = {"commitment": _h(m.commitment), "seq": self.s["seq"] + 1}
        rec["seen"][dh] = 1
        return Result.accepted("claim replaced" if replaced else "claim committed")

    def _claim_reveal(self, m: T.ClaimReveal, dh: str, t: int) -> Result:
        rec, order = self._rec(m.order_id)
        tl = timeline(order, rec["t3"])
        self._window(t, tl.train_end, tl.reveal_end, "model reveal (ClaimReveal)")
        self._need_stake(m.miner, T.MINER)
        self._not_seen(rec, dh)
        claim = rec["claims"].get(m.miner)
        if claim is None:
            # a model seen after somebody's reveal cannot be claimed: the thief has no commitment
            raise _Reject(Reason.NO_COMMITMENT, f"{m.miner} has no ClaimCommit for order {m.order_id}")
        if m.miner in rec["reveals"]:
            raise _Reject(Reason.DUPLICATE, f"{m.miner} already revealed for order {m.order_id}")
        if _h(claim_commitment(m.order_id, m.miner, m.mid, m.salt)) != claim["commitment"]:
            raise _Reject(Reason.COMMITMENT_MISMATCH, "keccak(orderId, miner, mid, salt) does not open "
                          "the miner's commitment")
        midh = _h(m.mid)
        if any(r["mid"] == midh for r in rec["reveals"].values()):
            raise _Reject(Reason.DUPLICATE, f"model {midh} was already revealed in order {m.order_id}")
        rec["reveals"][m.miner] = {"mid": midh, "salt": _h(m.salt), "cid": m.model_cid,
                                   "seq": self.s["seq"] + 1}
        self.s["models"].setdefault(midh, m.model_cid)
        rec["seen"][dh] = 1
        return Result.accepted("model revealed")

    def _model_owner(self, rec: dict, midh: str, order_id: int) -> str:
        for miner, r in rec["reveals"].items():
            if r["mid"] == midh:
                return miner
        raise _Reject(Reason.UNKNOWN_MODEL, f"model {midh} was not revealed in order {order_id}")

    def _validation_commit(self, m: T.ValidationCommit, dh: str, t: int) -> Result:
        rec, order = self._rec(m.order_id)
        tl = timeline(order, rec["t3"])
        self._window(t, tl.t3, tl.validate_end, "validation (ValidationCommit)")
        self._need_stake(m.validator, T.VALIDATOR)
        self._not_seen(rec, dh)
        midh = _h(m.mid)
        if self._model_owner(rec, midh, m.order_id) == m.validator:
            raise _Reject(Reason.NOT_AUTHORIZED, "a miner may not validate its own model")
        key = f"{m.validator}:{midh}"
        if key in rec["vcommits"]:
            raise _Reject(Reason.DUPLICATE, f"{m.validator} already committed a validation of {midh}")
        rec["vcommits"][key] = {"commitment": _h(m.commitment), "seq": self.s["seq"] + 1}
        rec["seen"][dh] = 1
        return Result.accepted("validation committed")

    def _validation_reveal(self, m: T.ValidationReveal, dh: str, t: int) -> Result:
        rec, order = self._rec(m.order_id)
        tl = timeline(order, rec["t3"])
        self._window(t, tl.validate_end, tl.validation_reveal_end, "validation reveal (ValidationReveal)")
        node = self._need_stake(m.validator, T.VALIDATOR)
        self._not_seen(rec, dh)
        midh = _h(m.mid)
        key = f"{m.validator}:{midh}"
        vc = rec["vcommits"].get(key)
        if vc is None:
            raise _Reject(Reason.NO_COMMITMENT, f"{m.validator} has no ValidationCommit for {midh}")
        if key in rec["vreveals"]:
            raise _Reject(Reason.DUPLICATE, f"{m.validator} already revealed its validation of {midh}")
        # the commitment includes the validator's address: a commitment copied from another
        # validator can never be opened by the copier
        if _h(validation_commitment(m.order_id, m.validator, m.mid, m.score, m.salt)) != vc["commitment"]:
            raise _Reject(Reason.COMMITMENT_MISMATCH, "keccak(orderId, validator, mid, score, salt) does "
                          "not open the validator's commitment")
        if m.v_stake == 0:
            raise _Reject(Reason.INVALID, "vStake must be positive")
        free = node["stake"] - node["locked"]
        if m.v_stake > free:
            raise _Reject(Reason.NOT_ENOUGH_STAKE, f"vStake {m.v_stake} exceeds unlocked stake {free}")
        rec["vreveals"][key] = {"validator": m.validator, "mid": midh, "score": m.score, "salt": _h(m.salt),
                                "vStake": m.v_stake, "seq": self.s["seq"] + 1}
        node["locked"] += m.v_stake
        rec["seen"][dh] = 1
        return Result.accepted("validation revealed")

    def _cancel(self, m: T.CancelRequest, dh: str, t: int) -> Result:
        rec, order = self._rec(m.order_id)
        if m.client != order.client:
            raise _Reject(Reason.NOT_AUTHORIZED, f"only the order's client {order.client} may cancel it")
        tl = timeline(order, rec["t3"])
        self._window(t, tl.train_end, None, "cancel")
        if rec["claims"]:
            raise _Reject(Reason.INVALID, f"order {m.order_id} has claims and cannot be cancelled")
        self._not_seen(rec, dh)
        rec["cancelled"] = True
        rec["seen"][dh] = 1
        return Result.accepted("cancelled; refunded at the next settlement")

    def _verify_result(self, m: T.VerifyResult, dh: str, t: int) -> Result:
        if m.replica not in self._members:
            raise _Reject(Reason.NOT_AUTHORIZED, f"{m.replica} is not a committee member")
        rec, _order = self._rec(m.order_id, open_only=False)
        midh = _h(m.mid)
        if rec["status"] != "verifying" or midh not in rec["pending"]:
            raise _Reject(Reason.NOT_PENDING, f"model {midh} of order {m.order_id} awaits no PoT.Verify")
        self._not_seen(rec, dh)
        votes = rec["votes"].setdefault(midh, {})
        if m.replica in votes:
            raise _Reject(Reason.DUPLICATE, f"{m.replica} already submitted a result for {midh}")
        votes[m.replica] = m.score
        rec["seen"][dh] = 1
        if sum(1 for s in votes.values() if s == m.score) >= self.config.quorum:
            rec["verified"][midh] = m.score
            rec["pending"].remove(midh)
            return Result.accepted(f"PoT.Verify result {m.score} stands ({self.config.quorum} replicas)")
        return Result.accepted("vote recorded")

    #: a member's attestations still short of f+1: bounds what a faulty member can make us store
    MAX_OPEN_ATTESTATIONS = 4096

    def _chain_attestation(self, m: T.ChainAttestation, dh: str, t: int) -> Result:
        if m.replica not in self._members:
            raise _Reject(Reason.NOT_AUTHORIZED, f"{m.replica} is not a committee member")
        try:
            op = codec.decode(m.op)
        except codec.DecodeError as exc:
            raise _Reject(Reason.MALFORMED, f"attested op: {exc}") from None
        if type(op) not in T.CHAIN_EVENTS:
            raise _Reject(Reason.INVALID, f"only chain events can be attested, not {type(op).__name__}")
        ch = self.s.get("chain") or {"applied": {}, "votes": {}, "open": {}}
        ref = _h(m.ref)
        if ref in ch["applied"]:
            raise _Reject(Reason.DUPLICATE, f"chain event {ref} was already applied")
        votes = ch["votes"].get(ref, {})
        if m.replica in votes:
            raise _Reject(Reason.DUPLICATE, f"{m.replica} already attested chain event {ref}")
        if ch["open"].get(m.replica, 0) >= self.MAX_OPEN_ATTESTATIONS:
            raise _Reject(Reason.TOO_LARGE, f"{m.replica} has {self.MAX_OPEN_ATTESTATIONS} attestations "
                          f"nobody else confirmed")
        op_hash = _h(hashlib.sha256(m.op).digest())
        agree = 1 + sum(1 for h in votes.values() if h == op_hash)
        quorum = self.config.attest_quorum
        if agree < quorum:
            self.s["chain"] = ch  # created lazily: ledgers without attestations keep their digest
            ch["votes"].setdefault(ref, {})[m.replica] = op_hash
            ch["open"][m.replica] = ch["open"].get(m.replica, 0) + 1
            return Result.accepted(f"attestation {agree}/{quorum} of {type(op).__name__} {ref}")
        # f+1 members saw exactly this event here: it is real. Apply it once, whatever the result
        # (a refused event, e.g. a duplicate order, is still decided and must not be retried).
        handler = self._HANDLERS[type(op)]
        try:
            res = handler(self, op, t)
            outcome = f"applied: {res.text}"
        except _Reject as rej:
            res = None
            outcome = f"refused by the ledger ({rej.result.reason_enum.name}: {rej.result.text})"
        self.s["chain"] = ch
        for member in votes:
            ch["open"][member] -= 1
            if not ch["open"][member]:
                del ch["open"][member]
        ch["votes"].pop(ref, None)
        ch["applied"][ref] = 1
        return Result.accepted(f"{type(op).__name__} {ref} attested by {quorum}; {outcome}",
                               nonces=res.nonces if res is not None else ())

    # --- committee ops --------------------------------------------------------------------

    def _settlement_signature(self, op: T.SettlementSignature, t: int) -> Result:
        st = self.s["settlements"].get(str(op.nonce))
        if st is None:
            raise _Reject(Reason.UNKNOWN_NONCE, f"no pending settlement with nonce {op.nonce}")
        if st["executed"]:
            raise _Reject(Reason.NOT_PENDING, f"settlement {op.nonce} was already executed")
        if op.signer not in self._members:
            raise _Reject(Reason.NOT_AUTHORIZED, f"{op.signer} is not a committee member")
        if op.signer in st["signatures"]:
            raise _Reject(Reason.DUPLICATE, f"{op.signer} already signed settlement {op.nonce}")
        try:
            ok = recover_digest(_b(st["digest"]), op.signature) == bytes.fromhex(op.signer[2:])
        except ValueError:
            ok = False
        if not ok:
            raise _Reject(Reason.BAD_SIGNATURE, f"not {op.signer}'s signature of settlement {op.nonce} "
                          f"for RewardMultisig {self.config.reward_multisig}")
        st["signatures"][op.signer] = _h(op.signature)
        return Result.accepted(f"{len(st['signatures'])}/{self.config.threshold} signatures")

    # --- chain events ---------------------------------------------------------------------

    def _order_placed(self, op: T.OrderPlaced, t: int) -> Result:
        o = op.order
        key = str(o.order_id)
        if key in self.s["orders"]:
            raise _Reject(Reason.DUPLICATE, f"order {o.order_id} already placed")
        p = self.config.params
        if o.reward == 0 or o.train_duration == 0 or o.validate_duration == 0 or o.challenge_duration == 0:
            raise _Reject(Reason.INVALID, "reward and every duration must be positive")
        if o.reveal_duration < p.min_reveal_duration:
            raise _Reject(Reason.INVALID, f"revealDuration {o.reveal_duration} < minimum "
                          f"{p.min_reveal_duration}")
        self.s["orders"][key] = {
            "order": codec.to_json(o), "t3": None, "testCid": None, "status": "open", "cancelled": False,
            "claims": {}, "reveals": {}, "vcommits": {}, "vreveals": {}, "challenges": {}, "votes": {},
            "verified": {}, "pending": [], "seen": {}, "nonce": None, "placedSeq": self.s["seq"] + 1}
        self._orders[key] = o
        return Result.accepted("order placed")

    def _test_released(self, op: T.TestDataReleased, t: int) -> Result:
        rec, order = self._rec(op.order_id)
        if rec["t3"] is not None:
            raise _Reject(Reason.DUPLICATE, f"test data of order {op.order_id} already released")
        if not t3_valid(order, op.t3):
            tl = timeline(order, None)
            raise _Reject(Reason.WRONG_WINDOW, f"t3 {op.t3} outside test release window "
                          f"[{tl.reveal_end}, {tl.release_end})")
        rec["t3"] = op.t3
        rec["testCid"] = op.test_cid
        return Result.accepted("test data released")

    def _stake_changed(self, op: T.StakeChanged, t: int) -> Result:
        node = self.s["nodes"].setdefault(op.account, {"roles": 0, "stake": 0, "locked": 0})
        node["roles"] = op.roles
        node["stake"] = op.amount
        return Result.accepted("stake updated")

    def _challenge_committed(self, op: T.ChallengeCommitted, t: int) -> Result:
        rec, order = self._rec(op.order_id)
        tl = timeline(order, rec["t3"])
        # the chain checked the window by block time; ledger time is later (confirmations), never earlier
        self._window(t, tl.validation_reveal_end, None, "challenge commit")
        if op.challenger in rec["challenges"]:
            raise _Reject(Reason.DUPLICATE, f"{op.challenger} already challenged in order {op.order_id}")
        if op.c_stake == 0:
            raise _Reject(Reason.INVALID, "cStake must be positive")
        rec["challenges"][op.challenger] = {"commitment": _h(op.commitment), "cStake": op.c_stake,
                                            "vid": None, "seq": self.s["seq"] + 1}
        return Result.accepted("challenge committed")

    def _challenge_revealed(self, op: T.ChallengeRevealed, t: int) -> Result:
        rec, order = self._rec(op.order_id)
        tl = timeline(order, rec["t3"])
        self._window(t, tl.challenge_end, None, "challenge reveal")
        ch = rec["challenges"].get(op.challenger)
        if ch is None:
            raise _Reject(Reason.NO_COMMITMENT, f"{op.challenger} has no challenge in order {op.order_id}")
        if ch["vid"] is not None:
            raise _Reject(Reason.DUPLICATE, f"{op.challenger}'s challenge is already revealed")
        ch["vid"] = _h(op.vid)
        return Result.accepted("challenge revealed")

    def _settlement_executed(self, op: T.SettlementExecuted, t: int) -> Result:
        st = self.s["settlements"].get(str(op.nonce))
        if st is None:
            raise _Reject(Reason.UNKNOWN_NONCE, f"no settlement with nonce {op.nonce}")
        if st["executed"]:
            raise _Reject(Reason.DUPLICATE, f"settlement {op.nonce} already executed")
        extra = sorted(set(op.order_ids) - set(st["orderIds"]))
        if extra:
            raise _Reject(Reason.INVALID, f"settlement {op.nonce} settles {st['orderIds']}, "
                          f"the event says {list(op.order_ids)}")
        st["executed"] = True
        st["txHash"] = _h(op.tx_hash)
        applied = set(op.order_ids)
        skipped = [oid for oid in st["orderIds"] if oid not in applied]
        for oid in st["orderIds"]:
            rec = self.s["orders"][str(oid)]
            # an order the contract skipped (its client reclaimed it first) is closed all the same:
            # its escrow is gone, and nothing else may be paid from it
            rec["status"] = "settled" if oid in applied else "skipped"
            for v in rec["vreveals"].values():   # vStake is no longer at risk
                node = self.s["nodes"].get(v["validator"])
                if node is not None:
                    node["locked"] = max(0, node["locked"] - v["vStake"])
        return Result.accepted(f"settlement {op.nonce} executed"
                               + (f"; {len(skipped)} orders skipped on-chain" if skipped else ""))

    def _tick(self, op: T.Tick, t: int) -> Result:
        params = self.config.params
        reissued = self._reissue_expired(t)
        batch: list[OrderCycle] = []
        for key in sorted(self.s["orders"], key=int):
            rec = self.s["orders"][key]
            if rec["status"] not in ("open", "verifying"):
                continue
            if not rec["cancelled"]:
                if t < timeline(self._orders[key], rec["t3"]).final + params.finalize_delay:
                    continue
            if rec["status"] == "open":
                pending = [_h(m) for m in disputed_models(self.cycle(int(key)))
                           if _h(m) not in rec["verified"]]
                if pending:
                    rec["status"] = "verifying"
                    rec["pending"] = pending
                    rec["verifyingSince"] = t
                    continue
            elif rec["pending"]:
                # PoT.Verify's deadline: what 2f+1 replicas did not agree on by now is excluded
                if t < rec["verifyingSince"] + params.verify_timeout:
                    continue
                rec["excluded"] = sorted(rec["pending"])
                rec["pending"] = []
            batch.append(self.cycle(int(key)))
        if not batch:
            return Result.accepted(f"tick; re-issued settlements {reissued}" if reissued else "tick")
        first = self.s["nextNonce"]
        settlements = plan(batch, first_nonce=first, params=params, committee=self.config.committee,
                           threshold=self.config.threshold, epoch=self.config.epoch,
                           deadline=t + params.settlement_ttl)
        for settlement in settlements:
            self.s["settlements"][str(settlement.nonce)] = {
                "orderIds": list(settlement.order_ids), "settlement": settlement_to_json(settlement),
                "digest": _h(settlement.digest(self.config.multisig_domain)), "signatures": {},
                "executed": False, "txHash": None}
            for oid in settlement.order_ids:
                rec = self.s["orders"][str(oid)]
                rec["status"] = "settling"
                rec["nonce"] = settlement.nonce
        self.s["nextNonce"] = first + len(settlements)
        nonces = tuple(range(first, first + len(settlements)))
        return Result.accepted(f"settlements {first}..{nonces[-1]} for {len(batch)} orders", nonces=nonces)

    def _reissue_expired(self, t: int) -> list[int]:
        """Give every unexecuted settlement whose deadline passed a new one (same nonce and items,
        so at most one version ever executes); its signatures start over."""
        out = []
        for nonce, st in self.s["settlements"].items():
            if st["executed"] or st["settlement"]["deadline"] >= t:
                continue
            settlement = settlement_from_json(st["settlement"]).with_terms(
                epoch=self.config.epoch, deadline=t + self.config.params.settlement_ttl)
            st["settlement"] = settlement_to_json(settlement)
            st["digest"] = _h(settlement.digest(self.config.multisig_domain))
            st["signatures"] = {}
            out.append(int(nonce))
        return out

    _HANDLERS: dict[type, Callable[..., Result]] = {}
    _MSG_HANDLERS: dict[type, Callable[..., Result]] = {}

    # --- queries --------------------------------------------------------------------------

    @property
    def time(self) -> int:
        return self.s["time"]

    @property
    def seq(self) -> int:
        """Number of accepted ops so far."""
        return self.s["seq"]

    def order(self, order_id: int) -> T.Order | None:
        return self._orders.get(str(order_id))

    def cycle(self, order_id: int) -> OrderCycle:
        """The order's cycle data as ``pot.protocol.finalize`` takes it."""
        rec = self.s["orders"].get(str(order_id))
        if rec is None:
            raise KeyError(order_id)
        oid = int(order_id)
        claims = sorted(rec["claims"].items(), key=lambda kv: kv[1]["seq"])
        vals = sorted(rec["vreveals"].values(), key=lambda v: v["seq"])
        chs = sorted(rec["challenges"].items(), key=lambda kv: kv[1]["seq"])
        return OrderCycle(
            order=self._orders[str(order_id)], t3=rec["t3"],
            claims=tuple(T.ClaimCommit(oid, m, _b(c["commitment"])) for m, c in claims),
            reveals=tuple(T.ClaimReveal(oid, m, _b(r["mid"]), _b(r["salt"]), r["cid"])
                          for m, r in sorted(rec["reveals"].items(), key=lambda kv: kv[1]["seq"])),
            validations=tuple(T.ValidationReveal(oid, v["validator"], _b(v["mid"]), v["score"], _b(v["salt"]),
                                                 v["vStake"]) for v in vals),
            challenges=tuple(T.Challenge(oid, c, _b(x["commitment"]), x["cStake"],
                                         _b(x["vid"]) if x["vid"] else None) for c, x in chs),
            verified={_b(m): s for m, s in rec["verified"].items()},
            cancelled=rec["cancelled"], excluded=frozenset(_b(m) for m in rec.get("excluded", ())))

    def phase(self, order_id: int, now: int | None = None) -> Phase:
        rec = self.s["orders"][str(order_id)]
        return phase(self._orders[str(order_id)], rec["t3"], self.time if now is None else now)

    def fetch_orders(self, limit: int | None = None, now: int | None = None) -> list[T.Order]:
        """Manage.FetchOrders: orders still in training, best reward per second of training first."""
        now = self.time if now is None else now
        out = [self._orders[k] for k, r in self.s["orders"].items()
               if r["status"] == "open" and not r["cancelled"]
               and phase(self._orders[k], r["t3"], now) is Phase.TRAINING]
        # exact rational comparison (reward/trainDuration), ties by order id: same on every replica
        from functools import cmp_to_key

        def cmp(a: T.Order, b: T.Order) -> int:
            x, y = a.reward * b.train_duration, b.reward * a.train_duration
            return -1 if x > y else 1 if x < y else (a.order_id > b.order_id) - (a.order_id < b.order_id)
        out.sort(key=cmp_to_key(cmp))
        return out[:limit] if limit is not None else out

    def order_cycle_data(self, order_id: int) -> dict[str, Any]:
        """The paper's order cycle data ⟨order, phase, mList⟩, JSON-ready (API)."""
        rec = self.s["orders"].get(str(order_id))
        if rec is None:
            raise KeyError(order_id)
        order = self._orders[str(order_id)]
        tl = timeline(order, rec["t3"])
        models = []
        for miner, r in sorted(rec["reveals"].items(), key=lambda kv: kv[1]["seq"]):
            vals = [v for v in rec["vreveals"].values() if v["mid"] == r["mid"]]
            models.append({"mid": r["mid"], "miner": miner, "modelCid": r["cid"], "salt": r["salt"],
                           "validations": sorted(vals, key=lambda v: v["seq"]),
                           "verifiedScore": rec["verified"].get(r["mid"])})
        return {"order": rec["order"], "phase": self.phase(order_id).value, "status": rec["status"],
                "cancelled": rec["cancelled"], "t3": rec["t3"], "testCid": rec["testCid"],
                "timeline": {k: getattr(tl, k) for k in tl.__dataclass_fields__},
                "claims": [{"miner": m, **c} for m, c in rec["claims"].items()],
                "models": models,
                "challenges": [{"challenger": c, **x} for c, x in rec["challenges"].items()],
                "pendingVerification": list(rec["pending"]), "excluded": list(rec.get("excluded", ())),
                "nonce": rec["nonce"]}

    def fetch_validations(self, order_id: int) -> list[T.ValidationReveal]:
        """Manage.FetchValidations: the revealed validations of an order, ledger order."""
        return list(self.cycle(order_id).validations)

    def model_link(self, mid: bytes) -> str | None:
        return self.s["models"].get(_h(mid))

    def node_info(self, account: str) -> dict[str, int] | None:
        node = self.s["nodes"].get(to_checksum_address(account))
        return dict(node) if node is not None else None

    def pending_settlements(self) -> list[dict[str, Any]]:
        """Settlements not yet executed, with the signatures collected so far.

        ``signatures`` is sorted by signer address ascending (what a contract checking for
        distinct signers in one pass expects); ``ready`` once ``threshold`` are in."""
        out = []
        for nonce in sorted(self.s["settlements"], key=int):
            st = self.s["settlements"][nonce]
            if st["executed"]:
                continue
            sigs = sorted(st["signatures"].items(), key=lambda kv: int(kv[0], 16))
            out.append({"nonce": int(nonce), "settlement": settlement_from_json(st["settlement"]),
                        "digest": _b(st["digest"]), "orderIds": list(st["orderIds"]),
                        "signers": [s for s, _ in sigs], "signatures": [_b(x) for _, x in sigs],
                        "ready": len(sigs) >= self.config.threshold})
        return out

    def chain_event(self, ref: bytes) -> dict[str, Any]:
        """Where the chain event at ``ref`` stands: applied, or which members attested it so far."""
        ch = self.s.get("chain") or {"applied": {}, "votes": {}}
        refh = _h(ref)
        return {"applied": refh in ch["applied"], "attesters": sorted(ch["votes"].get(refh, {}))}

    def settlement(self, nonce: int) -> Settlement | None:
        st = self.s["settlements"].get(str(nonce))
        return settlement_from_json(st["settlement"]) if st else None

    def pending_verifications(self) -> list[dict[str, Any]]:
        """Models each replica must recompute with PoT.Verify (outside ``apply``)."""
        out = []
        for key in sorted(self.s["orders"], key=int):
            rec = self.s["orders"][key]
            if rec["status"] != "verifying":
                continue
            for midh in rec["pending"]:
                out.append({"orderId": int(key), "mid": _b(midh), "modelCid": self.s["models"].get(midh),
                            "testCid": rec["testCid"], "modelType": self._orders[key].model_type_name,
                            "specCid": self._orders[key].spec_cid})
        return out

    # --- digest and snapshots -------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Canonical JSON of configuration and state (no pickle: safe to take from a peer)."""
        return _canonical({"config": json.loads(self._config_json), "state": self.s})

    def digest(self) -> bytes:
        """sha256 of the snapshot: equal on every replica with the same history."""
        return hashlib.sha256(self.snapshot()).digest()

    def restore_snapshot(self, snapshot: bytes) -> None:
        """Replace the state by a peer's snapshot (PBFT state transfer), durably."""
        try:
            doc = json.loads(snapshot)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"snapshot is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or _canonical(doc.get("config")) != self._config_json:
            raise ValueError("snapshot belongs to another ledger configuration")
        self._load_state(doc["state"])
        if self._db is not None:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM ops")
            self._db.execute("UPDATE meta SET value=? WHERE key='state'", (_canonical(self.s),))
            self._db.execute("COMMIT")

    @classmethod
    def restore(cls, snapshot: bytes, config: LedgerConfig, path: str | None = None,
                **kw: Any) -> Ledger:
        """A new ledger holding ``snapshot``'s state."""
        ledger = cls(config, path, **kw)
        ledger.restore_snapshot(snapshot)
        return ledger

    def ops_log(self) -> Iterable[tuple[int, int, bytes]]:
        """(seq, ledger_time, op bytes) of every persisted accepted op (audit, replay tests)."""
        if self._db is None:
            return []
        return [(s, t, bytes(o)) for s, t, o in self._db.execute("SELECT seq, time, op FROM ops ORDER BY seq")]


Ledger._HANDLERS = {
    T.Signed: Ledger._on_signed, T.SettlementSignature: Ledger._settlement_signature,
    T.OrderPlaced: Ledger._order_placed, T.TestDataReleased: Ledger._test_released,
    T.StakeChanged: Ledger._stake_changed, T.ChallengeCommitted: Ledger._challenge_committed,
    T.ChallengeRevealed: Ledger._challenge_revealed, T.SettlementExecuted: Ledger._settlement_executed,
    T.Tick: Ledger._tick,
}
Ledger._MSG_HANDLERS = {
    T.ClaimCommit: Ledger._claim_commit, T.ClaimReveal: Ledger._claim_reveal,
    T.ValidationCommit: Ledger._validation_commit, T.ValidationReveal: Ledger._validation_reveal,
    T.CancelRequest: Ledger._cancel, T.VerifyResult: Ledger._verify_result,
    T.ChainAttestation: Ledger._chain_attestation,
}
