"""The PoT data types: orders, participant messages, chain-event ops and results.

Every type is a frozen dataclass with a declared field schema (``FIELDS``). The schema drives
three things, so they cannot drift apart: strict validation in ``__post_init__``, the EIP-712
struct of signed messages (``hash_struct``) and the wire codec (``pot.protocol.codec``).

Addresses are held checksummed; ``uint`` fields are Python ints in ``[0, 2**256)``; ``bytes32``
fields are exactly 32 bytes. Anything else raises ``ValueError`` at construction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from eth_utils import is_hex_address, to_checksum_address

from pot.protocol import eip712
from pot.protocol.ids import keccak, model_type_from_bytes

#: 20-byte address -> its EIP-55 form. EIP-55 costs a keccak and a loop over 40 characters, and a
#: network has few accounts that send many messages each: decoding a message then pays one dict
#: lookup per address. Cleared when full, so a flood of fresh addresses only costs what it did.
_CHECKSUMMED: dict[bytes, str] = {}
_CHECKSUM_MEMO = 1 << 16


def checksum(address: bytes | str) -> str:
    """The EIP-55 form of an address given as 20 raw bytes or as 0x-hex (any case)."""
    raw = address
    if isinstance(raw, str):
        raw = bytes.fromhex(raw[2:]) if raw[:2] in ("0x", "0X") else b""
    out = _CHECKSUMMED.get(raw)
    if out is None:
        if len(raw) != 20:
            raise ValueError(f"not a 20-byte address: {address!r}")
        if len(_CHECKSUMMED) >= _CHECKSUM_MEMO:
            _CHECKSUMMED.clear()
        out = _CHECKSUMMED[bytes(raw)] = to_checksum_address(bytes(raw))
    return out


def address_bytes(address: str) -> bytes:
    """The 20 bytes of a (checksummed or not) hex address: what the ledger compares and keys by."""
    return bytes.fromhex(address[2:])

# Roles bitmask, as in StakeRegistry (CONVENTIONS.md).
MINER, VALIDATOR, VERIFIER, AGGREGATOR = 1, 2, 4, 8
ROLE_NAMES = {MINER: "miner", VALIDATOR: "validator", VERIFIER: "verifier", AGGREGATOR: "aggregator"}

MAX_UINT256 = (1 << 256) - 1
MAX_STRING_BYTES = 1024   # a CID is ~60 bytes; anything longer is abuse, not data
MAX_LIST = 1024
MAX_BYTES = 4096   # an attested chain-event op (an order with its CIDs is a few hundred bytes)

#: kind -> EIP-712 type. "sig", "bool" and "uint[]" never appear in a signed struct.
_EIP712_TYPE = {"uint": "uint256", "address": "address", "bytes32": "bytes32", "string": "string",
                "bytes": "bytes"}


def _norm(cls_name: str, name: str, kind: str, value: Any) -> Any:
    where = f"{cls_name}.{name}"
    if kind == "uint":
        if type(value) is not int or not 0 <= value <= MAX_UINT256:
            raise ValueError(f"{where} must be an int in [0, 2**256), got {value!r}")
        return value
    if kind == "address":
        if isinstance(value, (bytes, bytearray)) and len(value) == 20:
            return checksum(bytes(value))
        if not isinstance(value, str) or not is_hex_address(value):
            raise ValueError(f"{where} must be a 20-byte hex address, got {value!r}")
        out = checksum(bytes.fromhex(value[2:]))
        # EIP-55: mixed case is a checksum, and a wrong one is a mistyped address; one case
        # (all lower or all upper) carries no checksum and is the same address
        body = value[2:]
        if body != out[2:] and body != body.lower() and body != body.upper():
            raise ValueError(f"{where} has a bad EIP-55 checksum: {value!r} (did you mean {out}?)")
        return out
    if kind == "bytes32":
        if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
            raise ValueError(f"{where} must be 32 bytes, got {value!r}")
        return bytes(value)
    if kind == "sig":
        if not isinstance(value, (bytes, bytearray)) or len(value) != 65:
            raise ValueError(f"{where} must be a 65-byte signature")
        return bytes(value)
    if kind == "bytes":
        if not isinstance(value, (bytes, bytearray)):
            raise ValueError(f"{where} must be bytes, got {type(value).__name__}")
        if len(value) > MAX_BYTES:
            raise ValueError(f"{where} longer than {MAX_BYTES} bytes")
        return bytes(value)
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a str, got {type(value).__name__}")
        if len(value.encode("utf-8")) > MAX_STRING_BYTES:
            raise ValueError(f"{where} longer than {MAX_STRING_BYTES} bytes")
        return value
    if kind == "bool":
        if type(value) is not bool:
            raise ValueError(f"{where} must be a bool")
        return value
    if kind == "uint[]":
        value = tuple(value)
        if len(value) > MAX_LIST:
            raise ValueError(f"{where} has more than {MAX_LIST} items")
        for v in value:
            _norm(cls_name, name, "uint", v)
        return value
    if kind == "order":
        if not isinstance(value, Order):
            raise ValueError(f"{where} must be an Order")
        return value
    raise AssertionError(kind)


class _Schema:
    """Mixin: validate/normalise fields per ``FIELDS`` = ((attr, wireName, kind), ...)."""

    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    TAG: ClassVar[int] = 0

    def __post_init__(self) -> None:
        cls = type(self).__name__
        for attr, _wire, kind in self.FIELDS:
            object.__setattr__(self, attr, _norm(cls, attr, kind, getattr(self, attr)))


# --- Order ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Order(_Schema):
    """An order as OrderBook stores it (``t0`` = block time of placeOrder)."""

    order_id: int
    client: str
    reward: int
    t0: int
    train_duration: int
    reveal_duration: int
    validate_duration: int
    challenge_duration: int
    model_type: bytes
    spec_cid: str
    test_commitment: bytes

    TAG: ClassVar[int] = 0x01
    FIELDS: ClassVar = (
        ("order_id", "orderId", "uint"), ("client", "client", "address"), ("reward", "reward", "uint"),
        ("t0", "t0", "uint"), ("train_duration", "trainDuration", "uint"),
        ("reveal_duration", "revealDuration", "uint"), ("validate_duration", "validateDuration", "uint"),
        ("challenge_duration", "challengeDuration", "uint"), ("model_type", "modelType", "bytes32"),
        ("spec_cid", "specCid", "string"), ("test_commitment", "testCommitment", "bytes32"),
    )

    @property
    def model_type_name(self) -> str:
        return model_type_from_bytes(self.model_type)

    @property
    def reward_per_second(self) -> float:
        """The paper's FetchOrders sort key: reward per unit of training time."""
        return self.reward / max(self.train_duration, 1)


