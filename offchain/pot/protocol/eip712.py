"""EIP-712 domains and typed-data hashing shared by every signed PoT message.

A signature is bound to one deployment: the domain carries the chain id and the address of
the contract that checks it, so a message signed for Anvil is worthless on BSC testnet and a
settlement signed for one RewardMultisig is worthless for another (replay across deployments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, _hash_eip191_message, encode_typed_data
from eth_utils import to_checksum_address

#: Domain name of the committee's multisig; must equal the name in RewardMultisig's EIP712 constructor.
MULTISIG_DOMAIN_NAME = "PoT RewardMultisig"
#: Domain name of off-chain participant messages (claims, validations, ...); bound to the OrderBook.
MESSAGE_DOMAIN_NAME = "PoT"
DOMAIN_VERSION = "1"

DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@dataclass(frozen=True)
class Domain:
    """An EIP-712 domain: who verifies the signature, on which chain."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    @classmethod
    def multisig(cls, chain_id: int, reward_multisig: str) -> Domain:
        return cls(MULTISIG_DOMAIN_NAME, DOMAIN_VERSION, chain_id, to_checksum_address(reward_multisig))

    @classmethod
    def messages(cls, chain_id: int, order_book: str) -> Domain:
        return cls(MESSAGE_DOMAIN_NAME, DOMAIN_VERSION, chain_id, to_checksum_address(order_book))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


def signable(domain: Domain, primary_type: str, types: dict[str, list[dict[str, str]]],
             message: dict[str, Any]) -> SignableMessage:
    """The EIP-712 envelope of ``message`` (``types`` excludes EIP712Domain)."""
    full = {
        "types": {"EIP712Domain": DOMAIN_FIELDS, **types},
        "primaryType": primary_type,
        "domain": domain.as_dict(),
        "message": message,
    }
    return encode_typed_data(full_message=full)


def digest(msg: SignableMessage) -> bytes:
    """The 32-byte hash that is signed (what Solidity's ``_hashTypedDataV4`` returns)."""
    return bytes(_hash_eip191_message(msg))


def sign(msg: SignableMessage, private_key: bytes | str) -> bytes:
    """65-byte ``r || s || v`` signature, v in {27, 28}, as OpenZeppelin's ECDSA.recover expects."""
    return bytes(Account.sign_message(msg, private_key).signature)


def recover(msg: SignableMessage, signature: bytes) -> str:
    """The checksummed address that signed ``msg``; raises ValueError on a malformed signature."""
    if len(signature) != 65:
        raise ValueError(f"signature must be 65 bytes, got {len(signature)}")
    return Account.recover_message(msg, signature=signature)
