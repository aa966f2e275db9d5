"""The ledger's state as typed records: one ``NamedTuple`` per SQLite table, keyed by its first
``KEY`` fields (tuple keys: order id, 20-byte addresses, 32-byte ids; never hex strings).

A row holds only ``int``, ``bytes``, ``str`` and ``None``. Its canonical text (``row_text``) is
what the checkpoint digest hashes, what a snapshot carries and what the archive stores: the
table's tag, then Python's ``ascii()`` of the plain tuple. ``ascii`` of those four types is
injective and does not change between Python versions (it escapes everything outside printable
ASCII), and ``parse_row`` reads it back with ``ast.literal_eval`` (literals only: never code),
then checks every field's type, so a snapshot from a peer is data and nothing else.

Integers that may pass SQLite's 64 bits (stakes, scores, amounts: ``uint256`` on the wire) are
stored as decimal text in SQL (``BIG``) and are ints everywhere else.
"""

from __future__ import annotations

import ast
import enum
from typing import Any, NamedTuple


class Status(enum.IntEnum):
    """Where an order stands. Settled and skipped orders leave the working state (archive)."""
    OPEN = 0
    VERIFYING = 1
    SETTLING = 2
    SETTLED = 3
    SKIPPED = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def closed(self) -> bool:
        return self in (Status.SETTLED, Status.SKIPPED)


class OrderRow(NamedTuple):
    order_id: int
    wire: bytes                  # the Order's wire bytes (pot.protocol.codec)
    t3: int | None
    test_cid: str | None
    status: int                  # Status
    cancelled: int               # 0 or 1
    nonce: int | None            # the settlement that settles it, once built
    placed_seq: int
    verifying_since: int | None
    pending: bytes               # mids awaiting PoT.Verify, 32 bytes each, in ranked order
    excluded: bytes              # mids PoT.Verify did not settle by its deadline, sorted
    TABLE = "orders"
    KEY = 1


class ClaimRow(NamedTuple):
    order_id: int
    miner: bytes
    commitment: bytes
    seq: int
    signature: bytes
    TABLE = "claims"
    KEY = 2


class SeenRow(NamedTuple):
    """The EIP-712 digest of an accepted ClaimCommit: an older commit replayed after a newer one
    must not roll the claim back (the other messages are refused as replays by their own row)."""
    order_id: int
    digest: bytes
    TABLE = "seen"
    KEY = 2


class RevealRow(NamedTuple):
    order_id: int
    miner: bytes
    mid: bytes
    salt: bytes
    model_cid: str
    seq: int
    signature: bytes
    TABLE = "reveals"
    KEY = 2


class VCommitRow(NamedTuple):
    order_id: int
    validator: bytes
    mid: bytes
    commitment: bytes
    seq: int
    signature: bytes
    TABLE = "vcommits"
    KEY = 3


class VRevealRow(NamedTuple):
    order_id: int
    validator: bytes
    mid: bytes
    score: int
    salt: bytes
    v_stake: int
    seq: int
    signature: bytes
    TABLE = "vreveals"
    KEY = 3
    BIG = (3, 5)


class ChallengeRow(NamedTuple):
    order_id: int
    challenger: bytes
    commitment: bytes
    c_stake: int
    vid: bytes | None
    seq: int
    TABLE = "challenges"
    KEY = 2
    BIG = (3,)


class VoteRow(NamedTuple):
    """One committee replica's PoT.Verify result for a model."""
    order_id: int
    mid: bytes
    replica: bytes
    score: int
    TABLE = "votes"
    KEY = 3
    BIG = (3,)


class VerifiedRow(NamedTuple):
    """A PoT.Verify result 2f+1 replicas agreed on: it stands."""
    order_id: int
    mid: bytes
    score: int
    TABLE = "verified"
    KEY = 2
    BIG = (2,)


class NodeRow(NamedTuple):
    account: bytes
    roles: int
    stake: int
    locked: int
    TABLE = "nodes"
    KEY = 1
    BIG = (2, 3)


class SettlementRow(NamedTuple):
    nonce: int
    order_ids: str               # comma-separated, batch order
    body: str                    # canonical JSON of the Settlement (settlement_to_json)
    digest: bytes                # its EIP-712 digest in the multisig domain
    deadline: int                # the body's deadline (a Tick re-issues the batch after it)
    executed: int                # 0 or 1
    tx_hash: bytes | None
    TABLE = "settlements"
    KEY = 1


class SigRow(NamedTuple):
    """A committee member's signature of a settlement."""
    nonce: int
    signer: bytes
    signature: bytes
    TABLE = "settlement_sigs"
    KEY = 2


class ChainVoteRow(NamedTuple):
    """A member's attestation of chain event ``ref`` (the sha256 of the attested op's bytes)."""
    ref: bytes
    replica: bytes
    op_hash: bytes
    TABLE = "chain_votes"
    KEY = 2


class ChainRefRow(NamedTuple):
    """A chain event that was applied. ``order_id`` is the open order it belongs to (the ref goes
    to the archive with it); 0 for a stake change, whose replay must be refused for ever."""
    ref: bytes
    order_id: int
    TABLE = "chain_refs"
    KEY = 1