# --- Signed participant messages ------------------------------------------------------------

class Message(_Schema):
    """A participant message, EIP-712 typed data in the ``Domain.messages`` domain.

    ``SIGNER`` names the field that must equal the recovered signer: a message claiming to
    come from A is only accepted with A's signature.
    """

    SIGNER: ClassVar[str] = ""
    TYPE_STRING: ClassVar[bytes] = b""
    TYPEHASH: ClassVar[bytes] = b""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.FIELDS:
            cls.TYPE_STRING = (cls.__name__ + "(" + ",".join(
                f"{_EIP712_TYPE[k]} {w}" for _a, w, k in cls.FIELDS) + ")").encode()
            cls.TYPEHASH = keccak(cls.TYPE_STRING)
            cls.hash_struct = _hash_struct_of(cls)

    @property
    def signer(self) -> str:
        return getattr(self, self.SIGNER)

    @classmethod
    def eip712_types(cls) -> dict[str, list[dict[str, str]]]:
        return {cls.__name__: [{"name": w, "type": _EIP712_TYPE[k]} for _a, w, k in cls.FIELDS]}

    def eip712_message(self) -> dict[str, Any]:
        return {w: getattr(self, a) for a, w, _k in self.FIELDS}

    def hash_struct(self) -> bytes:
        """EIP-712 ``hashStruct``: keccak of the type hash and one 32-byte word per field
        (generated per type from ``FIELDS`` by ``_hash_struct_of``)."""
        raise NotImplementedError

    def digest(self, domain: eip712.Domain) -> bytes:
        """The EIP-712 hash that is signed (fast path; equals eth-account's)."""
        return eip712.typed_digest(domain, self.hash_struct())

    def signable(self, domain: eip712.Domain):
        """eth-account's SignableMessage (slow, for wallets and cross-checks)."""
        return eip712.signable(domain, type(self).__name__, self.eip712_types(), self.eip712_message())

    def sign(self, domain: eip712.Domain, private_key: bytes | str) -> Signed:
        return Signed(self, eip712.sign_digest(self.digest(domain), private_key))


