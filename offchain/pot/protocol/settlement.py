"""The settlement batch: what the committee signs and RewardMultisig executes.

One batch settles one or more orders (payouts from escrow, the winning model), slashes stakes
and resolves challenges. Its EIP-712 hash is computed here and, identically, in
``contracts/RewardMultisig.sol``; a test checks the two agree. The field order and the type
strings below ARE the wire format: change them only together with the contract.

Solidity counterparts (calldata structs, same field order):

    struct Payout          { address to; uint256 amount; }
    struct OrderSettlement { uint256 orderId; address winner; bytes32 winningMid; Payout[] payouts; }
    struct Slash           { address staker; uint256 amount; address to; }
    struct ChallengeVerdict{ uint256 orderId; address challenger; bool upheld; address validator; }
    struct Settlement      { uint256 nonce; OrderSettlement[] orders; Slash[] slashes;
                             ChallengeVerdict[] verdicts; }

Semantics the contract enforces:
- ``nonce`` is unique per RewardMultisig; a batch with a used nonce reverts (no replay).
- each ``OrderSettlement`` pays from that order's escrow; its payouts sum exactly to the escrow,
  and an order settles once. ``winner``/``winningMid`` are zero when nobody won (refund, default).
- a ``Slash`` moves ``amount`` of ``staker``'s stake in StakeRegistry to ``to`` (a challenger or
  the treasury; one slash is usually two entries, half each).
- a ``ChallengeVerdict`` resolves the challenger's locked cStake in ChallengeManager:
  upheld -> returned to the challenger; rejected -> half to ``validator``, half to the treasury.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from pot.protocol import eip712

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_BYTES32 = b"\x00" * 32

SETTLEMENT_TYPES: dict[str, list[dict[str, str]]] = {
    "Settlement": [
        {"name": "nonce", "type": "uint256"},
        {"name": "orders", "type": "OrderSettlement[]"},
        {"name": "slashes", "type": "Slash[]"},
        {"name": "verdicts", "type": "ChallengeVerdict[]"},
    ],
    "OrderSettlement": [
        {"name": "orderId", "type": "uint256"},
        {"name": "winner", "type": "address"},
        {"name": "winningMid", "type": "bytes32"},
        {"name": "payouts", "type": "Payout[]"},
    ],
    "Payout": [
        {"name": "to", "type": "address"},
        {"name": "amount", "type": "uint256"},
    ],
    "Slash": [
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


@dataclass(frozen=True)
class Payout:
    to: str
    amount: int

    def as_dict(self) -> dict[str, Any]:
        return {"to": to_checksum_address(self.to), "amount": self.amount}

    def as_abi(self) -> tuple:
        return (to_checksum_address(self.to), self.amount)


@dataclass(frozen=True)
class OrderSettlement:
    order_id: int
    winner: str
    winning_mid: bytes
    payouts: tuple[Payout, ...]

    def total(self) -> int:
        return sum(p.amount for p in self.payouts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "winner": to_checksum_address(self.winner),
            "winningMid": bytes(self.winning_mid),
            "payouts": [p.as_dict() for p in self.payouts],
        }

    def as_abi(self) -> tuple:
        return (self.order_id, to_checksum_address(self.winner), bytes(self.winning_mid),
                [p.as_abi() for p in self.payouts])


@dataclass(frozen=True)
class Slash:
    staker: str
    amount: int
    to: str

    def as_dict(self) -> dict[str, Any]:
        return {"staker": to_checksum_address(self.staker), "amount": self.amount,
                "to": to_checksum_address(self.to)}

    def as_abi(self) -> tuple:
        return (to_checksum_address(self.staker), self.amount, to_checksum_address(self.to))


@dataclass(frozen=True)
class ChallengeVerdict:
    order_id: int
    challenger: str
    upheld: bool
    validator: str

    def as_dict(self) -> dict[str, Any]:
        return {"orderId": self.order_id, "challenger": to_checksum_address(self.challenger),
                "upheld": self.upheld, "validator": to_checksum_address(self.validator)}

    def as_abi(self) -> tuple:
        return (self.order_id, to_checksum_address(self.challenger), self.upheld,
                to_checksum_address(self.validator))


@dataclass(frozen=True)
class Settlement:
    nonce: int
    orders: tuple[OrderSettlement, ...] = ()
    slashes: tuple[Slash, ...] = ()
    verdicts: tuple[ChallengeVerdict, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "nonce": self.nonce,
            "orders": [o.as_dict() for o in self.orders],
            "slashes": [s.as_dict() for s in self.slashes],
            "verdicts": [v.as_dict() for v in self.verdicts],
        }

    def as_abi(self) -> tuple:
        """The calldata tuple for ``executeSigned(batch, signatures)`` and friends."""
        return (self.nonce, [o.as_abi() for o in self.orders], [s.as_abi() for s in self.slashes],
                [v.as_abi() for v in self.verdicts])

    def signable(self, domain: eip712.Domain):
        return eip712.signable(domain, "Settlement", SETTLEMENT_TYPES, self.as_dict())

    def digest(self, domain: eip712.Domain) -> bytes:
        """The EIP-712 hash RewardMultisig recomputes (``_hashTypedDataV4(hashSettlement(batch))``)."""
        return eip712.digest(self.signable(domain))

    def sign(self, domain: eip712.Domain, private_key: bytes | str) -> bytes:
        return eip712.sign(self.signable(domain), private_key)

    def recover(self, domain: eip712.Domain, signature: bytes) -> str:
        return eip712.recover(self.signable(domain), signature)


def settlement_to_json(s: Settlement) -> dict[str, Any]:
    """JSON-ready form (bytes as 0x-hex): ledger state, snapshots and the HTTP API."""
    d = s.as_dict()
    for o in d["orders"]:
        o["winningMid"] = "0x" + o["winningMid"].hex()
    return d


def settlement_from_json(d: dict[str, Any]) -> Settlement:
    """Inverse of ``settlement_to_json``."""
    return Settlement(
        nonce=int(d["nonce"]),
        orders=tuple(OrderSettlement(int(o["orderId"]), o["winner"], bytes.fromhex(o["winningMid"][2:]),
                                     tuple(Payout(p["to"], int(p["amount"])) for p in o["payouts"]))
                     for o in d["orders"]),
        slashes=tuple(Slash(x["staker"], int(x["amount"]), x["to"]) for x in d["slashes"]),
        verdicts=tuple(ChallengeVerdict(int(v["orderId"]), v["challenger"], bool(v["upheld"]), v["validator"])
                       for v in d["verdicts"]))
