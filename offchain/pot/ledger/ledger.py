"""The global ledger L of the paper as a deterministic state machine.

``Ledger.apply(op, ledger_time) -> Result``: an op is a chain event, a signed participant
message, a committee VerifyResult, a settlement signature or a Tick. An accepted op changes the
state; a rejected op changes nothing and says why.

State. The working state is what can still change: open orders (with their claims, reveals,
validations, challenges, PoT.Verify votes), staked nodes, unexecuted settlements and chain
attestations still short of their quorum. It lives in typed rows (``pot.ledger.records``) held
in memory, indexed per order, and in SQLite tables of the same shape. When a settlement executes,
its orders and the settlement itself leave the working state for the archive (one compressed row
each, still served by the API); what the rules still need to know of them is small and kept: the
set of archived order ids (as ranges) and the nonces below ``next_nonce``.

Persistence. Each ``apply_many`` (a PBFT batch) is one SQLite transaction (WAL,
``synchronous=FULL``) that writes exactly the rows its ops changed; nothing is ever rewritten
whole, so a batch costs what it changed. A crash loses at most the uncommitted batch. The archive
is a second file (``archive_path``), written first in a batch that archives: a replica that
rebuilds its working state from a snapshot keeps its archive.

Digest. Every working row is hashed (SHAKE256 of its canonical text, 4096 bits); one accumulator
adds those hashes mod 2**4096, updated per changed row; a second adds the hash of each archived
order's or settlement's archive row once, a third each archived id. The digest hashes the three
apart (the archive's travels in a snapshot header: summed with the others, a peer could move a
row change into it), so a checkpoint digest costs O(1), and a snapshot (PBFT state transfer) is
the working rows' cached texts joined, plus the archive's accumulated hash and the archived id
ranges. The width resists generalized-birthday (k-sum) forgeries: about 2**128 work, where
2**256 would give about 2**32.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import logging
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from eth_utils import to_checksum_address

from pot.ledger import heap, parallel
from pot.ledger import records as R
from pot.ledger.records import (ChainRefRow, ChainVoteRow, ChallengeRow, ChangeRow, ChangeStatus, ChangeVoteRow,
                                ClaimRow, EpochRow, MemberRow, NodeRow, OrderRow, RevealRow, SeenRow, SettlementRow,
                                SigRow, Status, VCommitRow, VerifiedRow, VoteRow, VRevealRow, key_of, row_text)
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.committee import max_faulty
from pot.protocol.eip712 import Domain, recover_digest
from pot.protocol.epoch import (MAX_CHANGE_WINDOW, Committee, EpochError, Joining, MemberChange, next_seated,
                                vote_change)
from pot.protocol.finalize import OrderCycle, Params, disputed_models, plan
from pot.protocol.ids import claim_commitment, validation_commitment
from pot.protocol.settlement import Settlement, settlement_from_json, settlement_to_json
from pot.protocol.timeline import Phase, Timeline, phase, t3_valid, timeline
from pot.protocol.types import Reason, Result, address_bytes, checksum

SCHEMA_VERSION = 6

log = logging.getLogger("pot.ledger")

#: Refusals ``precheck`` gives that the ledger would give to the same op at any later time
#: (windows only close, seen messages stay seen, closed orders stay closed, signatures and
#: authorisations do not change), or that only a fact the sender must bring first can lift (its
#: stake, its order in the ledger): the API refuses these before consensus. The others (no
#: commitment yet, unknown model or nonce, ...) may still change while the op waits in PBFT.
FINAL_REASONS = frozenset({
    Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.WRONG_WINDOW, Reason.UNKNOWN_ORDER, Reason.NOT_ENOUGH_STAKE,
    Reason.REPLAY, Reason.NOT_AUTHORIZED, Reason.DUPLICATE, Reason.ORDER_CLOSED, Reason.INVALID, Reason.TOO_LARGE})

#: The digest's accumulators are sums of row hashes mod 2^4096 (AdHash). Sums mod 2^256 fall to
#: Wagner's generalized birthday attack in about 2^(2*sqrt(256)) = 2^32 steps when the forger may
#: vary many rows (a state-transfer peer may); 4096 bits put it near 2^128.
_ACC_BITS = 4096
_ACC_BYTES = _ACC_BITS // 8
_MASK = (1 << _ACC_BITS) - 1
_CHAIN_EVENTS = frozenset(T.CHAIN_EVENTS)
_ACTIVE = (Status.OPEN, Status.VERIFYING)


def _h(b: bytes) -> str:
    return "0x" + b.hex()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _hash(text: bytes) -> int:
    return int.from_bytes(hashlib.shake_256(text).digest(_ACC_BYTES), "big")


def _digest(config_hash: bytes, seq: int, time: int, next_nonce: int, work: int, archive: int, ids: int) -> bytes:
    # Each accumulator is bound on its own: the archive's travels in a snapshot's header, and were
    # it added to the working rows' a peer could move any row change into it.
    return hashlib.sha256(config_hash + seq.to_bytes(8, "big") + time.to_bytes(8, "big") + next_nonce.to_bytes(8, "big")
                          + work.to_bytes(_ACC_BYTES, "big") + archive.to_bytes(_ACC_BYTES, "big")
                          + ids.to_bytes(_ACC_BYTES, "big")).digest()


def _recover_pair(pair: tuple[bytes, bytes]) -> bytes | ValueError:
    """The signer of (digest, signature), or why the signature is malformed (never raises)."""
    try:
        return recover_digest(*pair)
    except ValueError as exc:
        return exc


def _make(cls: type, **fields: Any) -> Any:
    """A protocol object from fields the ledger already validated when it accepted them."""
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


@dataclass(frozen=True)
class LedgerConfig:
    """What every replica must share: deployment domains, the committee and the parameters.

    The ledger's identity (what its files and snapshots are bound to: ``identity_json``) is the
    deployment and the parameters. The committee fields (``committee``, ``threshold``, ``epoch``,
    ``member_keys``, ``member_endpoints``, ``member_api_urls``) only seed a fresh ledger: from then
    on the committee is replicated state that committee changes move (docs/COMMITTEE.md), and
    ``Ledger.config`` carries the current one."""
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
    #: each member's compressed public key and PBFT ``host:port``, in ``committee`` order (what a
    #: committee change hands PBFT); empty where the ledger runs without PBFT
    member_keys: tuple[bytes, ...] = ()
    member_endpoints: tuple[str, ...] = ()
    #: each member's public API URL, in ``committee`` order (what workers follow: GET
    #: /v1/committee/members); empty, or empty entries, where unknown
    member_api_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        committee = tuple(to_checksum_address(m) for m in self.committee)
        if len(set(committee)) != len(committee):
            raise ValueError("committee members must be distinct")
        object.__setattr__(self, "committee", committee)
        if self.threshold is None:
            object.__setattr__(self, "threshold", self.quorum)
        if not 1 <= self.threshold <= max(len(committee), 1):
            raise ValueError("threshold must be in [1, n]")
        for name in ("member_keys", "member_endpoints", "member_api_urls"):
            v = tuple(getattr(self, name))
            if v and len(v) != len(committee):
                raise ValueError(f"{name} must have one entry per committee member")
            object.__setattr__(self, name, v)

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
        return {**self.identity_json(), "committee": list(self.committee), "threshold": self.threshold,
                "epoch": self.epoch}

    def identity_json(self) -> dict[str, Any]:
        """What a ledger's files and snapshots are bound to: not the committee, which changes."""
        return {"chainId": self.chain_id, "orderBook": to_checksum_address(self.order_book),
                "rewardMultisig": to_checksum_address(self.reward_multisig),
                "attestedChainEvents": self.attested_chain_events, "params": self.params.as_json()}


class _Reject(Exception):
    def __init__(self, reason: Reason, text: str) -> None:
        self.result = Result.rejected(reason, text)


# --- the working state's containers ---------------------------------------------------------

class OrderState:
    """An order's records, indexed the way the rules look them up (never a scan per message)."""

    __slots__ = ("row", "order", "tl", "claims", "seen", "reveals", "by_mid", "vcommits", "vreveals",
                 "vals_by_mid", "challenges", "votes", "verified")

    def __init__(self, row: OrderRow, order: T.Order) -> None:
        self.row = row
        self.order = order
        self.tl: Timeline = timeline(order, row.t3)
        self.claims: dict[bytes, ClaimRow] = {}
        self.seen: set[bytes] = set()
        self.reveals: dict[bytes, RevealRow] = {}
        self.by_mid: dict[bytes, bytes] = {}                 # mid -> miner
        self.vcommits: dict[tuple[bytes, bytes], VCommitRow] = {}
        self.vreveals: dict[tuple[bytes, bytes], VRevealRow] = {}
        self.vals_by_mid: dict[bytes, list[VRevealRow]] = {}
        self.challenges: dict[bytes, ChallengeRow] = {}
        self.votes: dict[bytes, dict[bytes, int]] = {}       # mid -> replica -> score
        self.verified: dict[bytes, int] = {}

    @property
    def status(self) -> Status:
        return Status(self.row.status)

    @property
    def pending(self) -> list[bytes]:
        p = self.row.pending
        return [p[i:i + 32] for i in range(0, len(p), 32)]

    @property
    def excluded(self) -> list[bytes]:
        p = self.row.excluded
        return [p[i:i + 32] for i in range(0, len(p), 32)]

    def add(self, row: tuple) -> None:
        """Index one of this order's rows (loading, restoring, archive reads)."""
        kind = type(row)
        if kind is ClaimRow:
            self.claims[row.miner] = row
        elif kind is SeenRow:
            self.seen.add(row.digest)
        elif kind is RevealRow:
            self.reveals[row.miner] = row
            self.by_mid[row.mid] = row.miner
        elif kind is VCommitRow:
            self.vcommits[(row.validator, row.mid)] = row
        elif kind is VRevealRow:
            self.vreveals[(row.validator, row.mid)] = row
            self.vals_by_mid.setdefault(row.mid, []).append(row)
        elif kind is ChallengeRow:
            self.challenges[row.challenger] = row
        elif kind is VoteRow:
            self.votes.setdefault(row.mid, {})[row.replica] = row.score
        elif kind is VerifiedRow:
            self.verified[row.mid] = row.score
        else:  # pragma: no cover
            raise AssertionError(kind)

    def rows(self) -> Iterator[tuple]:
        """What the archive keeps of the order, in key order (the same bytes on every replica,
        however each one's dicts were filled)."""
        yield self.row
        for d in (self.claims, self.reveals, self.vreveals, self.challenges):
            for k in sorted(d):
                yield d[k]
        for mid in sorted(self.verified):
            yield VerifiedRow(self.row.order_id, mid, self.verified[mid])

    def clone(self) -> OrderState:
        c = object.__new__(OrderState)
        c.row, c.order, c.tl = self.row, self.order, self.tl
        c.claims, c.seen, c.reveals, c.by_mid = dict(self.claims), set(self.seen), dict(self.reveals), dict(self.by_mid)
        c.vcommits, c.vreveals = dict(self.vcommits), dict(self.vreveals)
        c.vals_by_mid = {m: list(v) for m, v in self.vals_by_mid.items()}
        c.challenges, c.verified = dict(self.challenges), dict(self.verified)
        c.votes = {m: dict(v) for m, v in self.votes.items()}
        return c


class SettlementState:
    __slots__ = ("row", "sigs")

    def __init__(self, row: SettlementRow) -> None:
        self.row = row
        self.sigs: dict[bytes, bytes] = {}    # signer -> signature

    @property
    def order_ids(self) -> list[int]:
        return [int(x) for x in self.row.order_ids.split(",")] if self.row.order_ids else []

    def clone(self) -> SettlementState:
        c = SettlementState(self.row)
        c.sigs = dict(self.sigs)
        return c


_MISSING = object()