#: kind -> the expression of a field's EIP-712 word, ``v`` being the field's value
_WORD = {"uint": "{v}.to_bytes(32, 'big')", "address": "_ZERO12 + _fromhex({v}[2:])", "bytes32": "{v}",
         "bytes": "keccak({v})", "string": "keccak({v}.encode('utf-8'))"}


def _hash_struct_of(cls: type[Message]) -> Any:
    """``hash_struct`` for one message type, unrolled from its ``FIELDS`` (as dataclasses build
    ``__init__``): every replica computes it for every message, and a loop over the schema
    costs as much as the hashing."""
    words = [_WORD[kind].format(v=f"d[{attr!r}]") for attr, _w, kind in cls.FIELDS]
    src = (f"def hash_struct(self):\n    d = self.__dict__\n"
           f"    return keccak(b''.join((TYPEHASH, {', '.join(words)})))\n")
    scope = {"keccak": keccak, "TYPEHASH": cls.TYPEHASH, "_ZERO12": bytes(12), "_fromhex": bytes.fromhex}
    exec(src, scope)  # noqa: S102 - source built from the class's own schema, no outside input
    fn = scope["hash_struct"]
    fn.__qualname__ = f"{cls.__name__}.hash_struct"
    fn.__doc__ = Message.hash_struct.__doc__
    return fn


@dataclass(frozen=True)
class ClaimCommit(Message):
    """PoT.Claim, commit phase: ``commitment = keccak(orderId, miner, mid, salt)``."""
    order_id: int
    miner: str
    commitment: bytes
    TAG: ClassVar[int] = 0x10
    SIGNER: ClassVar[str] = "miner"
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("miner", "miner", "address"),
                        ("commitment", "commitment", "bytes32"))


@dataclass(frozen=True)
class ClaimReveal(Message):
    """PoT.Claim, reveal phase: opens the commitment and links the uploaded model."""
    order_id: int
    miner: str
    mid: bytes
    salt: bytes
    model_cid: str
    TAG: ClassVar[int] = 0x11
    SIGNER: ClassVar[str] = "miner"
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("miner", "miner", "address"),
                        ("mid", "mid", "bytes32"), ("salt", "salt", "bytes32"),
                        ("model_cid", "modelCid", "string"))


@dataclass(frozen=True)
class ValidationCommit(Message):
    """PoT.Validate, commit phase: ``commitment = keccak(orderId, validator, mid, score, salt)``."""
    order_id: int
    validator: str
    mid: bytes
    commitment: bytes
    TAG: ClassVar[int] = 0x12
    SIGNER: ClassVar[str] = "validator"
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("validator", "validator", "address"),
                        ("mid", "mid", "bytes32"), ("commitment", "commitment", "bytes32"))


@dataclass(frozen=True)
class ValidationReveal(Message):
    """The paper's validation message ⟨MID, score, vStake⟩, opening a ValidationCommit."""
    order_id: int
    validator: str
    mid: bytes
    score: int
    salt: bytes
    v_stake: int
    TAG: ClassVar[int] = 0x13
    SIGNER: ClassVar[str] = "validator"
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("validator", "validator", "address"),
                        ("mid", "mid", "bytes32"), ("score", "score", "uint"),
                        ("salt", "salt", "bytes32"), ("v_stake", "vStake", "uint"))