class EpochRow(NamedTuple):
    """The committee's epoch (RewardMultisig.epoch() while it signs) and its threshold k: one row."""
    epoch: int
    threshold: int
    TABLE = "epoch"
    KEY = 1


class MemberRow(NamedTuple):
    """A member of the current committee: its PBFT index, account, compressed public key, PBFT
    ``host:port`` (empty where the ledger runs without a PBFT committee) and public API URL (empty
    where unknown: a genesis member whose URL was not configured)."""
    position: int
    account: bytes
    public_key: bytes
    endpoint: str
    api_url: str
    TABLE = "members"
    KEY = 1


class ChangeStatus(enum.IntEnum):
    """Where a committee change of the current epoch stands (docs/COMMITTEE.md)."""
    VOTING = 0
    DECIDED = 1      # k votes: the ledger holds k signatures of the Action; settling paused
    CONFIRMED = 2    # the chain's EpochChanged matched it: takes effect at the PBFT boundary
    VOID = 3         # decided, but its deadline passed unconfirmed: settling resumed

    @property
    def label(self) -> str:
        return self.name.lower()


class ChangeRow(NamedTuple):
    """A committee change members voted for, keyed by its Action's EIP-712 digest."""
    digest: bytes
    epoch: int
    body: str                    # canonical JSON: {"change": MemberChange.as_json(), "joins": [...]}
    deadline: int
    status: int                  # ChangeStatus
    decided_seq: int | None      # the ledger seq of the vote that decided it
    TABLE = "changes"
    KEY = 1


class ChangeVoteRow(NamedTuple):
    """A member's vote for a change: its signature of the change's Action (for executeAction)."""
    digest: bytes
    voter: bytes
    signature: bytes
    seq: int
    TABLE = "change_votes"
    KEY = 2


ROWS: tuple[type, ...] = (OrderRow, ClaimRow, SeenRow, RevealRow, VCommitRow, VRevealRow, ChallengeRow,
                          VoteRow, VerifiedRow, NodeRow, SettlementRow, SigRow, ChainVoteRow, ChainRefRow,
                          EpochRow, MemberRow, ChangeRow, ChangeVoteRow)
#: one byte per table: the text of a row starts with it, so rows of two tables never hash alike
TAGS: dict[type, bytes] = {cls: bytes([0x41 + i]) for i, cls in enumerate(ROWS)}
BY_TAG: dict[int, type] = {tag[0]: cls for cls, tag in TAGS.items()}
#: the Python types each field may hold (None only where the annotation allows it)
_TYPES = {"int": (int,), "bytes": (bytes,), "str": (str,), "int | None": (int, type(None)),
          "bytes | None": (bytes, type(None)), "str | None": (str, type(None))}
FIELD_TYPES: dict[type, tuple[tuple[type, ...], ...]] = {
    cls: tuple(_TYPES[getattr(a, "__forward_arg__", a)] for a in cls.__annotations__.values()) for cls in ROWS}

_tuple_repr = tuple.__repr__


def key_of(row: tuple) -> tuple:
    """(table, key fields...): a row's identity in the working state."""
    return (type(row), *row[:type(row).KEY])


def row_text(row: tuple) -> bytes:
    """The canonical bytes of a row (module docstring)."""
    return TAGS[type(row)] + _tuple_repr(row).encode("ascii", "backslashreplace")


def parse_row(text: bytes) -> tuple:
    """Inverse of ``row_text``, as strict as a decoder: ValueError for anything else."""
    if not text:
        raise ValueError("empty row")
    cls = BY_TAG.get(text[0])
    if cls is None:
        raise ValueError(f"unknown row tag 0x{text[0]:02x}")
    try:
        values = ast.literal_eval(text[1:].decode("ascii"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"{cls.__name__}: unreadable row") from exc
    kinds = FIELD_TYPES[cls]
    if type(values) is not tuple or len(values) != len(kinds):
        raise ValueError(f"{cls.__name__}: expected {len(kinds)} fields")
    for v, allowed in zip(values, kinds):
        if type(v) not in allowed or (type(v) is int and v < 0):
            raise ValueError(f"{cls.__name__}: field of type {type(v).__name__} not allowed")
    row = cls(*values)
    if row_text(row) != text:
        raise ValueError(f"{cls.__name__}: not in canonical form")
    return row


def to_sql(row: tuple) -> tuple:
    big = getattr(type(row), "BIG", ())
    if not big:
        return row
    return tuple(str(v) if i in big else v for i, v in enumerate(row))


def from_sql(cls: type, values: tuple) -> Any:
    big = getattr(cls, "BIG", ())
    if big:
        values = tuple(int(v) if i in big else v for i, v in enumerate(values))
    return cls(*values)


def schema_sql(cls: type) -> str:
    """CREATE TABLE for a row type: its key as the primary key, no rowid (rows are keyed)."""
    cols = ", ".join(cls._fields)
    key = ", ".join(cls._fields[:cls.KEY])
    return f"CREATE TABLE IF NOT EXISTS {cls.TABLE} ({cols}, PRIMARY KEY ({key})) WITHOUT ROWID"