class _Overlay:
    """A copy-on-write view of a dict for ``precheck``: writes land in ``top``, deletions in
    ``gone``, and a value read through it is cloned first when ``clone`` is given, so nothing the
    rules do through the view reaches the base."""

    __slots__ = ("base", "top", "gone", "clone")

    def __init__(self, base: dict, clone: Callable[[Any], Any] | None = None) -> None:
        self.base, self.top, self.gone, self.clone = base, {}, set(), clone

    def get(self, k: Any, default: Any = None) -> Any:
        v = self.top.get(k, _MISSING)
        if v is not _MISSING:
            return v
        if k in self.gone:
            return default
        v = self.base.get(k, _MISSING)
        if v is _MISSING:
            return default
        if self.clone is not None:
            v = self.top[k] = self.clone(v)
        return v

    def __getitem__(self, k: Any) -> Any:
        v = self.get(k, _MISSING)
        if v is _MISSING:
            raise KeyError(k)
        return v

    def __contains__(self, k: Any) -> bool:
        return k in self.top or (k not in self.gone and k in self.base)

    def __setitem__(self, k: Any, v: Any) -> None:
        self.top[k] = v
        self.gone.discard(k)

    def setdefault(self, k: Any, v: Any) -> Any:
        cur = self.get(k, _MISSING)
        if cur is _MISSING:
            self[k] = cur = v
        return cur

    def pop(self, k: Any, default: Any = _MISSING) -> Any:
        v = self.get(k, _MISSING)
        if v is _MISSING:
            if default is _MISSING:
                raise KeyError(k)
            return default
        self.top.pop(k, None)
        self.gone.add(k)
        return v

    def __delitem__(self, k: Any) -> None:
        self.pop(k)

    def __iter__(self) -> Iterator:
        yield from self.top
        for k in self.base:
            if k not in self.top and k not in self.gone:
                yield k

    def keys(self) -> list:
        return list(self)

    def values(self) -> list:
        return [self[k] for k in self]

    def items(self) -> list:
        return [(k, self[k]) for k in self]

    def __len__(self) -> int:
        return sum(1 for _ in self)


class IdRanges:
    """A set of order ids as sorted disjoint ranges ``[lo, hi]``: orders settle roughly in the
    order they were placed, so the archived ids of any history are a handful of ranges."""

    __slots__ = ("lo", "hi")

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        self.lo: list[int] = []
        self.hi: list[int] = []
        for a, b in pairs:
            self.lo.append(a)
            self.hi.append(b)

    def __contains__(self, x: int) -> bool:
        i = bisect.bisect_right(self.lo, x) - 1
        return i >= 0 and x <= self.hi[i]

    def add(self, x: int) -> None:
        if x in self:
            return
        i = bisect.bisect_right(self.lo, x)         # lo[i-1] < x < lo[i]
        left = i > 0 and self.hi[i - 1] == x - 1
        right = i < len(self.lo) and self.lo[i] == x + 1
        if left and right:
            self.hi[i - 1] = self.hi[i]
            del self.lo[i], self.hi[i]
        elif left:
            self.hi[i - 1] = x
        elif right:
            self.lo[i] = x
        else:
            self.lo.insert(i, x)
            self.hi.insert(i, x)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.lo, self.hi))

    def count(self) -> int:
        return sum(b - a + 1 for a, b in zip(self.lo, self.hi))

    def __iter__(self) -> Iterator[int]:
        for a, b in zip(self.lo, self.hi):
            yield from range(a, b + 1)

    def copy(self) -> IdRanges:
        return IdRanges(zip(self.lo, self.hi))

    def encode(self) -> str:
        return ",".join(f"{a}-{b}" for a, b in zip(self.lo, self.hi))

    @classmethod
    def decode(cls, text: str) -> IdRanges:
        pairs = []
        for part in text.split(",") if text else ():
            a, _, b = part.partition("-")
            pairs.append((int(a), int(b)))
        if any(a > b for a, b in pairs) or any(pairs[i][1] + 1 >= pairs[i + 1][0] for i in range(len(pairs) - 1)):
            raise ValueError("archived id ranges are not sorted and disjoint")
        return cls(pairs)


@dataclass(frozen=True)
class ArchiveTarget:
    """``Ledger.archive_target``: what the archive file at ``path`` must hold."""

    path: str
    acc: int                       # the sum of every archived blob's ``archive_term``
    orders: IdRanges               # the archived order ids
    next_nonce: int                # executed settlements: the nonces below it that are not
    pending: frozenset[int]        # still pending

    def settlement_nonces(self) -> Iterator[int]:
        return (n for n in range(1, self.next_nonce) if n not in self.pending)


def archive_path(path: str) -> str:
    """The archive's file beside the ledger file ``path``."""
    return path + "-archive"


def _id_term(order_id: int) -> int:
    return _hash(b"archived-order" + order_id.to_bytes(32, "big"))


def archive_term(kind: str, blob: bytes) -> int:
    """What an archived order's (``kind="order"``) or settlement's blob adds to the digest."""
    return _hash(kind.encode() + blob)


def order_from_blob(blob: bytes, max_bytes: int | None = None) -> OrderState:
    """An archived order's records back from its blob. ``max_bytes`` bounds what a foreign blob
    may decompress to (ValueError past it, or for a blob that is no archived order)."""
    rows = [R.parse_row(line) for line in _inflate(blob, max_bytes).split(b"\n")]
    if not rows or type(rows[0]) is not OrderRow:
        raise ValueError("blob does not start with an order row")
    st = OrderState(rows[0], codec.decode(rows[0].wire))
    for r in rows[1:]:
        if type(r) not in (ClaimRow, RevealRow, VRevealRow, ChallengeRow, VerifiedRow) or r[0] != st.row.order_id:
            raise ValueError(f"blob of order {st.row.order_id} holds a {type(r).__name__} of another order")
        st.add(r)
    for vals in st.vals_by_mid.values():
        vals.sort(key=lambda v: v.seq)
    return st


def settlement_from_blob(blob: bytes, max_bytes: int | None = None) -> SettlementState:
    """An executed settlement back from its archive blob (ValueError as ``order_from_blob``)."""
    rows = [R.parse_row(line) for line in _inflate(blob, max_bytes).split(b"\n")]
    if not rows or type(rows[0]) is not SettlementRow:
        raise ValueError("blob does not start with a settlement row")
    st = SettlementState(rows[0])
    for r in rows[1:]:
        if type(r) is not SigRow or r.nonce != st.row.nonce:
            raise ValueError(f"blob of settlement {st.row.nonce} holds a row of another kind or nonce")
        st.sigs[r.signer] = r.signature
    return st


def _inflate(blob: bytes, max_bytes: int | None) -> bytes:
    if max_bytes is None:
        return zlib.decompress(blob)
    d = zlib.decompressobj()
    out = d.decompress(blob, max_bytes + 1)
    if len(out) > max_bytes or d.unconsumed_tail:
        raise ValueError(f"blob inflates past {max_bytes} bytes")
    if not d.eof:
        raise ValueError("blob is truncated")
    return out


def archived_order_index(st: OrderState, blob: bytes) -> tuple[tuple, list[tuple], list[tuple]]:
    """An archived order's ``archive_orders`` row and what it adds to the ``models`` and
    ``archive_accounts`` indexes: the ledger writes them when it archives the order, a backfill
    from the blob alone."""
    oid = st.row.order_id
    row = (oid, st.row.status, st.row.cancelled, address_bytes(st.order.client), st.row.nonce, blob)
    models = [(r.mid, r.model_cid) for r in sorted(st.reveals.values(), key=lambda r: r.seq)]
    accounts = {address_bytes(st.order.client), *st.claims, *(v for v, _mid in st.vreveals), *st.challenges}
    return row, models, [(a, oid) for a in sorted(accounts)]


def archived_settlement_accounts(row: SettlementRow) -> list[tuple]:
    """The members an executed settlement paid the tax to, by order: their part of /v1/accounts."""
    batch = settlement_from_json(json.loads(row.body))
    return [(address_bytes(m), o.order_id) for m in batch.members for o in batch.orders]


# --- the ledger -----------------------------------------------------------------------------

_META_SQL = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID"
_ARCHIVE_SQL = (
    _META_SQL,
    # one row per settled order / executed settlement: its rows' texts, zlib-compressed
    "CREATE TABLE IF NOT EXISTS archive_orders (order_id INTEGER PRIMARY KEY, status INTEGER NOT NULL, "
    "cancelled INTEGER NOT NULL, client BLOB NOT NULL, nonce INTEGER, rows BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS archive_settlements (nonce INTEGER PRIMARY KEY, rows BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS archive_refs (ref BLOB PRIMARY KEY, order_id INTEGER NOT NULL) WITHOUT ROWID",
    # mid -> the link of its first reveal (an index for GET /v1/models, not state)
    "CREATE TABLE IF NOT EXISTS models (mid BLOB PRIMARY KEY, cid TEXT NOT NULL) WITHOUT ROWID",
    # account -> the archived orders it was client, miner, validator or challenger in (an index for
    # GET /v1/accounts and ?miner=, not state: what they cost is that account's history, not all of it)
    "CREATE TABLE IF NOT EXISTS archive_accounts (account BLOB NOT NULL, order_id INTEGER NOT NULL, "
    "PRIMARY KEY (account, order_id)) WITHOUT ROWID",
)