@dataclass(frozen=True)
class CancelRequest(Message):
    """The client asks for its refund when nobody committed by trainEnd (CONVENTIONS.md)."""
    order_id: int
    client: str
    TAG: ClassVar[int] = 0x14
    SIGNER: ClassVar[str] = "client"
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("client", "client", "address"))


@dataclass(frozen=True)
class VerifyResult(Message):
    """PoT.Verify recomputed by one committee replica outside ``apply``; 2f+1 equal ones stand."""
    order_id: int
    mid: bytes
    score: int
    replica: str
    TAG: ClassVar[int] = 0x15
    SIGNER: ClassVar[str] = "replica"
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("mid", "mid", "bytes32"),
                        ("score", "score", "uint"), ("replica", "replica", "address"))


@dataclass(frozen=True)
class ChainAttestation(Message):
    """A committee replica saw chain event ``op`` (its codec bytes) at a confirmed position
    ``ref`` on its own RPC node. The ledger applies the event once f+1 members attested the
    identical (ref, op), so one lying replica can neither invent nor alter an order or a stake."""
    replica: str
    ref: bytes
    op: bytes
    TAG: ClassVar[int] = 0x16
    SIGNER: ClassVar[str] = "replica"
    FIELDS: ClassVar = (("replica", "replica", "address"), ("ref", "ref", "bytes32"), ("op", "op", "bytes"))


@dataclass(frozen=True)
class MemberVote(Message):
    """A committee member's vote for a committee change (docs/COMMITTEE.md): the change out of
    ``epoch`` that removes ``removed`` (20-byte accounts, concatenated), adds the members whose
    33-byte compressed public keys are ``added`` (concatenated; their accounts follow from them)
    reachable for PBFT at ``endpoints`` (``host:port``, comma-separated, same order) and serving
    their public API at ``api_urls`` (comma-separated, same order: what workers follow), and sets
    k to ``threshold``, executable on chain until ``deadline``. ``action_signature`` is the voter's
    65-byte signature of the change's ``Action`` in the multisig domain: ``executeAction`` takes k
    of them. The message's own signature covers all of it (the endpoints and API URLs included)."""
    voter: str
    epoch: int
    removed: bytes
    added: bytes
    endpoints: str
    api_urls: str
    threshold: int
    deadline: int
    action_signature: bytes
    TAG: ClassVar[int] = 0x17
    SIGNER: ClassVar[str] = "voter"
    FIELDS: ClassVar = (("voter", "voter", "address"), ("epoch", "epoch", "uint"), ("removed", "removed", "bytes"),
                        ("added", "added", "bytes"), ("endpoints", "endpoints", "string"),
                        ("api_urls", "apiUrls", "string"), ("threshold", "threshold", "uint"),
                        ("deadline", "deadline", "uint"), ("action_signature", "actionSignature", "bytes"))


MESSAGE_TYPES: tuple[type[Message], ...] = (ClaimCommit, ClaimReveal, ValidationCommit, ValidationReveal,
                                            CancelRequest, VerifyResult, ChainAttestation, MemberVote)


@dataclass(frozen=True)
class Signed:
    """A participant message with its 65-byte EIP-712 signature."""
    message: Message
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.message, Message):
            raise ValueError("Signed.message must be a participant message")
        object.__setattr__(self, "signature", _norm("Signed", "signature", "sig", self.signature))

    def recover(self, domain: eip712.Domain) -> bytes:
        """20-byte signer address (ValueError on malformed signature)."""
        return eip712.recover_digest(self.message.digest(domain), self.signature)

    def verify(self, domain: eip712.Domain) -> bool:
        """True when the signature recovers to the message's own sender field for ``domain``.

        A signature made for another chain id or another OrderBook recovers to a different
        (random) address, so it fails here: cross-deployment replay is worthless."""
        try:
            return self.recover(domain) == bytes.fromhex(self.message.signer[2:])
        except ValueError:
            return False


