"""The settlement batch: what the committee signs and RewardMultisig executes.

One batch settles one or more orders (payouts from escrow, the winning model), slashes stakes
and resolves challenges. Its EIP-712 hash is computed here and, identically, in
``contracts/libraries/SettlementHash.sol``; a test checks the two agree, and another that the
fast path here equals eth-account's generic typed-data hash. The field order and the type
strings below ARE the wire format: change them only together with the contract.

Solidity counterparts (calldata structs, same field order, ``contracts/interfaces/ISettlement.sol``):

    struct OrderSettlement  { uint256 orderId; address winner; bytes32 winningMid;
                              uint256 perMember; uint256[] payouts; }
    struct Slash            { uint256 orderId; address staker; uint256 amount; address to; }
    struct ChallengeVerdict { uint256 orderId; address challenger; bool upheld; address validator; }
    struct Settlement       { uint256 nonce; uint256 epoch; uint256 deadline; address[] recipients;
                              uint256 members; OrderSettlement[] orders; Slash[] slashes;
                              ChallengeVerdict[] verdicts; }

Here an order's payouts are (address, amount) pairs and the batch names its committee; the wire
form is derived: ``recipients`` = the committee, then every other paid address once, in order of
first appearance; ``payouts[i] = recipientIndex << 240 | amount``; ``members`` = committee size.
The contract pays each recipient ONE transfer, summed over the orders that applied, and each of
the first ``members`` recipients ``perMember`` of every applied order (the committee tax).

Semantics the contract enforces:
- ``nonce`` executes at most once per RewardMultisig (the ledger re-issues an expired batch under
  the same nonce); ``epoch`` must be the multisig's membership epoch; ``deadline`` not passed.
- an order applies when it is open and ``perMember * members + sum(payouts)`` equals its escrow,
  and, when ``winner`` is set, ``payouts[0]`` pays the winner; otherwise it is skipped with a
  reason (OrderSkipped) and the rest of the batch applies. Orders, slashes and verdicts wait for
  the order's last window (a whole refund to the client may come at trainEnd).
- a ``Slash`` moves up to ``amount`` of ``staker``'s stake to ``to``: what is there, never a revert.
- a ``ChallengeVerdict`` resolves the challenger's locked cStake: upheld -> returned to the
  challenger; rejected -> half to ``validator``, half to the treasury; a challenge no longer
  pending (its challenger reclaimed it) is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


from pot.protocol import eip712
from pot.protocol.types import checksum
from pot.protocol.eip712 import _k

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_BYTES32 = b"\x00" * 32
#: payouts[i] = index << 240 | amount (ISettlement.sol)
INDEX_SHIFT = 240
AMOUNT_MASK = (1 << INDEX_SHIFT) - 1
MAX_RECIPIENTS = 1 << 16

SETTLEMENT_TYPES: dict[str, list[dict[str, str]]] = {
    "Settlement": [
        {"name": "nonce", "type": "uint256"},
        {"name": "epoch", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
        {"name": "recipients", "type": "address[]"},
        {"name": "members", "type": "uint256"},
        {"name": "orders", "type": "OrderSettlement[]"},
        {"name": "slashes", "type": "Slash[]"},
        {"name": "verdicts", "type": "ChallengeVerdict[]"},
    ],
    "OrderSettlement": [
        {"name": "orderId", "type": "uint256"},
        {"name": "winner", "type": "address"},
        {"name": "winningMid", "type": "bytes32"},
        {"name": "perMember", "type": "uint256"},
        {"name": "payouts", "type": "uint256[]"},
    ],
    "Slash": [
        {"name": "orderId", "type": "uint256"},
        {"name": "staker", "type": "address"},
        {"name": "amount", "type": "uint256"},
        {"name": "to", "type": "address"},
    ],
    "ChallengeVerdict": [
        {"name": "orderId", "type": "uint256"},
        {"name": "challenger", "type": "address"},
        {"name": "upheld", "type": "bool"},
        {"name": "validator", "type": "address"},
    ],
}

ACTION_TYPES: dict[str, list[dict[str, str]]] = {
    "Action": [
        {"name": "nonce", "type": "uint256"},
        {"name": "epoch", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
        {"name": "target", "type": "address"},
        {"name": "data", "type": "bytes"},
    ],
}


def _encode_type(primary: str, types: dict[str, list[dict[str, str]]]) -> bytes:
    def one(name: str) -> str:
        return name + "(" + ",".join(f"{f['type']} {f['name']}" for f in types[name]) + ")"
    refs = sorted(n for n in types if n != primary)
    return (one(primary) + "".join(one(n) for n in refs)).encode()


# Type hashes precomputed once: hashing a batch is then a keccak per struct over 32-byte words.
_SETTLEMENT_TH = _k(_encode_type("Settlement", SETTLEMENT_TYPES))
_ORDER_TH = _k(_encode_type("OrderSettlement", {"OrderSettlement": SETTLEMENT_TYPES["OrderSettlement"]}))
_SLASH_TH = _k(_encode_type("Slash", {"Slash": SETTLEMENT_TYPES["Slash"]}))
_VERDICT_TH = _k(_encode_type("ChallengeVerdict", {"ChallengeVerdict": SETTLEMENT_TYPES["ChallengeVerdict"]}))
_ACTION_TH = _k(_encode_type("Action", ACTION_TYPES))


def _u(x: int) -> bytes:
    return int(x).to_bytes(32, "big")


def _a(addr: str) -> bytes:
    return bytes(12) + bytes.fromhex(addr[2:])


@dataclass(frozen=True)
class Payout:
    to: str
    amount: int

    def as_dict(self) -> dict[str, Any]:
        return {"to": checksum(self.to), "amount": self.amount}


@dataclass(frozen=True)
class OrderSettlement:
    """One order's outcome: ``per_member`` to each committee member, then ``payouts`` (the
    winner's first when there is a winner)."""
    order_id: int
    winner: str
    winning_mid: bytes
    per_member: int = 0
    payouts: tuple[Payout, ...] = ()

    def total(self, members: int) -> int:
        return self.per_member * members + sum(p.amount for p in self.payouts)

    def paid(self, members: tuple[str, ...]) -> tuple[Payout, ...]:
        """Everything this order pays, one entry per address: each member's tax share merged with
        the payouts (the winner's first when there is a winner)."""
        out: dict[str, int] = {}
        for p in self.payouts:
            out[checksum(p.to)] = out.get(checksum(p.to), 0) + p.amount
        if self.per_member:
            for m in members:
                out[m] = out.get(m, 0) + self.per_member
        return tuple(Payout(a, v) for a, v in out.items())

    def as_json(self) -> dict[str, Any]:
        return {"orderId": self.order_id, "winner": checksum(self.winner),
                "winningMid": "0x" + bytes(self.winning_mid).hex(), "perMember": self.per_member,
                "payouts": [p.as_dict() for p in self.payouts]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OrderSettlement:
        return cls(int(d["orderId"]), d["winner"], bytes.fromhex(d["winningMid"][2:]), int(d["perMember"]),
                   tuple(Payout(p["to"], int(p["amount"])) for p in d["payouts"]))


@dataclass(frozen=True)
class Slash:
    order_id: int
    staker: str
    amount: int
    to: str

    def as_dict(self) -> dict[str, Any]:
        return {"orderId": self.order_id, "staker": checksum(self.staker), "amount": self.amount,
                "to": checksum(self.to)}

    def as_abi(self) -> tuple:
        return (self.order_id, checksum(self.staker), self.amount, checksum(self.to))

    def struct_hash(self) -> bytes:
        return _k(_SLASH_TH + _u(self.order_id) + _a(self.staker) + _u(self.amount) + _a(self.to))


@dataclass(frozen=True)
class ChallengeVerdict:
    order_id: int
    challenger: str
    upheld: bool
    validator: str

    def as_dict(self) -> dict[str, Any]:
        return {"orderId": self.order_id, "challenger": checksum(self.challenger),
                "upheld": self.upheld, "validator": checksum(self.validator)}

    def as_abi(self) -> tuple:
        return (self.order_id, checksum(self.challenger), self.upheld,
                checksum(self.validator))

    def struct_hash(self) -> bytes:
        return _k(_VERDICT_TH + _u(self.order_id) + _a(self.challenger) + _u(int(self.upheld))
                  + _a(self.validator))


@dataclass(frozen=True)
class Settlement:
    """A batch. ``members`` is the committee the tax goes to (the wire's first recipients)."""
    nonce: int
    epoch: int = 1
    deadline: int = 2**64 - 1
    members: tuple[str, ...] = ()
    orders: tuple[OrderSettlement, ...] = ()
    slashes: tuple[Slash, ...] = ()
    verdicts: tuple[ChallengeVerdict, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(checksum(m) for m in self.members))

    @cached_property
    def recipients(self) -> tuple[str, ...]:
        """Every paid address once: the committee, then others in order of first appearance."""
        out = list(self.members)
        seen = {m.lower() for m in out}
        for o in self.orders:
            for p in o.payouts:
                if p.to.lower() not in seen:
                    seen.add(p.to.lower())
                    out.append(checksum(p.to))
        if len(out) > MAX_RECIPIENTS:
            raise ValueError(f"a settlement pays at most {MAX_RECIPIENTS} recipients")
        return tuple(out)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {a.lower(): i for i, a in enumerate(self.recipients)}

    def packed_payouts(self, order: OrderSettlement) -> list[int]:
        idx = self._index
        out = []
        for p in order.payouts:
            if not 0 <= p.amount <= AMOUNT_MASK:
                raise ValueError(f"payout amount {p.amount} out of range")
            out.append(idx[p.to.lower()] << INDEX_SHIFT | p.amount)
        return out

    def paid(self, order_id: int) -> tuple[Payout, ...]:
        """What order ``order_id`` of this batch pays, by address (tax shares included)."""
        return next(o.paid(self.members) for o in self.orders if o.order_id == order_id)

    @property
    def order_ids(self) -> tuple[int, ...]:
        return tuple(o.order_id for o in self.orders)

    def as_dict(self) -> dict[str, Any]:
        """The EIP-712 message (wire form)."""
        return {
            "nonce": self.nonce, "epoch": self.epoch, "deadline": self.deadline,
            "recipients": list(self.recipients), "members": len(self.members),
            "orders": [{"orderId": o.order_id, "winner": checksum(o.winner),
                        "winningMid": bytes(o.winning_mid), "perMember": o.per_member,
                        "payouts": self.packed_payouts(o)} for o in self.orders],
            "slashes": [s.as_dict() for s in self.slashes],
            "verdicts": [v.as_dict() for v in self.verdicts],
        }

    def as_abi(self) -> tuple:
        """The calldata tuple for ``executeSigned(batch, signatures)`` and friends."""
        return (self.nonce, self.epoch, self.deadline, list(self.recipients), len(self.members),
                [(o.order_id, checksum(o.winner), bytes(o.winning_mid), o.per_member,
                  self.packed_payouts(o)) for o in self.orders],
                [s.as_abi() for s in self.slashes], [v.as_abi() for v in self.verdicts])

    def struct_hash(self) -> bytes:
        """``SettlementHash.hash(batch)``, word by word (precomputed type hashes, no JSON)."""
        orders = b"".join(
            _k(_ORDER_TH + _u(o.order_id) + _a(o.winner) + bytes(o.winning_mid) + _u(o.per_member)
               + _k(b"".join(_u(x) for x in self.packed_payouts(o))))
            for o in self.orders)
        return _k(_SETTLEMENT_TH + _u(self.nonce) + _u(self.epoch) + _u(self.deadline)
                  + _k(b"".join(_a(r) for r in self.recipients)) + _u(len(self.members))
                  + _k(orders) + _k(b"".join(s.struct_hash() for s in self.slashes))
                  + _k(b"".join(v.struct_hash() for v in self.verdicts)))

    def signable(self, domain: eip712.Domain):
        """eth-account's generic envelope (slow; tests compare it with ``digest``)."""
        return eip712.signable(domain, "Settlement", SETTLEMENT_TYPES, self.as_dict())

    def digest(self, domain: eip712.Domain) -> bytes:
        """The EIP-712 hash RewardMultisig recomputes (``_hashTypedDataV4(hashSettlement(batch))``)."""
        return eip712.typed_digest(domain, self.struct_hash())

    def proposal_id(self, domain: eip712.Domain) -> int:
        """The paper path's proposal id: the digest's upper 96 bits (``proposalId(batch)``)."""
        return int.from_bytes(self.digest(domain), "big") >> 160

    def sign(self, domain: eip712.Domain, private_key: bytes | str) -> bytes:
        return eip712.sign_digest(self.digest(domain), private_key)

    def recover(self, domain: eip712.Domain, signature: bytes) -> str:
        return checksum(eip712.recover_digest(self.digest(domain), signature))

    def with_terms(self, *, epoch: int, deadline: int) -> Settlement:
        """The same batch (same nonce: at most one version executes) for another epoch or deadline."""
        return Settlement(self.nonce, epoch, deadline, self.members, self.orders, self.slashes, self.verdicts)


@dataclass(frozen=True)
class Action:
    """A governance call signed by k members, bound like a settlement to an epoch and a deadline."""
    nonce: int
    target: str
    data: bytes
    epoch: int = 1
    deadline: int = 2**64 - 1

    def as_abi(self) -> tuple:
        return (self.nonce, self.epoch, self.deadline, checksum(self.target), bytes(self.data))

    def struct_hash(self) -> bytes:
        return _k(_ACTION_TH + _u(self.nonce) + _u(self.epoch) + _u(self.deadline) + _a(self.target)
                  + _k(bytes(self.data)))

    def signable(self, domain: eip712.Domain):
        return eip712.signable(domain, "Action", ACTION_TYPES,
                               {"nonce": self.nonce, "epoch": self.epoch, "deadline": self.deadline,
                                "target": checksum(self.target), "data": bytes(self.data)})

    def digest(self, domain: eip712.Domain) -> bytes:
        return eip712.typed_digest(domain, self.struct_hash())

    def sign(self, domain: eip712.Domain, key: bytes | str) -> bytes:
        return eip712.sign_digest(self.digest(domain), key)


def settlement_to_json(s: Settlement) -> dict[str, Any]:
    """JSON-ready form (bytes as 0x-hex, payouts by address): ledger state, snapshots, the HTTP API."""
    return {"nonce": s.nonce, "epoch": s.epoch, "deadline": s.deadline, "members": list(s.members),
            "orders": [o.as_json() for o in s.orders], "slashes": [x.as_dict() for x in s.slashes],
            "verdicts": [v.as_dict() for v in s.verdicts]}


def settlement_from_json(d: dict[str, Any]) -> Settlement:
    """Inverse of ``settlement_to_json``."""
    return Settlement(
        nonce=int(d["nonce"]), epoch=int(d["epoch"]), deadline=int(d["deadline"]), members=tuple(d["members"]),
        orders=tuple(OrderSettlement.from_json(o) for o in d["orders"]),
        slashes=tuple(Slash(int(x["orderId"]), x["staker"], int(x["amount"]), x["to"]) for x in d["slashes"]),
        verdicts=tuple(ChallengeVerdict(int(v["orderId"]), v["challenger"], bool(v["upheld"]), v["validator"])
                       for v in d["verdicts"]))