class Ledger:
    """The global ledger. ``path=None`` keeps it in memory only (simulations, tests)."""

    #: precheck: a window not open yet is taken as open (the op may execute later)
    _optimistic_windows = False
    #: precheck: a scratch copy that writes nothing and tracks no digest
    _scratch = False
    #: a member's attestations still short of f+1: bounds what a faulty member can make us store
    MAX_OPEN_ATTESTATIONS = 4096

    def __init__(self, config: LedgerConfig, path: str | None = None, *,
                 write_hook: Callable[[str], None] | None = None) -> None:
        self.config = self._base_config = config
        self._members = frozenset(address_bytes(m) for m in config.committee)
        self._attested = config.attested_chain_events
        self._domain = config.message_domain
        self._config_json = _canonical(config.identity_json())
        self._config_hash = hashlib.sha256(self._config_json).digest()
        self._hook = write_hook or (lambda point: None)
        self._path = path
        # The archive has a file of its own: a replica that rebuilds its working state (from its
        # PBFT checkpoint at start, or from a peer's snapshot) keeps serving what it archived.
        self._arc = self._connect(None if path is None else archive_path(path))
        for sql in _ARCHIVE_SQL:
            self._arc.execute(sql)
        self._bind(self._arc, "archive")
        # the model index takes random keys; a cache that holds its upper levels keeps inserts
        # from reading pages back as the history grows
        self._arc.execute("PRAGMA cache_size=-65536")
        db = self._db = self._connect(path)
        db.execute(_META_SQL)
        for cls in R.ROWS:
            db.execute(R.schema_sql(cls))
        row = db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        if row is None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("config", self._config_json), ("version", SCHEMA_VERSION), ("seq", 0), ("time", 0),
                ("next_nonce", 1), ("archived", ""), ("acc_archive", "0"), ("acc_ids", "0")])
            # the genesis committee: replicated state from here on
            for row in self._genesis_rows(config):
                db.execute(f"INSERT INTO {type(row).TABLE} VALUES ({','.join('?' * len(row))})", R.to_sql(row))
            db.execute("COMMIT")
        elif db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0] != SCHEMA_VERSION:
            raise ValueError(f"ledger database {path} has another schema version (this is {SCHEMA_VERSION}); "
                             f"start this replica from a fresh ledger file and let it catch up from its peers")
        elif bytes(row[0]) != self._config_json:
            raise ValueError(f"ledger database {path} belongs to another configuration")
        self._load()

    @staticmethod
    def _genesis_rows(config: LedgerConfig) -> list[tuple]:
        n = len(config.committee)
        keys, eps = config.member_keys or (b"",) * n, config.member_endpoints or ("",) * n
        urls = config.member_api_urls or ("",) * n
        return [EpochRow(config.epoch, config.threshold)] + [
            MemberRow(i, address_bytes(m), keys[i], eps[i], urls[i]) for i, m in enumerate(config.committee)]

    @staticmethod
    def _connect(path: str | None) -> sqlite3.Connection:
        db = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False)
        if path is not None:
            db.execute("PRAGMA journal_mode=WAL")
            # a checkpointed WAL is cut back to this, not left at its largest size on disk
            db.execute("PRAGMA journal_size_limit=1048576")
        db.execute("PRAGMA synchronous=FULL")  # a replica replies only after its state is durable
        return db

    def _bind(self, db: sqlite3.Connection, what: str) -> None:
        row = db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        if row is None:
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("config", self._config_json),
                                                             ("version", SCHEMA_VERSION)])
        elif db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0] != SCHEMA_VERSION:
            raise ValueError(f"ledger {what} {archive_path(self._path or '')} has another schema version (this is "
                             f"{SCHEMA_VERSION}); move it away and let the replica catch up from its peers")
        elif bytes(row[0]) != self._config_json:
            raise ValueError(f"ledger {what} {archive_path(self._path or '')} belongs to another configuration")

    # --- loading and persistence ------------------------------------------------------------

    def _reset(self) -> None:
        self.seq = 0
        self.time = 0
        self.next_nonce = 1
        self._open: dict[int, OrderState] | _Overlay = {}
        self._nodes: dict[bytes, NodeRow] | _Overlay = {}
        self._settlements: dict[int, SettlementState] | _Overlay = {}
        self._chain_votes: dict[bytes, dict[bytes, bytes]] | _Overlay = {}
        self._chain_open: dict[bytes, int] | _Overlay = {}
        self._chain_refs: dict[bytes, int] | _Overlay = {}
        self._mids: dict[bytes, str] | _Overlay = {}          # mid -> first link, open orders
        self._changes: dict[bytes, ChangeRow] | _Overlay = {}     # Action digest -> committee change
        self._change_votes: dict[bytes, dict[bytes, ChangeVoteRow]] | _Overlay = {}  # digest -> voter -> vote
        self._seats: dict[int, MemberRow] = {}
        self._epoch_row: EpochRow | None = None
        self._archived = IdRanges()
        self._due: list[tuple[int, int]] = []
        self._rows: dict[tuple, bytes] = {}       # key -> the row's canonical text
        self._terms: dict[tuple, int] = {}        # key -> its digest term (the text's hash)
        self._acc_work = 0
        self._acc_archive = 0
        self._acc_ids = 0
        # what the open transaction will write
        self._dirty: dict[tuple, tuple | None] = {}
        self._out_orders: list[tuple] = []
        self._out_settlements: list[tuple] = []
        self._out_refs: list[tuple] = []
        self._out_models: list[tuple] = []
        self._out_accounts: list[tuple] = []
        self._meta_dirty = False
        self._journal: list[tuple[Any, int]] = []
        #: id(Signed op) -> (op, digest, signer or the ValueError): apply_many's batch, recovered ahead
        self._recovered: dict[int, tuple[Any, bytes, Any]] = {}

    def _load(self) -> None:
        """The working state from the tables (open, rollback): O(working state), not O(history)."""
        self._reset()
        db = self._db
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.seq, self.time, self.next_nonce = int(meta["seq"]), int(meta["time"]), int(meta["next_nonce"])
        self._archived = IdRanges.decode(meta["archived"])
        self._acc_archive, self._acc_ids = int(meta["acc_archive"]), int(meta["acc_ids"])
        rows = []
        for cls in R.ROWS:
            rows += [R.from_sql(cls, v) for v in db.execute(f"SELECT * FROM {cls.TABLE}")]
        self._index(rows)

    def _index(self, rows: Iterable[tuple]) -> None:
        """Build the typed working state and its digest terms from rows (any order)."""
        rows = list(rows)
        later: list[tuple] = []
        for row in rows:
            text = row_text(row)
            k = key_of(row)
            if k in self._rows:
                raise ValueError(f"two {type(row).__name__} rows with key {k[1:]}")
            self._rows[k] = text
            h = self._terms[k] = _hash(text)
            self._acc_work = (self._acc_work + h) & _MASK
            kind = type(row)
            if kind is OrderRow:
                st = OrderState(row, codec.decode(row.wire))
                self._open[row.order_id] = st
            elif kind is NodeRow:
                self._nodes[row.account] = row
            elif kind is SettlementRow:
                self._settlements[row.nonce] = SettlementState(row)
            elif kind is ChainVoteRow:
                self._chain_votes.setdefault(row.ref, {})[row.replica] = row.op_hash
                self._chain_open[row.replica] = self._chain_open.get(row.replica, 0) + 1
            elif kind is ChainRefRow:
                self._chain_refs[row.ref] = row.order_id
            elif kind is EpochRow:
                if self._epoch_row is not None:
                    raise ValueError("two epoch rows")
                self._epoch_row = row
            elif kind is MemberRow:
                self._seats[row.position] = row
            elif kind is ChangeRow:
                self._changes[row.digest] = row
            else:
                later.append(row)
        for row in later:
            if type(row) is SigRow:
                self._settlements[row.nonce].sigs[row.signer] = row.signature
            elif type(row) is ChangeVoteRow:
                if row.digest not in self._changes:
                    raise ValueError("a vote for a committee change that is not in the ledger")
                self._change_votes.setdefault(row.digest, {})[row.voter] = row
            else:
                st = self._open.get(row.order_id)
                if st is None:
                    raise ValueError(f"{type(row).__name__} of order {row.order_id}, which is not open")
                st.add(row)
        for oid in sorted(self._open):
            st = self._open[oid]
            for r in sorted(st.reveals.values(), key=lambda r: r.seq):
                self._mids.setdefault(r.mid, r.model_cid)
            for rows_ in st.vals_by_mid.values():
                rows_.sort(key=lambda v: v.seq)
            self._schedule(st, self._due_time(st))
        self._sync_config()

    def _sync_config(self) -> None:
        """``config`` (and the member set) from the committee rows: the current epoch's committee."""
        if self._epoch_row is None:
            raise ValueError("the ledger holds no committee (epoch row missing)")
        seats = [self._seats[i] for i in range(len(self._seats))] if set(self._seats) == set(
            range(len(self._seats))) else None
        if not seats:
            raise ValueError("the committee's member rows are not positions 0..n-1")
        keys = tuple(r.public_key for r in seats)
        eps = tuple(r.endpoint for r in seats)
        urls = tuple(r.api_url for r in seats)
        self.config = replace(self._base_config, committee=tuple(checksum(r.account) for r in seats),
                              threshold=self._epoch_row.threshold, epoch=self._epoch_row.epoch,
                              member_keys=keys if any(keys) else (), member_endpoints=eps if any(eps) else (),
                              member_api_urls=urls if any(urls) else ())
        self._members = frozenset(r.account for r in seats)

    def _put(self, row: tuple) -> None:
        """Record a new or changed row: its digest term and the write of the open transaction."""
        if self._scratch:
            return
        k = (type(row), *row[:row.KEY])
        text = row_text(row)
        h = _hash(text)
        self._acc_work = (self._acc_work + h - self._terms.get(k, 0)) & _MASK
        self._rows[k] = text
        self._terms[k] = h
        self._dirty[k] = row

    def _delete(self, k: tuple) -> None:
        if self._scratch:
            return
        if self._rows.pop(k, None) is not None:
            self._acc_work = (self._acc_work - self._terms.pop(k)) & _MASK
            self._dirty[k] = None

    def _commit(self) -> None:
        """Write what the ops since the last commit changed, as one transaction."""
        db = self._db
        ups: dict[type, list[tuple]] = {}
        dels: dict[type, list[tuple]] = {}
        for k, row in self._dirty.items():
            if row is None:
                dels.setdefault(k[0], []).append(k[1:])
            else:
                ups.setdefault(k[0], []).append(R.to_sql(row))
        if self._out_orders or self._out_settlements or self._out_refs or self._out_models or self._out_accounts:
            # first, and on its own: archive rows are idempotent, so a crash before the working
            # state commits leaves an archive row of an order still open, which the batch's
            # replay writes again; the other order could lose an archived order's records
            arc = self._arc
            arc.execute("BEGIN IMMEDIATE")
            arc.executemany("INSERT OR REPLACE INTO archive_orders VALUES (?, ?, ?, ?, ?, ?)", self._out_orders)
            arc.executemany("INSERT OR REPLACE INTO archive_settlements VALUES (?, ?)", self._out_settlements)
            arc.executemany("INSERT OR REPLACE INTO archive_refs VALUES (?, ?)", self._out_refs)
            arc.executemany("INSERT OR IGNORE INTO models VALUES (?, ?)", self._out_models)
            arc.executemany("INSERT OR IGNORE INTO archive_accounts VALUES (?, ?)", self._out_accounts)
            self._hook("archive")
            arc.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        for cls, items in dels.items():
            where = " AND ".join(f"{f}=?" for f in cls._fields[:cls.KEY])
            db.executemany(f"DELETE FROM {cls.TABLE} WHERE {where}", items)
        self._hook("delete")
        for cls, items in ups.items():
            marks = ",".join("?" * len(cls._fields))
            db.executemany(f"INSERT OR REPLACE INTO {cls.TABLE} VALUES ({marks})", items)
            self._hook("write")
        meta = [("seq", self.seq), ("time", self.time), ("next_nonce", self.next_nonce)]
        if self._meta_dirty:
            meta += [("archived", self._archived.encode()), ("acc_archive", str(self._acc_archive)),
                     ("acc_ids", str(self._acc_ids))]
        db.executemany("UPDATE meta SET value=? WHERE key=?", [(v, k) for k, v in meta])
        self._hook("commit")
        db.execute("COMMIT")
        self._hook("committed")
        self._clear_pending()

    def _reload_from_disk(self) -> None:
        """After a failed commit: drop what the transactions hold and rebuild memory from disk."""
        for db in (self._arc, self._db):
            if db.in_transaction:
                db.execute("ROLLBACK")
        self._load()

    def _clear_pending(self) -> None:
        self._dirty = {}
        self._out_orders, self._out_settlements, self._out_refs, self._out_models = [], [], [], []
        self._out_accounts = []
        self._meta_dirty = False
        self._journal = []

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._arc.close()
            self._db = None

    # --- apply ------------------------------------------------------------------------------

    def apply(self, op: T.Op, ledger_time: int) -> Result:
        """Apply one op at ``ledger_time`` (the PBFT batch time, seconds) and persist it."""
        return self.apply_many([op], ledger_time)[0]

    def precheck(self, op: T.Op, ledger_time: int) -> Result:
        """What ``apply`` would answer for ``op`` at ``ledger_time`` or later, changing nothing: the
        same handlers run on copy-on-write views of the working state. A window that has not opened
        yet counts as open, so a refusal here in ``FINAL_REASONS`` is one the ledger would also
        give when the op executes (the API uses it to refuse before consensus)."""
        scratch = object.__new__(type(self))
        scratch.__dict__.update(self.__dict__)
        scratch._scratch = True
        scratch._optimistic_windows = True
        scratch._recovered = {}
        scratch._open = _Overlay(self._open, OrderState.clone)
        scratch._nodes = _Overlay(self._nodes)
        scratch._settlements = _Overlay(self._settlements, SettlementState.clone)
        scratch._chain_votes = _Overlay(self._chain_votes, dict)
        scratch._chain_open = _Overlay(self._chain_open)
        scratch._chain_refs = _Overlay(self._chain_refs)
        scratch._mids = _Overlay(self._mids)
        scratch._changes = _Overlay(self._changes)
        scratch._change_votes = _Overlay(self._change_votes, dict)
        scratch._archived = self._archived.copy()
        scratch._due = list(self._due)
        scratch._journal = []
        return scratch._apply(op, max(int(ledger_time), self.time))

    def apply_many(self, ops: Sequence[T.Op | bytes], ledger_time: int) -> list[Result]:
        """Apply a batch in order at one ledger time, as one durable transaction.

        Items may be decoded ops or their wire bytes (a malformed frame gets a MALFORMED result)."""
        if type(ledger_time) is not int or ledger_time < 0:
            raise ValueError("ledger_time must be a non-negative int (seconds)")
        batch: list[Any] = []
        for item in ops:
            if isinstance(item, (bytes, bytearray, memoryview)):
                try:
                    item = codec.decode(item)
                except codec.DecodeError as exc:
                    item = Result.rejected(Reason.MALFORMED, str(exc))
            batch.append(item)
        # The batch's signatures first, back to back: libsecp256k1's precomputed tables stay in
        # the CPU cache (between the rules' work they do not: 40 µs a recovery in a tight loop,
        # ~55 µs interleaved). The digests are Python, on this thread; the recoveries are pure and
        # release the GIL, so they run on every core (ledger.parallel). The rules then take each
        # signer from here, in order, on this thread.
        pre = self._recovered
        signed = [item for item in batch if type(item) is T.Signed]
        domain = self._domain
        digests = [op.message.digest(domain) for op in signed]
        signers = parallel.map_chunks(_recover_pair, list(zip(digests, [op.signature for op in signed])))
        for op, digest, signer in zip(signed, digests, signers):
            pre[id(op)] = (op, digest, signer)
        results: list[Result] = []
        try:
            for item in batch:
                results.append(item if type(item) is Result else self._apply(item, ledger_time))
        finally:
            pre.clear()
        if self._journal:
            try:
                self._commit()
            except BaseException:
                # memory holds the batch but the disk does not: rebuild from the disk so the two
                # never disagree (PBFT executes the batch again from its own log)
                self._reload_from_disk()
                raise
            heap.after_commit()
        return results

    def _apply(self, op: Any, t: int) -> Result:
        if t < self.time:
            return Result.rejected(Reason.TIME_BACKWARDS,
                                   f"ledger time {t} is before the last accepted time {self.time}")
        handler = self._HANDLERS.get(type(op))
        if handler is None:
            return Result.rejected(Reason.MALFORMED, f"not a ledger op: {type(op).__name__}")
        if self._attested and type(op) in _CHAIN_EVENTS:
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
        self.time = t
        self.seq += 1
        self._journal.append((op, t))
        return res

    def _rollback(self) -> None:
        """Back to the state before the op that just failed: the committed state from the tables,
        then the batch's accepted ops again (apply is deterministic). Costs nothing until an op
        fails; a scratch copy has nothing to roll back (the view is dropped)."""
        if self._scratch:
            return
        journal = self._journal
        self._load()
        for op, t in journal:
            res = self._apply(op, t)
            if not res.ok:
                raise RuntimeError(f"ledger rollback diverged: {res.text}")

    # --- helpers ----------------------------------------------------------------------------

    def _rec(self, order_id: int, *, open_only: bool = True) -> OrderState:
        st = self._open.get(order_id)
        if st is None:
            if order_id in self._archived:
                raise _Reject(Reason.ORDER_CLOSED, f"order {order_id} is settled (archived)")
            raise _Reject(Reason.UNKNOWN_ORDER, f"order {order_id} is not in the ledger")
        if open_only and (st.row.status != Status.OPEN or st.row.cancelled):
            raise _Reject(Reason.ORDER_CLOSED, f"order {order_id} is {st.status.label}"
                          + (" (cancelled)" if st.row.cancelled else ""))
        return st

    def _set_order(self, st: OrderState, **changes: Any) -> None:
        st.row = st.row._replace(**changes)
        if "t3" in changes:
            st.tl = timeline(st.order, st.row.t3)
        self._put(st.row)

    def _need_stake(self, account: bytes, role: int) -> NodeRow:
        node = self._nodes.get(account)
        need = self.config.params.min_stake.get(role, 0)
        if node is None or not node.roles & role or node.stake < need:
            raise _Reject(Reason.NOT_ENOUGH_STAKE, f"{checksum(account)} is not staked as {T.ROLE_NAMES[role]} "
                          f"(needs {need}, has {0 if node is None else node.stake})")
        return node

    def _window(self, t: int, start: int | None, end: int | None, what: str) -> None:
        closed = end is not None and t >= end
        if closed or (not self._optimistic_windows and (start is None or t < start)):
            raise _Reject(Reason.WRONG_WINDOW, f"{what} window is [{start}, {end}), ledger time is {t}")

    def _due_time(self, st: OrderState) -> int:
        """The earliest ledger time a Tick may move the order on (finalize, or stop waiting)."""
        row = st.row
        if row.status == Status.OPEN:
            return 0 if row.cancelled else st.tl.final + self.config.params.finalize_delay
        if row.status == Status.VERIFYING and row.pending:
            return row.verifying_since + self.config.params.verify_timeout
        return 0 if row.status == Status.VERIFYING else -1

    def _schedule(self, st: OrderState, due: int) -> None:
        if due >= 0:
            heapq.heappush(self._due, (due, st.row.order_id))

    # --- signed participant messages --------------------------------------------------------

    def _recover(self, op: T.Signed) -> tuple[T.Signed, bytes, bytes | ValueError]:
        """(op, its EIP-712 digest, the signer's 20 bytes or why the signature is malformed)."""
        digest = op.message.digest(self._domain)
        return op, digest, _recover_pair((digest, op.signature))

    def _on_signed(self, op: T.Signed, t: int) -> Result:
        msg = op.message
        got = self._recovered.get(id(op))
        _op, digest, signer = got if got is not None and got[0] is op else self._recover(op)
        if isinstance(signer, ValueError):
            raise _Reject(Reason.BAD_SIGNATURE, f"malformed signature: {signer}") from None
        # bytes compare: the recovered address is never checksummed
        if signer != bytes.fromhex(msg.__dict__[msg.SIGNER][2:]):
            raise _Reject(Reason.BAD_SIGNATURE, f"signature is not {msg.signer}'s for this deployment "
                          f"(chain {self.config.chain_id}, OrderBook {self._domain.verifying_contract})")
        return self._MSG_HANDLERS[type(msg)](self, msg, signer, digest, op.signature, t)

    def _claim_commit(self, m: T.ClaimCommit, miner: bytes, digest: bytes, sig: bytes, t: int) -> Result:
        st = self._rec(m.order_id)
        self._window(t, st.tl.t0, st.tl.train_end, "training (ClaimCommit)")
        self._need_stake(miner, T.MINER)
        # the EIP-712 digest is the message's identity: an older ClaimCommit replayed after a
        # newer one must not roll the claim back
        if digest in st.seen:
            raise _Reject(Reason.REPLAY, "this exact message was already accepted")
        replaced = miner in st.claims
        # a later commit replaces the earlier one and takes a later place in ledger order
        row = st.claims[miner] = ClaimRow(m.order_id, miner, m.commitment, self.seq + 1, sig)
        st.seen.add(digest)
        self._put(row)
        self._put(SeenRow(m.order_id, digest))
        return Result.accepted("claim replaced" if replaced else "claim committed")

    def _claim_reveal(self, m: T.ClaimReveal, miner: bytes, digest: bytes, sig: bytes, t: int) -> Result:
        st = self._rec(m.order_id)
        self._window(t, st.tl.train_end, st.tl.reveal_end, "model reveal (ClaimReveal)")
        self._need_stake(miner, T.MINER)
        prev = st.reveals.get(miner)
        if prev is not None and (prev.mid, prev.salt, prev.model_cid) == (m.mid, m.salt, m.model_cid):
            raise _Reject(Reason.REPLAY, "this exact message was already accepted")
        claim = st.claims.get(miner)
        if claim is None:
            # a model seen after somebody's reveal cannot be claimed: the thief has no commitment
            raise _Reject(Reason.NO_COMMITMENT, f"{m.miner} has no ClaimCommit for order {m.order_id}")
        if prev is not None:
            raise _Reject(Reason.DUPLICATE, f"{m.miner} already revealed for order {m.order_id}")
        if claim_commitment(m.order_id, miner, m.mid, m.salt) != claim.commitment:
            raise _Reject(Reason.COMMITMENT_MISMATCH, "keccak(orderId, miner, mid, salt) does not open "
                          "the miner's commitment")
        if m.mid in st.by_mid:
            raise _Reject(Reason.DUPLICATE, f"model {_h(m.mid)} was already revealed in order {m.order_id}")
        row = st.reveals[miner] = RevealRow(m.order_id, miner, m.mid, m.salt, m.model_cid, self.seq + 1, sig)
        st.by_mid[m.mid] = miner
        self._mids.setdefault(m.mid, m.model_cid)
        self._put(row)
        return Result.accepted("model revealed")

    def _validation_commit(self, m: T.ValidationCommit, validator: bytes, digest: bytes, sig: bytes,
                           t: int) -> Result:
        st = self._rec(m.order_id)
        self._window(t, st.tl.t3, st.tl.validate_end, "validation (ValidationCommit)")
        self._need_stake(validator, T.VALIDATOR)
        key = (validator, m.mid)
        prev = st.vcommits.get(key)
        if prev is not None and prev.commitment == m.commitment:
            raise _Reject(Reason.REPLAY, "this exact message was already accepted")
        owner = st.by_mid.get(m.mid)
        if owner is None:
            raise _Reject(Reason.UNKNOWN_MODEL, f"model {_h(m.mid)} was not revealed in order {m.order_id}")
        if owner == validator:
            raise _Reject(Reason.NOT_AUTHORIZED, "a miner may not validate its own model")
        if prev is not None:
            raise _Reject(Reason.DUPLICATE, f"{m.validator} already committed a validation of {_h(m.mid)}")
        row = st.vcommits[key] = VCommitRow(m.order_id, validator, m.mid, m.commitment, self.seq + 1, sig)
        self._put(row)
        return Result.accepted("validation committed")

    def _validation_reveal(self, m: T.ValidationReveal, validator: bytes, digest: bytes, sig: bytes,
                           t: int) -> Result:
        st = self._rec(m.order_id)
        self._window(t, st.tl.validate_end, st.tl.validation_reveal_end, "validation reveal (ValidationReveal)")
        node = self._need_stake(validator, T.VALIDATOR)
        key = (validator, m.mid)
        prev = st.vreveals.get(key)
        if prev is not None and (prev.score, prev.salt, prev.v_stake) == (m.score, m.salt, m.v_stake):
            raise _Reject(Reason.REPLAY, "this exact message was already accepted")
        vc = st.vcommits.get(key)
        if vc is None:
            raise _Reject(Reason.NO_COMMITMENT, f"{m.validator} has no ValidationCommit for {_h(m.mid)}")
        if prev is not None:
            raise _Reject(Reason.DUPLICATE, f"{m.validator} already revealed its validation of {_h(m.mid)}")
        # the commitment includes the validator's address: a commitment copied from another
        # validator can never be opened by the copier
        if validation_commitment(m.order_id, validator, m.mid, m.score, m.salt) != vc.commitment:
            raise _Reject(Reason.COMMITMENT_MISMATCH, "keccak(orderId, validator, mid, score, salt) does "
                          "not open the validator's commitment")
        if m.v_stake == 0:
            raise _Reject(Reason.INVALID, "vStake must be positive")
        free = node.stake - node.locked
        if m.v_stake > free:
            raise _Reject(Reason.NOT_ENOUGH_STAKE, f"vStake {m.v_stake} exceeds unlocked stake {free}")
        row = st.vreveals[key] = VRevealRow(m.order_id, validator, m.mid, m.score, m.salt, m.v_stake,
                                            self.seq + 1, sig)
        st.vals_by_mid.setdefault(m.mid, []).append(row)
        node = self._nodes[validator] = node._replace(locked=node.locked + m.v_stake)
        self._put(row)
        self._put(node)
        return Result.accepted("validation revealed")

    def _cancel(self, m: T.CancelRequest, client: bytes, digest: bytes, sig: bytes, t: int) -> Result:
        st = self._rec(m.order_id)
        if m.client != st.order.client:
            raise _Reject(Reason.NOT_AUTHORIZED, f"only the order's client {st.order.client} may cancel it")
        self._window(t, st.tl.train_end, None, "cancel")
        if st.claims:
            raise _Reject(Reason.INVALID, f"order {m.order_id} has claims and cannot be cancelled")
        self._set_order(st, cancelled=1)
        self._schedule(st, t)
        return Result.accepted("cancelled; refunded at the next settlement")

    def _verify_result(self, m: T.VerifyResult, replica: bytes, digest: bytes, sig: bytes, t: int) -> Result:
        if replica not in self._members:
            raise _Reject(Reason.NOT_AUTHORIZED, f"{m.replica} is not a committee member")
        st = self._open.get(m.order_id)
        if st is None and m.order_id not in self._archived:
            raise _Reject(Reason.UNKNOWN_ORDER, f"order {m.order_id} is not in the ledger")
        if st is None or st.row.status != Status.VERIFYING or m.mid not in st.pending:
            raise _Reject(Reason.NOT_PENDING, f"model {_h(m.mid)} of order {m.order_id} awaits no PoT.Verify")
        votes = st.votes.setdefault(m.mid, {})
        if replica in votes:
            if votes[replica] == m.score:
                raise _Reject(Reason.REPLAY, "this exact message was already accepted")
            raise _Reject(Reason.DUPLICATE, f"{m.replica} already submitted a result for {_h(m.mid)}")
        votes[replica] = m.score
        self._put(VoteRow(m.order_id, m.mid, replica, m.score))
        if self._verify_stands(st, m.mid, m.score, t):
            return Result.accepted(f"PoT.Verify result {m.score} stands ({self.config.quorum} replicas)")
        return Result.accepted("vote recorded")

    def _verify_stands(self, st: OrderState, mid: bytes, score: int, t: int) -> bool:
        """Whether ``score`` has a quorum of votes for ``mid``; it then stands."""
        if sum(1 for s in st.votes.get(mid, {}).values() if s == score) < self.config.quorum:
            return False
        st.verified[mid] = score
        self._put(VerifiedRow(st.row.order_id, mid, score))
        self._set_order(st, pending=b"".join(x for x in st.pending if x != mid))
        if not st.row.pending:
            self._schedule(st, t)
        return True

    def _chain_attestation(self, m: T.ChainAttestation, replica: bytes, digest: bytes, sig: bytes,
                           t: int) -> Result:
        if replica not in self._members:
            raise _Reject(Reason.NOT_AUTHORIZED, f"{m.replica} is not a committee member")
        try:
            op = codec.decode(m.op)
        except codec.DecodeError as exc:
            raise _Reject(Reason.MALFORMED, f"attested op: {exc}") from None
        if type(op) not in T.CHAIN_EVENTS:
            raise _Reject(Reason.INVALID, f"only chain events can be attested, not {type(op).__name__}")
        ref = m.ref
        # only the working state decides (a replica restored by state transfer may lack archive
        # rows): an event whose ref left with its order is refused by that order's state instead
        if ref in self._chain_refs:
            raise _Reject(Reason.DUPLICATE, f"chain event {_h(ref)} was already applied")
        # An event about settled history is refused before it opens a vote: the ref left with
        # its order, and a member's old attestations, replayed by anyone, would otherwise each
        # hold one of its MAX_OPEN_ATTESTATIONS until it could attest nothing new.
        oid = T.event_order_id(op)
        if oid is not None and oid in self._archived:
            raise _Reject(Reason.ORDER_CLOSED, f"chain event {_h(ref)} is about order {oid}, settled and archived")
        if type(op) is T.SettlementExecuted and op.nonce < self.next_nonce and op.nonce not in self._settlements:
            raise _Reject(Reason.NOT_PENDING, f"chain event {_h(ref)}: settlement {op.nonce} was already executed")
        votes = self._chain_votes.get(ref, {})
        if replica in votes:
            raise _Reject(Reason.DUPLICATE, f"{m.replica} already attested chain event {_h(ref)}")
        if self._chain_open.get(replica, 0) >= self.MAX_OPEN_ATTESTATIONS:
            raise _Reject(Reason.TOO_LARGE, f"{m.replica} has {self.MAX_OPEN_ATTESTATIONS} attestations "
                          f"nobody else confirmed")
        op_hash = hashlib.sha256(m.op).digest()
        agree = 1 + sum(1 for h in votes.values() if h == op_hash)
        quorum = self.config.attest_quorum
        if agree < quorum:
            self._chain_votes.setdefault(ref, {})[replica] = op_hash
            self._chain_open[replica] = self._chain_open.get(replica, 0) + 1
            self._put(ChainVoteRow(ref, replica, op_hash))
            return Result.accepted(f"attestation {agree}/{quorum} of {type(op).__name__} {_h(ref)}")
        # f+1 members saw exactly this event here: it is real. Apply it once, whatever the result
        # (a refused event, e.g. a duplicate order, is still decided and must not be retried).
        handler = self._HANDLERS[type(op)]
        try:
            res = handler(self, op, t)
            outcome = f"applied: {res.text}"
        except _Reject as rej:
            res = None
            outcome = f"refused by the ledger ({rej.result.reason_enum.name}: {rej.result.text})"
        for member in votes:
            left = self._chain_open[member] - 1
            if left:
                self._chain_open[member] = left
            else:
                del self._chain_open[member]
            self._delete((ChainVoteRow, ref, member))
        self._chain_votes.pop(ref, None)
        # the ref stays in the working state while its order is open (it leaves with the order);
        # a stake change's ref stays for ever: replaying an old stake would roll a stake back (and
        # a committee change's too: they are few)
        if type(op) in (T.StakeChanged, T.EpochChanged):
            self._chain_refs[ref] = 0
            self._put(ChainRefRow(ref, 0))
        elif oid is not None and oid in self._open:
            self._chain_refs[ref] = oid
            self._put(ChainRefRow(ref, oid))
        elif not self._scratch:
            self._out_refs.append((ref, oid or 0))
        return Result.accepted(f"{type(op).__name__} {_h(ref)} attested by {quorum}; {outcome}",
                               nonces=res.nonces if res is not None else ())

    def _archived_ref(self, ref: bytes) -> bool:
        """An event ref that left the working state with its order (a read, never a rule)."""
        if any(r == ref for r, _ in self._out_refs):
            return True
        return self._arc.execute("SELECT 1 FROM archive_refs WHERE ref=?", (ref,)).fetchone() is not None

    # --- committee ops ----------------------------------------------------------------------

    def _settlement_signature(self, op: T.SettlementSignature, t: int) -> Result:
        st = self._settlements.get(op.nonce)
        if st is None:
            if 0 < op.nonce < self.next_nonce:
                raise _Reject(Reason.NOT_PENDING, f"settlement {op.nonce} was already executed")
            raise _Reject(Reason.UNKNOWN_NONCE, f"no pending settlement with nonce {op.nonce}")
        signer = address_bytes(op.signer)
        if signer not in self._members:
            raise _Reject(Reason.NOT_AUTHORIZED, f"{op.signer} is not a committee member")
        if signer in st.sigs:
            raise _Reject(Reason.DUPLICATE, f"{op.signer} already signed settlement {op.nonce}")
        try:
            ok = recover_digest(st.row.digest, op.signature) == signer
        except ValueError:
            ok = False
        if not ok:
            raise _Reject(Reason.BAD_SIGNATURE, f"not {op.signer}'s signature of settlement {op.nonce} "
                          f"for RewardMultisig {self.config.reward_multisig}")
        st.sigs[signer] = op.signature
        self._put(SigRow(op.nonce, signer, op.signature))
        return Result.accepted(f"{len(st.sigs)}/{self.config.threshold} signatures")

    # --- committee changes (docs/COMMITTEE.md) ----------------------------------------------

    def _member_vote(self, m: T.MemberVote, voter: bytes, digest: bytes, sig: bytes, t: int) -> Result:
        cfg = self.config
        if voter not in self._members:
            raise _Reject(Reason.NOT_AUTHORIZED, f"{m.voter} is not a member of epoch {cfg.epoch}")
        if m.epoch != cfg.epoch:
            raise _Reject(Reason.INVALID, f"the vote is for a change out of epoch {m.epoch}; the committee is in "
                          f"epoch {cfg.epoch}")
        try:
            change, joins = vote_change(m)
            nxt = next_seated(self.committee(), change, joins)
        except EpochError as exc:
            raise _Reject(Reason.INVALID, str(exc)) from None
        if change.deadline <= t:
            raise _Reject(Reason.WRONG_WINDOW, f"the change's deadline {change.deadline} is not after the ledger "
                          f"time {t}")
        if change.deadline > t + MAX_CHANGE_WINDOW:
            raise _Reject(Reason.INVALID, f"the change's deadline {change.deadline} is more than "
                          f"{MAX_CHANGE_WINDOW} s after the ledger time {t} (a decided change pauses settling "
                          f"until it executes or its deadline passes)")
        action_digest = change.action(cfg.reward_multisig).digest(cfg.multisig_domain)
        try:
            ok = len(m.action_signature) == 65 and recover_digest(action_digest, m.action_signature) == voter
        except ValueError:
            ok = False
        if not ok:
            raise _Reject(Reason.BAD_SIGNATURE, f"action_signature is not {m.voter}'s signature of the change's "
                          f"Action for RewardMultisig {cfg.reward_multisig}")
        votes = self._change_votes.get(action_digest, {})
        mine = votes.get(voter)
        if mine is not None and mine.signature == m.action_signature:
            raise _Reject(Reason.REPLAY, "this exact vote was already accepted")
        if mine is not None:
            raise _Reject(Reason.DUPLICATE, f"{m.voter} already voted for this change")
        for c in self._changes.values():
            if c.status in (ChangeStatus.DECIDED, ChangeStatus.CONFIRMED):
                raise _Reject(Reason.NOT_PENDING, f"change 0x{c.digest.hex()} of epoch {cfg.epoch} is already "
                              f"{ChangeStatus(c.status).label}: no other vote counts until it executes, or its "
                              f"deadline {c.deadline} passes unconfirmed")
            if voter in self._change_votes.get(c.digest, {}) and c.status == ChangeStatus.VOTING and c.deadline >= t:
                raise _Reject(Reason.DUPLICATE, f"{m.voter} already voted for change 0x{c.digest.hex()} of epoch "
                              f"{cfg.epoch}: one open vote per member, it lapses after its deadline {c.deadline}")
        body = _canonical({"change": change.as_json(), "joins": [j.as_json() for j in joins]}).decode()
        row = self._changes.get(action_digest)
        if row is None:
            row = ChangeRow(action_digest, cfg.epoch, body, change.deadline, int(ChangeStatus.VOTING), None)
        elif row.body != body:
            raise _Reject(Reason.INVALID, "this change is open with other joining members' keys or endpoints: "
                          "vote for it as it stands, or propose it again with another deadline")
        vote = ChangeVoteRow(action_digest, voter, m.action_signature, self.seq + 1)
        votes = self._change_votes.setdefault(action_digest, {})
        votes[voter] = vote
        self._put(vote)
        what = f"{change.kind.value} change 0x{action_digest.hex()[:16]}… to epoch {nxt.epoch}"
        if len(votes) >= cfg.threshold:
            row = row._replace(status=int(ChangeStatus.DECIDED), decided_seq=self.seq + 1)
            self._changes[action_digest] = row
            self._put(row)
            return Result.accepted(f"{what} decided ({len(votes)}/{cfg.threshold} votes): no new settlement until "
                                   f"it executes on chain, or its deadline {change.deadline} passes")
        self._changes[action_digest] = row
        self._put(row)
        return Result.accepted(f"vote {len(votes)}/{cfg.threshold} for {what}")

    def _epoch_changed(self, op: T.EpochChanged, t: int) -> Result:
        cur = self.config.epoch
        if op.epoch <= cur:
            raise _Reject(Reason.DUPLICATE, f"the committee is in epoch {cur} already")
        if op.epoch != cur + 1 or len(op.members) % 20:
            raise _Reject(Reason.INVALID, f"epoch {op.epoch} does not follow the ledger's epoch {cur}")
        accounts = op.accounts
        for c in sorted(self._changes.values(), key=lambda c: c.digest):
            if c.status == ChangeStatus.VOTING:
                continue
            nxt = self._next_of(c)
            if not nxt.same_members(accounts, op.threshold):
                continue
            if c.status == ChangeStatus.CONFIRMED:
                raise _Reject(Reason.DUPLICATE, f"epoch {op.epoch} is already confirmed")
            # A void change confirmed by the chain counts all the same: the chain decides by block
            # time and its event reaches the ledger only past the confirmation depth.
            row = self._changes[c.digest] = c._replace(status=int(ChangeStatus.CONFIRMED))
            self._put(row)
            return Result.accepted(f"epoch {op.epoch} confirmed on chain ({nxt.n} members, k = {nxt.threshold}): "
                                   f"takes effect at the next PBFT checkpoint")
        raise _Reject(Reason.INVALID, f"the chain's committee of epoch {op.epoch} ({len(accounts)} members, "
                      f"k = {op.threshold}) is no change this ledger decided; it stays in epoch {cur}")

    def _next_of(self, c: ChangeRow) -> Committee:
        doc = json.loads(c.body)
        joins = tuple(Joining.from_json(j) for j in doc["joins"])
        return next_seated(self.committee(), MemberChange.from_json(doc["change"]), joins)

    def _settling_paused(self) -> bool:
        return any(c.status in (ChangeStatus.DECIDED, ChangeStatus.CONFIRMED) for c in self._changes.values())

    def _lapse_changes(self, t: int) -> list[str]:
        """A decided change whose deadline passed unconfirmed is void (settling resumes); an
        undecided one is dropped with its votes (its voters may vote again)."""
        out = []
        for c in sorted(self._changes.values(), key=lambda c: c.digest):
            if c.deadline >= t:
                continue
            if c.status == ChangeStatus.DECIDED:
                row = self._changes[c.digest] = c._replace(status=int(ChangeStatus.VOID))
                self._put(row)
                out.append(f"change 0x{c.digest.hex()[:16]}… void")
            elif c.status == ChangeStatus.VOTING:
                self._drop_change(c)
        return out

    def _drop_change(self, c: ChangeRow) -> None:
        del self._changes[c.digest]
        self._delete((ChangeRow, c.digest))
        for voter in self._change_votes.pop(c.digest, {}):
            self._delete((ChangeVoteRow, c.digest, voter))

    def committee(self) -> Committee:
        """The current epoch's committee (PBFT order) with each member's key, endpoint and API URL."""
        cfg = self.config
        return Committee(cfg.epoch, cfg.committee, cfg.threshold, cfg.member_keys, cfg.member_endpoints,
                         cfg.member_api_urls)

    def pending_committee(self) -> Committee | None:
        """The next committee once the chain confirmed the decided change (``EpochReplica``
        switches to it at the next checkpoint); None before."""
        for c in self._changes.values():
            if c.status == ChangeStatus.CONFIRMED:
                return self._next_of(c)
        return None

    def activate_committee(self) -> Committee:
        """Switch to the confirmed change's committee (``EpochReplica`` calls it inside the
        replicated state, at the same point on every replica): settlements are signed for the new
        epoch by its members from now on, and every unexecuted one of an earlier epoch is issued
        again for it (same nonce and items, so at most one version ever executes). Durable."""
        nxt = self.pending_committee()
        if nxt is None:
            raise RuntimeError("no confirmed committee change to activate")
        old = self.config
        try:
            self._delete((EpochRow, old.epoch))
            for pos in range(len(old.committee)):
                self._delete((MemberRow, pos))
            self._epoch_row = EpochRow(nxt.epoch, nxt.threshold)
            self._put(self._epoch_row)
            self._seats = {i: MemberRow(i, address_bytes(m), nxt.keys[i] if nxt.keys else b"",
                                        nxt.endpoints[i] if nxt.endpoints else "",
                                        nxt.api_urls[i] if nxt.api_urls else "")
                           for i, m in enumerate(nxt.members)}
            for row in self._seats.values():
                self._put(row)
            for c in list(self._changes.values()):
                self._drop_change(c)
            gone = self._members - {address_bytes(m) for m in nxt.members}
            self._sync_config()
            self._forget_members(gone)
            reissued = [n for n in sorted(self._settlements)
                        if json.loads(self._settlements[n].row.body)["epoch"] != nxt.epoch]
            for nonce in reissued:
                self._reissue(self._settlements[nonce], self.time)
            self._commit()
        except BaseException:
            self._reload_from_disk()
            raise
        log.info("committee epoch %d: %d members, k = %d; settlements re-issued: %s", nxt.epoch, nxt.n,
                 nxt.threshold, reissued)
        return nxt

    def _forget_members(self, gone: frozenset[bytes] | set[bytes]) -> None:
        """Votes and attestations of members who left count no more (the quorums are the new
        committee's); a PoT.Verify result the remaining votes now carry stands."""
        if not gone:
            return
        for oid in sorted(self._open):
            st = self._open[oid]
            for mid in sorted(st.votes):
                votes = st.votes[mid]
                for replica in sorted(gone & votes.keys()):
                    del votes[replica]
                    self._delete((VoteRow, oid, mid, replica))
                if st.row.status == Status.VERIFYING and mid in st.pending and votes:
                    self._verify_stands(st, mid, max(votes.values(), key=lambda s: (
                        sum(1 for x in votes.values() if x == s), s)), self.time)
        for ref in sorted(self._chain_votes):
            votes = self._chain_votes[ref]
            for replica in sorted(gone & votes.keys()):
                del votes[replica]
                self._delete((ChainVoteRow, ref, replica))
                left = self._chain_open[replica] - 1
                if left:
                    self._chain_open[replica] = left
                else:
                    del self._chain_open[replica]
            if not votes:
                del self._chain_votes[ref]

    def committee_changes(self) -> list[dict[str, Any]]:
        """The current epoch's committee changes with their votes (voters sorted ascending, with
        their Action signatures): what the settler executes and ``pot aggregator epoch`` shows."""
        out = []
        for c in sorted(self._changes.values(), key=lambda c: (-c.status, c.digest)):
            doc = json.loads(c.body)
            change = MemberChange.from_json(doc["change"])
            votes = sorted(self._change_votes.get(c.digest, {}).values(), key=lambda v: v.voter)
            try:
                nxt = self._next_of(c)
            except EpochError:  # pragma: no cover - checked when the first vote came in
                nxt = None
            out.append({"digest": c.digest, "status": ChangeStatus(c.status).label, "change": change,
                        "action": change.action(self.config.reward_multisig), "joins": doc["joins"],
                        "next": nxt, "deadline": c.deadline, "decidedSeq": c.decided_seq,
                        "voters": [checksum(v.voter) for v in votes], "signatures": [v.signature for v in votes]})
        return out

    # --- chain events -----------------------------------------------------------------------

    def _order_placed(self, op: T.OrderPlaced, t: int) -> Result:
        o = op.order
        if o.order_id in self._open or o.order_id in self._archived:
            raise _Reject(Reason.DUPLICATE, f"order {o.order_id} already placed")
        p = self.config.params
        if o.reward == 0 or o.train_duration == 0 or o.validate_duration == 0 or o.challenge_duration == 0:
            raise _Reject(Reason.INVALID, "reward and every duration must be positive")
        if o.reveal_duration < p.min_reveal_duration:
            raise _Reject(Reason.INVALID, f"revealDuration {o.reveal_duration} < minimum "
                          f"{p.min_reveal_duration}")
        row = OrderRow(o.order_id, codec.encode(o), None, None, int(Status.OPEN), 0, None, self.seq + 1, None,
                       b"", b"")
        st = self._open[o.order_id] = OrderState(row, o)
        self._put(row)
        self._schedule(st, self._due_time(st))
        return Result.accepted("order placed")

    def _test_released(self, op: T.TestDataReleased, t: int) -> Result:
        st = self._rec(op.order_id)
        if st.row.t3 is not None:
            raise _Reject(Reason.DUPLICATE, f"test data of order {op.order_id} already released")
        if not t3_valid(st.order, op.t3):
            raise _Reject(Reason.WRONG_WINDOW, f"t3 {op.t3} outside test release window "
                          f"[{st.tl.reveal_end}, {st.tl.release_end})")
        self._set_order(st, t3=op.t3, test_cid=op.test_cid)
        self._schedule(st, self._due_time(st))
        return Result.accepted("test data released")

    def _stake_changed(self, op: T.StakeChanged, t: int) -> Result:
        account = address_bytes(op.account)
        old = self._nodes.get(account)
        node = self._nodes[account] = NodeRow(account, op.roles, op.amount, 0 if old is None else old.locked)
        self._put(node)
        return Result.accepted("stake updated")

    def _challenge_committed(self, op: T.ChallengeCommitted, t: int) -> Result:
        st = self._rec(op.order_id)
        # the chain checked the window by block time; ledger time is later (confirmations), never earlier
        self._window(t, st.tl.validation_reveal_end, None, "challenge commit")
        challenger = address_bytes(op.challenger)
        if challenger in st.challenges:
            raise _Reject(Reason.DUPLICATE, f"{op.challenger} already challenged in order {op.order_id}")
        if op.c_stake == 0:
            raise _Reject(Reason.INVALID, "cStake must be positive")
        row = st.challenges[challenger] = ChallengeRow(op.order_id, challenger, op.commitment, op.c_stake, None,
                                                       self.seq + 1)
        self._put(row)
        return Result.accepted("challenge committed")

    def _challenge_revealed(self, op: T.ChallengeRevealed, t: int) -> Result:
        st = self._rec(op.order_id)
        self._window(t, st.tl.challenge_end, None, "challenge reveal")
        challenger = address_bytes(op.challenger)
        ch = st.challenges.get(challenger)
        if ch is None:
            raise _Reject(Reason.NO_COMMITMENT, f"{op.challenger} has no challenge in order {op.order_id}")
        if ch.vid is not None:
            raise _Reject(Reason.DUPLICATE, f"{op.challenger}'s challenge is already revealed")
        row = st.challenges[challenger] = ch._replace(vid=op.vid)
        self._put(row)
        return Result.accepted("challenge revealed")

    def _settlement_executed(self, op: T.SettlementExecuted, t: int) -> Result:
        st = self._settlements.get(op.nonce)
        if st is None:
            if 0 < op.nonce < self.next_nonce:
                raise _Reject(Reason.DUPLICATE, f"settlement {op.nonce} already executed")
            raise _Reject(Reason.UNKNOWN_NONCE, f"no settlement with nonce {op.nonce}")
        order_ids = st.order_ids
        extra = sorted(set(op.order_ids) - set(order_ids))
        if extra:
            raise _Reject(Reason.INVALID, f"settlement {op.nonce} settles {order_ids}, "
                          f"the event says {list(op.order_ids)}")
        applied = set(op.order_ids)
        skipped = [oid for oid in order_ids if oid not in applied]
        released: dict[bytes, int] = {}
        for oid in order_ids:
            for v in self._open[oid].vreveals.values():   # vStake is no longer at risk
                released[v.validator] = released.get(v.validator, 0) + v.v_stake
        for validator in sorted(released):
            node = self._nodes.get(validator)
            if node is not None:
                node = self._nodes[validator] = node._replace(locked=max(0, node.locked - released[validator]))
                self._put(node)
        for oid in order_ids:
            rec = self._open[oid]
            # an order the contract skipped (its client reclaimed it first) is closed all the same:
            # its escrow is gone, and nothing else may be paid from it
            self._archive_order(rec, Status.SETTLED if oid in applied else Status.SKIPPED)
        st.row = st.row._replace(executed=1, tx_hash=op.tx_hash)
        self._archive_settlement(st)
        return Result.accepted(f"settlement {op.nonce} executed"
                               + (f"; {len(skipped)} orders skipped on-chain" if skipped else ""))

    # --- the archive ------------------------------------------------------------------------

    def _archive_order(self, st: OrderState, status: Status) -> None:
        """Move a closed order out of the working state: one archive row with everything the API
        serves (claims, reveals, validations, challenges and their signatures); its replay guards
        (seen digests, validation commitments, votes) go, as the order refuses every op now."""
        oid = st.row.order_id
        st.row = st.row._replace(status=int(status))
        del self._open[oid]
        self._archived.add(oid)
        if self._scratch:
            return
        # the working rows' texts are at hand; only the order row changed (its status)
        texts = self._rows
        rows = st.rows()
        head = row_text(next(rows))
        blob = zlib.compress(b"\n".join([head, *(texts.get(key_of(r)) or row_text(r) for r in rows)]), 1)
        self._acc_archive = (self._acc_archive + archive_term("order", blob)) & _MASK
        self._acc_ids = (self._acc_ids + _id_term(oid)) & _MASK
        self._meta_dirty = True
        row, models, accounts = archived_order_index(st, blob)
        self._out_orders.append(row)
        self._out_models += models
        self._out_accounts += accounts
        self._delete((OrderRow, oid))
        for miner in st.claims:
            self._delete((ClaimRow, oid, miner))
        for d in st.seen:
            self._delete((SeenRow, oid, d))
        for miner, r in st.reveals.items():
            self._delete((RevealRow, oid, miner))
            # the link now comes from the models table (written with this archive row)
            self._mids.pop(r.mid, None)
        for k in st.vcommits:
            self._delete((VCommitRow, oid, *k))
        for k in st.vreveals:
            self._delete((VRevealRow, oid, *k))
        for c in st.challenges:
            self._delete((ChallengeRow, oid, c))
        for mid, votes in st.votes.items():
            for replica in votes:
                self._delete((VoteRow, oid, mid, replica))
        for mid in st.verified:
            self._delete((VerifiedRow, oid, mid))
        refs = [r for r, o in self._chain_refs.items() if o == oid] if self.config.attested_chain_events else []
        for ref in refs:
            del self._chain_refs[ref]
            self._delete((ChainRefRow, ref))
            self._out_refs.append((ref, oid))

    def _archive_settlement(self, st: SettlementState) -> None:
        nonce = st.row.nonce
        del self._settlements[nonce]
        if self._scratch:
            return
        rows = [st.row] + [SigRow(nonce, s, sig) for s, sig in sorted(st.sigs.items())]
        blob = zlib.compress(b"\n".join(row_text(r) for r in rows), 1)
        self._acc_archive = (self._acc_archive + archive_term("settlement", blob)) & _MASK
        self._meta_dirty = True
        self._out_settlements.append((nonce, blob))
        self._out_accounts += archived_settlement_accounts(st.row)
        self._delete((SettlementRow, nonce))
        for s in st.sigs:
            self._delete((SigRow, nonce, s))

    # --- time -------------------------------------------------------------------------------

    def _tick(self, op: T.Tick, t: int) -> Result:
        params = self.config.params
        lapsed = self._lapse_changes(t) if self._changes else []
        if self._settling_paused():
            # between a change's decision and the switch to its committee the ledger signs nothing
            # new: the chain may move to the new committee at any block
            return Result.accepted("tick; settling paused: a committee change is decided")
        if lapsed:
            log.info("committee changes lapsed: %s", lapsed)
        reissued = self._reissue_expired(t)
        due: set[int] = set()
        while self._due and self._due[0][0] <= t:
            due.add(heapq.heappop(self._due)[1])
        batch: list[OrderCycle] = []
        for oid in sorted(due):
            st = self._open.get(oid)
            if st is None or st.row.status not in _ACTIVE:
                continue
            if st.row.status == Status.OPEN:
                if not st.row.cancelled and t < st.tl.final + params.finalize_delay:
                    self._schedule(st, self._due_time(st))  # the test release moved it later
                    continue
                cyc = self.cycle(oid)
                pending = [m for m in disputed_models(cyc) if m not in st.verified]
                if pending:
                    self._set_order(st, status=int(Status.VERIFYING), pending=b"".join(pending),
                                    verifying_since=t)
                    self._schedule(st, self._due_time(st))
                    continue
                batch.append(cyc)
                continue
            if st.row.pending:
                # PoT.Verify's deadline: what 2f+1 replicas did not agree on by now is excluded
                if t < st.row.verifying_since + params.verify_timeout:
                    self._schedule(st, self._due_time(st))
                    continue
                self._set_order(st, excluded=b"".join(sorted(st.pending)), pending=b"")
            batch.append(self.cycle(oid))
        if not batch:
            return Result.accepted(f"tick; re-issued settlements {reissued}" if reissued else "tick")
        first = self.next_nonce
        settlements = plan(batch, first_nonce=first, params=params, committee=self.config.committee,
                           threshold=self.config.threshold, epoch=self.config.epoch,
                           deadline=t + params.settlement_ttl)
        for settlement in settlements:
            row = SettlementRow(settlement.nonce, ",".join(str(o) for o in settlement.order_ids),
                                _canonical(settlement_to_json(settlement)).decode(),
                                settlement.digest(self.config.multisig_domain), settlement.deadline, 0, None)
            self._settlements[settlement.nonce] = SettlementState(row)
            self._put(row)
            for oid in settlement.order_ids:
                self._set_order(self._open[oid], status=int(Status.SETTLING), nonce=settlement.nonce)
        self.next_nonce = first + len(settlements)
        nonces = tuple(range(first, first + len(settlements)))
        return Result.accepted(f"settlements {first}..{nonces[-1]} for {len(batch)} orders", nonces=nonces)

    def _reissue_expired(self, t: int) -> list[int]:
        """Give every unexecuted settlement whose deadline passed a new one (same nonce and items,
        so at most one version ever executes); its signatures start over."""
        out = []
        for nonce in sorted(self._settlements):
            st = self._settlements[nonce]
            if st.row.deadline >= t:
                continue
            self._reissue(st, t)
            out.append(nonce)
        return out

    def _reissue(self, st: SettlementState, t: int) -> None:
        """The same batch for the current epoch with a new deadline; its signatures start over."""
        settlement = settlement_from_json(json.loads(st.row.body)).with_terms(
            epoch=self.config.epoch, deadline=t + self.config.params.settlement_ttl)
        st.row = st.row._replace(body=_canonical(settlement_to_json(settlement)).decode(),
                                 digest=settlement.digest(self.config.multisig_domain),
                                 deadline=settlement.deadline)
        self._put(st.row)
        for s in st.sigs:
            self._delete((SigRow, st.row.nonce, s))
        st.sigs = {}

    _HANDLERS: dict[type, Callable[..., Result]] = {}
    _MSG_HANDLERS: dict[type, Callable[..., Result]] = {}

    # --- reads (working state first, then the archive) --------------------------------------

    def order_state(self, order_id: int) -> OrderState | None:
        """An order's records, open or archived (an archived one is read back from its row)."""
        st = self._open.get(order_id)
        if st is not None:
            return st
        if order_id not in self._archived:
            return None
        row = self._arc.execute("SELECT rows FROM archive_orders WHERE order_id=?", (order_id,)).fetchone()
        if row is None:
            return None   # archived before this replica caught up by state transfer: archive_lacks_order
        return order_from_blob(row[0])

    def order_ids(self) -> list[int]:
        """Every order id the ledger holds, open or archived, highest first."""
        archived = [r[0] for r in self._arc.execute("SELECT order_id FROM archive_orders")]
        return sorted(set(self._open) | set(archived), reverse=True)

    def archived_order_ids(self, *, status: Status | None = None, cancelled: bool | None = None,
                           client: str | None = None, account: str | None = None) -> list[int]:
        """Archived order ids, highest first, filtered by the archive's own columns (no row is
        read back): what a list of settled orders costs is an index scan. ``account``: only the
        orders it was client, miner, validator or challenger in."""
        where, args = [], []
        if account is not None:
            where.append("order_id IN (SELECT order_id FROM archive_accounts WHERE account=?)")
            args.append(address_bytes(account))
        if status is not None:
            where.append("status=?")
            args.append(int(status))
        if cancelled is not None:
            where.append("cancelled=?")
            args.append(int(cancelled))
        if client is not None:
            where.append("client=?")
            args.append(address_bytes(client))
        sql = "SELECT order_id FROM archive_orders" + (" WHERE " + " AND ".join(where) if where else "")
        return [r[0] for r in self._arc.execute(sql + " ORDER BY order_id DESC", args)]

    def order_status(self, order_id: int) -> tuple[Status, bool] | None:
        """(status, cancelled) of an order, open or archived, without reading its records."""
        st = self._open.get(order_id)
        if st is not None:
            return st.status, bool(st.row.cancelled)
        row = self._arc.execute("SELECT status, cancelled FROM archive_orders WHERE order_id=?",
                               (order_id,)).fetchone()
        return None if row is None else (Status(row[0]), bool(row[1]))

    def open_order_ids(self) -> list[int]:
        return sorted(self._open)

    def settlement_state(self, nonce: int) -> SettlementState | None:
        st = self._settlements.get(nonce)
        if st is not None:
            return st
        row = self._arc.execute("SELECT rows FROM archive_settlements WHERE nonce=?", (nonce,)).fetchone()
        if row is None:
            return None
        return settlement_from_blob(row[0])

    def settlement_executed(self, nonce: int) -> bool:
        """Executed settlements are the archived ones: the working state holds only pending ones."""
        return nonce not in self._settlements and 0 < nonce < self.next_nonce

    def settlement_nonces(self) -> list[int]:
        """Every settlement nonce, pending or executed, highest first."""
        archived = [r[0] for r in self._arc.execute("SELECT nonce FROM archive_settlements")]
        return sorted(set(self._settlements) | set(archived), reverse=True)

    def order(self, order_id: int) -> T.Order | None:
        st = self.order_state(order_id)
        return None if st is None else st.order

    def cycle(self, order_id: int) -> OrderCycle:
        """The order's cycle data as ``pot.protocol.finalize`` takes it."""
        st = self.order_state(order_id)
        if st is None:
            raise KeyError(order_id)
        oid = int(order_id)
        return OrderCycle(
            order=st.order, t3=st.row.t3,
            claims=tuple(_make(T.ClaimCommit, order_id=oid, miner=checksum(c.miner), commitment=c.commitment)
                         for c in sorted(st.claims.values(), key=lambda c: c.seq)),
            reveals=tuple(_make(T.ClaimReveal, order_id=oid, miner=checksum(r.miner), mid=r.mid, salt=r.salt,
                                model_cid=r.model_cid)
                          for r in sorted(st.reveals.values(), key=lambda r: r.seq)),
            validations=tuple(_make(T.ValidationReveal, order_id=oid, validator=checksum(v.validator), mid=v.mid,
                                    score=v.score, salt=v.salt, v_stake=v.v_stake)
                              for v in sorted(st.vreveals.values(), key=lambda v: v.seq)),
            challenges=tuple(T.Challenge(oid, checksum(c.challenger), c.commitment, c.c_stake, c.vid)
                             for c in sorted(st.challenges.values(), key=lambda c: c.seq)),
            verified=dict(st.verified), cancelled=bool(st.row.cancelled), excluded=frozenset(st.excluded))

    def phase(self, order_id: int, now: int | None = None) -> Phase:
        st = self.order_state(order_id)
        if st is None:
            raise KeyError(order_id)
        return phase(st.order, st.row.t3, self.time if now is None else now)

    def fetch_orders(self, limit: int | None = None, now: int | None = None) -> list[T.Order]:
        """Manage.FetchOrders: orders still in training, best reward per second of training first."""
        now = self.time if now is None else now
        out = [st.order for st in self._open.values()
               if st.row.status == Status.OPEN and not st.row.cancelled and st.tl.t0 <= now < st.tl.train_end]
        # exact rational comparison (reward/trainDuration), ties by order id: same on every replica
        from functools import cmp_to_key

        def cmp(a: T.Order, b: T.Order) -> int:
            x, y = a.reward * b.train_duration, b.reward * a.train_duration
            return -1 if x > y else 1 if x < y else (a.order_id > b.order_id) - (a.order_id < b.order_id)
        out.sort(key=cmp_to_key(cmp))
        return out[:limit] if limit is not None else out

    def order_cycle_data(self, order_id: int) -> dict[str, Any]:
        """The paper's order cycle data ⟨order, phase, mList⟩, JSON-ready (API), with the
        signature of every message the ledger accepted for it."""
        st = self.order_state(order_id)
        if st is None:
            raise KeyError(order_id)
        row = st.row
        tl = st.tl
        models = []
        for r in sorted(st.reveals.values(), key=lambda r: r.seq):
            vals = sorted(st.vals_by_mid.get(r.mid, ()), key=lambda v: v.seq)
            models.append({"mid": _h(r.mid), "miner": checksum(r.miner), "modelCid": r.model_cid,
                           "salt": _h(r.salt), "seq": r.seq, "signature": _h(r.signature),
                           "validations": [_validation_json(v) for v in vals],
                           "verifiedScore": st.verified.get(r.mid)})
        return {"order": codec.to_json(st.order), "phase": phase(st.order, row.t3, self.time).value,
                "status": st.status.label, "cancelled": bool(row.cancelled), "t3": row.t3,
                "testCid": row.test_cid, "timeline": {k: getattr(tl, k) for k in tl.__dataclass_fields__},
                "claims": [{"miner": checksum(c.miner), "commitment": _h(c.commitment), "seq": c.seq,
                            "signature": _h(c.signature)}
                           for c in sorted(st.claims.values(), key=lambda c: c.seq)],
                "models": models,
                "challenges": [{"challenger": checksum(c.challenger), "commitment": _h(c.commitment),
                                "cStake": c.c_stake, "vid": _h(c.vid) if c.vid is not None else None, "seq": c.seq}
                               for c in sorted(st.challenges.values(), key=lambda c: c.seq)],
                "pendingVerification": [_h(m) for m in st.pending], "excluded": [_h(m) for m in st.excluded],
                "nonce": row.nonce}

    def fetch_validations(self, order_id: int) -> list[T.ValidationReveal]:
        """Manage.FetchValidations: the revealed validations of an order, ledger order."""
        return list(self.cycle(order_id).validations)

    def model_link(self, mid: bytes) -> str | None:
        cid = self._mids.get(bytes(mid))
        if cid is not None:
            return cid
        row = self._arc.execute("SELECT cid FROM models WHERE mid=?", (bytes(mid),)).fetchone()
        return None if row is None else row[0]

    def node_info(self, account: str) -> dict[str, int] | None:
        node = self._nodes.get(address_bytes(account))
        return None if node is None else {"roles": node.roles, "stake": node.stake, "locked": node.locked}

    def pending_settlements(self) -> list[dict[str, Any]]:
        """Settlements not yet executed, with the signatures collected so far.

        ``signatures`` is sorted by signer address ascending (what a contract checking for
        distinct signers in one pass expects); ``ready`` once ``threshold`` are in."""
        out = []
        for nonce in sorted(self._settlements):
            st = self._settlements[nonce]
            sigs = sorted(st.sigs.items())
            out.append({"nonce": nonce, "settlement": settlement_from_json(json.loads(st.row.body)),
                        "digest": st.row.digest, "orderIds": st.order_ids,
                        "signers": [checksum(s) for s, _ in sigs], "signatures": [x for _, x in sigs],
                        "ready": len(sigs) >= self.config.threshold})
        return out

    def chain_event(self, ref: bytes) -> dict[str, Any]:
        """Where the chain event at ``ref`` stands: applied, or which members attested it so far."""
        ref = bytes(ref)
        applied = ref in self._chain_refs or self._archived_ref(ref)
        return {"applied": applied, "attesters": sorted(checksum(a) for a in self._chain_votes.get(ref, {}))}

    def settlement(self, nonce: int) -> Settlement | None:
        st = self.settlement_state(nonce)
        return None if st is None else settlement_from_json(json.loads(st.row.body))

    def pending_verifications(self) -> list[dict[str, Any]]:
        """Models each replica must recompute with PoT.Verify (outside ``apply``)."""
        out = []
        for oid in sorted(self._open):
            st = self._open[oid]
            if st.row.status != Status.VERIFYING:
                continue
            for mid in st.pending:
                miner = st.by_mid.get(mid)
                out.append({"orderId": oid, "mid": mid,
                            "modelCid": self.model_link(mid) if miner is None else st.reveals[miner].model_cid,
                            "testCid": st.row.test_cid, "modelType": st.order.model_type_name,
                            "specCid": st.order.spec_cid})
        return out

    # --- the archive a replica restored from a snapshot lacks (pot.ledger.backfill) ----------

    def archive_lacks_order(self, order_id: int) -> bool:
        """The digest says ``order_id`` was archived, but its row is not here (yet): this replica
        caught up by state transfer past it. Its reads answer "not here yet", never "unknown"."""
        return (order_id not in self._open and order_id in self._archived
                and self._arc.execute("SELECT 1 FROM archive_orders WHERE order_id=?",
                                      (order_id,)).fetchone() is None)

    def archive_lacks_settlement(self, nonce: int) -> bool:
        """As ``archive_lacks_order``, for an executed settlement."""
        return (self.settlement_executed(nonce)
                and self._arc.execute("SELECT 1 FROM archive_settlements WHERE nonce=?", (nonce,)).fetchone() is None)

    def archive_missing(self) -> int:
        """How many archived orders and executed settlements have no row here: one indexed count
        per id range, so cheap enough to ask between batches."""
        have = 0
        for a, b in self._archived.pairs:
            have += self._arc.execute("SELECT COUNT(*) FROM archive_orders WHERE order_id BETWEEN ? AND ?",
                                      (a, b)).fetchone()[0]
        want = self._archived.count() - have
        pending = sorted(n for n in self._settlements if n < self.next_nonce)
        rows = self._arc.execute("SELECT COUNT(*) FROM archive_settlements WHERE nonce BETWEEN 1 AND ?",
                                 (self.next_nonce - 1,)).fetchone()[0]
        if pending:
            marks = ",".join("?" * len(pending))
            rows -= self._arc.execute(f"SELECT COUNT(*) FROM archive_settlements WHERE nonce IN ({marks})",
                                      pending).fetchone()[0]
        return want + (self.next_nonce - 1 - len(pending)) - rows

    def archive_target(self) -> ArchiveTarget:
        """What the archive must hold at this point of the history (taken between batches, on the
        thread that applies): the archived order ids, the executed settlement nonces and the
        archive's accumulated hash the digest vouches for. Rows archived later are of other ids."""
        if self._path is None:
            raise ValueError("an in-memory ledger has no archive file to backfill")
        return ArchiveTarget(archive_path(self._path), self._acc_archive, self._archived.copy(), self.next_nonce,
                             frozenset(self._settlements))

    def archive_page(self, kind: str, after: int, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Archive blobs (``kind`` "orders" or "settlements") with an id above ``after``, in id
        order: at most ``limit`` of them and, past the first, at most ``max_bytes`` in all (what a
        peer serves a replica that backfills its archive)."""
        table, key = {"orders": ("archive_orders", "order_id"), "settlements": ("archive_settlements", "nonce")}[kind]
        sql = f"SELECT {key}, rows FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?"
        out, size = [], 0
        for oid, blob in self._arc.execute(sql, (after, limit)):
            # only what the digest vouches for: a row of an order still open (a crash left it) is not served
            if (kind == "orders" and oid not in self._archived) or (kind == "settlements"
                                                                    and not self.settlement_executed(oid)):
                continue
            if out and size + len(blob) > max_bytes:
                break
            out.append((oid, bytes(blob)))
            size += len(blob)
        return out

    # --- digest and snapshots ---------------------------------------------------------------

    def digest(self) -> bytes:
        """Equal on every replica with the same history; O(1): the row hashes are kept up to date
        as rows change (module docstring)."""
        return _digest(self._config_hash, self.seq, self.time, self.next_nonce, self._acc_work, self._acc_archive,
                       self._acc_ids)

    def snapshot(self) -> bytes:
        """The working state for PBFT state transfer: a header line (schema, configuration hash,
        counters, the archive's accumulated hash and its id ranges), then each working row's
        canonical text, one per line (no pickle: safe to take from a peer). The archive itself
        does not travel: a replica restored from a snapshot serves the archive it has."""
        head = _canonical({"version": SCHEMA_VERSION, "config": self._config_hash.hex(), "seq": self.seq,
                           "time": self.time, "nextNonce": self.next_nonce,
                           "accArchive": str(self._acc_archive), "archived": self._archived.encode()})
        return b"\n".join([head, *self._rows.values()])

    def restore_snapshot(self, snapshot: bytes) -> None:
        """Replace the working state by a peer's snapshot (PBFT state transfer), durably."""
        head, _, body = bytes(snapshot).partition(b"\n")
        try:
            doc = json.loads(head)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"snapshot is not a ledger snapshot: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("config") != self._config_hash.hex():
            raise ValueError("snapshot belongs to another ledger configuration")
        if doc.get("version") != SCHEMA_VERSION:
            raise ValueError(f"snapshot has schema version {doc.get('version')}, this ledger {SCHEMA_VERSION}")
        rows = [R.parse_row(line) for line in body.split(b"\n")] if body else []
        archived = IdRanges.decode(doc["archived"])
        self._reset()
        self.seq, self.time, self.next_nonce = int(doc["seq"]), int(doc["time"]), int(doc["nextNonce"])
        self._archived = archived
        self._acc_archive = int(doc["accArchive"]) & _MASK
        for oid in archived:
            self._acc_ids = (self._acc_ids + _id_term(oid)) & _MASK
        self._index(rows)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        for cls in R.ROWS:
            db.execute(f"DELETE FROM {cls.TABLE}")
            marks = ",".join("?" * len(cls._fields))
            db.executemany(f"INSERT INTO {cls.TABLE} VALUES ({marks})",
                           [R.to_sql(r) for r in rows if type(r) is cls])
        db.executemany("UPDATE meta SET value=? WHERE key=?", [
            (self.seq, "seq"), (self.time, "time"), (self.next_nonce, "next_nonce"),
            (self._archived.encode(), "archived"), (str(self._acc_archive), "acc_archive"),
            (str(self._acc_ids), "acc_ids")])
        db.execute("COMMIT")

    @classmethod
    def restore(cls, snapshot: bytes, config: LedgerConfig, path: str | None = None, **kw: Any) -> Ledger:
        """A new ledger holding ``snapshot``'s state."""
        ledger = cls(config, path, **kw)
        ledger.restore_snapshot(snapshot)
        return ledger

    def full_digest(self) -> bytes:
        """``digest`` recomputed from scratch from the working rows (tests, audits): equal to
        ``digest`` whenever the incremental terms are right."""
        acc = 0
        for text in self._rows.values():
            acc += _hash(text)
        return _digest(self._config_hash, self.seq, self.time, self.next_nonce, acc & _MASK, self._acc_archive,
                       sum(_id_term(o) for o in self._archived) & _MASK)


def _validation_json(v: VRevealRow) -> dict[str, Any]:
    return {"validator": checksum(v.validator), "mid": _h(v.mid), "score": v.score, "salt": _h(v.salt),
            "vStake": v.v_stake, "seq": v.seq, "signature": _h(v.signature)}


Ledger._HANDLERS = {
    T.Signed: Ledger._on_signed, T.SettlementSignature: Ledger._settlement_signature,
    T.OrderPlaced: Ledger._order_placed, T.TestDataReleased: Ledger._test_released,
    T.StakeChanged: Ledger._stake_changed, T.ChallengeCommitted: Ledger._challenge_committed,
    T.ChallengeRevealed: Ledger._challenge_revealed, T.SettlementExecuted: Ledger._settlement_executed,
    T.EpochChanged: Ledger._epoch_changed, T.Tick: Ledger._tick,
}
Ledger._MSG_HANDLERS = {
    T.ClaimCommit: Ledger._claim_commit, T.ClaimReveal: Ledger._claim_reveal,
    T.ValidationCommit: Ledger._validation_commit, T.ValidationReveal: Ledger._validation_reveal,
    T.CancelRequest: Ledger._cancel, T.VerifyResult: Ledger._verify_result,
    T.ChainAttestation: Ledger._chain_attestation, T.MemberVote: Ledger._member_vote,
}