# --- Committee and chain-event ops ----------------------------------------------------------

@dataclass(frozen=True)
class SettlementSignature(_Schema):
    """A committee member's EIP-712 signature (``Domain.multisig``) over pending batch ``nonce``."""
    nonce: int
    signer: str
    signature: bytes
    TAG: ClassVar[int] = 0x20
    FIELDS: ClassVar = (("nonce", "nonce", "uint"), ("signer", "signer", "address"),
                        ("signature", "signature", "sig"))


@dataclass(frozen=True)
class OrderPlaced(_Schema):
    """Chain event: OrderBook.placeOrder (the order escrowed ``reward``)."""
    order: Order
    TAG: ClassVar[int] = 0x30
    FIELDS: ClassVar = (("order", "order", "order"),)


@dataclass(frozen=True)
class TestDataReleased(_Schema):
    """Chain event: OrderBook.releaseTestData; ``t3`` is its block time (checked on-chain
    against ``testCommitment``)."""
    __test__ = False  # not a pytest class
    order_id: int
    test_cid: str
    t3: int
    TAG: ClassVar[int] = 0x31
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("test_cid", "testCid", "string"),
                        ("t3", "t3", "uint"))


@dataclass(frozen=True)
class StakeChanged(_Schema):
    """Chain event: an account's current roles bitmask and total stake in StakeRegistry."""
    account: str
    roles: int
    amount: int
    TAG: ClassVar[int] = 0x32
    FIELDS: ClassVar = (("account", "account", "address"), ("roles", "roles", "uint"),
                        ("amount", "amount", "uint"))


@dataclass(frozen=True)
class ChallengeCommitted(_Schema):
    """Chain event: ChallengeManager.commitChallenge locked ``c_stake``."""
    order_id: int
    challenger: str
    commitment: bytes
    c_stake: int
    TAG: ClassVar[int] = 0x33
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("challenger", "challenger", "address"),
                        ("commitment", "commitment", "bytes32"), ("c_stake", "cStake", "uint"))


@dataclass(frozen=True)
class ChallengeRevealed(_Schema):
    """Chain event: ChallengeManager.revealChallenge opened the commitment to ``vid``."""
    order_id: int
    challenger: str
    vid: bytes
    TAG: ClassVar[int] = 0x34
    FIELDS: ClassVar = (("order_id", "orderId", "uint"), ("challenger", "challenger", "address"),
                        ("vid", "vid", "bytes32"))


@dataclass(frozen=True)
class SettlementExecuted(_Schema):
    """Chain event: RewardMultisig executed batch ``nonce``."""
    nonce: int
    order_ids: tuple[int, ...]
    tx_hash: bytes
    TAG: ClassVar[int] = 0x35
    FIELDS: ClassVar = (("nonce", "nonce", "uint"), ("order_ids", "orderIds", "uint[]"),
                        ("tx_hash", "txHash", "bytes32"))


@dataclass(frozen=True)
class Tick(_Schema):
    """Time passes: the ledger closes windows and finalizes orders at the op's ledger time.

    ``at`` (the submitter's clock, seconds) only makes Ticks of different seconds distinct
    requests for PBFT's duplicate suppression, while every replica's Tick of one second is the
    same request and executes once; the ledger ignores it (ledger time is the batch time)."""
    at: int = 0
    TAG: ClassVar[int] = 0x3F
    FIELDS: ClassVar = (("at", "at", "uint"),)


@dataclass(frozen=True)
class EpochChanged(_Schema):
    """Chain event: RewardMultisig's committee moved to ``epoch``; ``members`` (20-byte accounts,
    concatenated, the contract's order) and ``threshold`` are its state after the event's block."""
    epoch: int
    members: bytes
    threshold: int
    TAG: ClassVar[int] = 0x36
    FIELDS: ClassVar = (("epoch", "epoch", "uint"), ("members", "members", "bytes"),
                        ("threshold", "threshold", "uint"))

    @property
    def accounts(self) -> tuple[str, ...]:
        m = self.members
        return tuple(checksum(m[i:i + 20]) for i in range(0, len(m), 20))


CHAIN_EVENTS = (OrderPlaced, TestDataReleased, StakeChanged, ChallengeCommitted, ChallengeRevealed,
                SettlementExecuted, EpochChanged)


def event_order_id(op: Any) -> int | None:
    """The order a chain event is about (None for stakes, settlements, committee changes)."""
    if type(op) is OrderPlaced:
        return op.order.order_id
    return getattr(op, "order_id", None)

#: Everything ``Ledger.apply`` takes.
Op = Signed | SettlementSignature | OrderPlaced | TestDataReleased | StakeChanged | \
    ChallengeCommitted | ChallengeRevealed | SettlementExecuted | EpochChanged | Tick


# --- Ledger-side records (not ops) ----------------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    """A challenge as the ledger knows it from the chain: committed, later maybe revealed."""
    order_id: int
    challenger: str
    commitment: bytes
    c_stake: int
    vid: bytes | None = None


# --- Results --------------------------------------------------------------------------------

class Reason(enum.IntEnum):
    """Why the ledger refused an op (0 = accepted). Wire values are fixed; append only."""
    OK = 0
    MALFORMED = 1
    BAD_SIGNATURE = 2
    WRONG_WINDOW = 3
    UNKNOWN_ORDER = 4
    NOT_ENOUGH_STAKE = 5
    REPLAY = 6
    COMMITMENT_MISMATCH = 7
    NOT_AUTHORIZED = 8
    DUPLICATE = 9
    UNKNOWN_MODEL = 10
    NO_COMMITMENT = 11
    TIME_BACKWARDS = 12
    ORDER_CLOSED = 13
    INVALID = 14
    UNKNOWN_NONCE = 15
    NOT_PENDING = 16
    TOO_LARGE = 17
    #: the op raised inside the ledger (a bug): it changed nothing and is refused
    FAILED = 18


def bounded_text(text: str, limit: int = MAX_STRING_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character boundary, with an ellipsis):
    a result's text describes, it must never make an op fail after the ledger applied it."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit - 3].decode("utf-8", "ignore") + "…"


#: text -> the shared accepted Result without nonces (bounded: texts with numbers vary)
_ACCEPTED: dict[str, Result] = {}
_ACCEPTED_MAX = 1024


@dataclass(frozen=True)
class Result(_Schema):
    """What ``Ledger.apply`` returns; ``nonces`` lists settlements a Tick created."""
    ok: bool
    reason: int
    text: str = ""
    nonces: tuple[int, ...] = field(default=())
    TAG: ClassVar[int] = 0x7E
    FIELDS: ClassVar = (("ok", "ok", "bool"), ("reason", "reason", "uint"), ("text", "text", "string"),
                        ("nonces", "nonces", "uint[]"))

    @classmethod
    def accepted(cls, text: str = "", nonces: tuple[int, ...] = ()) -> Result:
        # one per op on the ledger's hot path, most with one of a few texts: a Result is
        # immutable, so those are shared
        if not nonces:
            out = _ACCEPTED.get(text)
            if out is not None:
                return out
        nonces = tuple(nonces)
        if len(nonces) > MAX_LIST:
            raise ValueError(f"Result.nonces has more than {MAX_LIST} items")
        # its fields are ours, built valid
        out = object.__new__(cls)
        out.__dict__.update(ok=True, reason=int(Reason.OK), text=bounded_text(text), nonces=nonces)
        if not nonces:
            if len(_ACCEPTED) >= _ACCEPTED_MAX:
                _ACCEPTED.clear()
            _ACCEPTED[text] = out
        return out

    @classmethod
    def rejected(cls, reason: Reason, text: str) -> Result:
        return cls(False, int(reason), bounded_text(text, MAX_STRING_BYTES // 2))

    @property
    def reason_enum(self) -> Reason:
        return Reason(self.reason)


def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]
