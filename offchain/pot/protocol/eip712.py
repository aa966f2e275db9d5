"""EIP-712 domains and typed-data hashing shared by every signed PoT message.

A signature is bound to one deployment: the domain carries the chain id and the address of
the contract that checks it, so a message signed for Anvil is worthless on BSC testnet and a
settlement signed for one RewardMultisig is worthless for another (replay across deployments).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

if TYPE_CHECKING:
    from eth_account.messages import SignableMessage

# eth-account is imported where the generic (wallet, cross-check) paths use it: importing it
# loads py_ecc's BLS tables, half a second of CPU for every process, and no replica needs it.

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

    @cached_property
    def digest_prefix(self) -> bytes:
        """``"\\x19\\x01" || domainSeparator``: what every typed digest in this domain starts with
        (computed once per domain object; a frozen dataclass keeps it in its ``__dict__``)."""
        return b"\x19\x01" + domain_separator(self)

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
    from eth_account.messages import encode_typed_data

    full = {
        "types": {"EIP712Domain": DOMAIN_FIELDS, **types},
        "primaryType": primary_type,
        "domain": domain.as_dict(),
        "message": message,
    }
    return encode_typed_data(full_message=full)


def digest(msg: SignableMessage) -> bytes:
    """The 32-byte hash that is signed (what Solidity's ``_hashTypedDataV4`` returns)."""
    from eth_account.messages import _hash_eip191_message

    return bytes(_hash_eip191_message(msg))


def sign(msg: SignableMessage, private_key: bytes | str) -> bytes:
    """65-byte ``r || s || v`` signature, v in {27, 28}, as OpenZeppelin's ECDSA.recover expects."""
    from eth_account import Account

    return bytes(Account.sign_message(msg, private_key).signature)


def recover(msg: SignableMessage, signature: bytes) -> str:
    """The checksummed address that signed ``msg``; raises ValueError on a malformed signature."""
    if len(signature) != 65:
        raise ValueError(f"signature must be 65 bytes, got {len(signature)}")
    from eth_account import Account

    return Account.recover_message(msg, signature=signature)


# --- Fast path ------------------------------------------------------------------------------
# eth-account's generic encode_typed_data parses the type JSON on every call (~1 ms); the
# committee must check thousands of signed messages per second per replica. For our fixed,
# flat message types the EIP-712 hash is a keccak over 32-byte words we can concatenate
# directly, and recovery is one libsecp256k1 call through coincurve. tests/protocol proves
# both equal eth-account's results.

import threading  # noqa: E402

from coincurve import PrivateKey  # noqa: E402
from coincurve._libsecp256k1 import ffi as _ffi  # noqa: E402
from coincurve._libsecp256k1 import lib as _lib  # noqa: E402
from coincurve.context import GLOBAL_CONTEXT as _CTX  # noqa: E402
from coincurve.flags import EC_UNCOMPRESSED as _UNCOMPRESSED  # noqa: E402

from pot.protocol.ids import keccak as _k  # noqa: E402

#: secp256k1 group order; a signature with s > n/2 is the malleated twin of a valid one and
#: OpenZeppelin's ECDSA.recover refuses it, so we do too.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2
_HALF_N_BYTES = _HALF_N.to_bytes(32, "big")


DOMAIN_TYPEHASH = _k(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")


def domain_separator(domain: Domain) -> bytes:
    """``hashStruct(EIP712Domain)``: what OpenZeppelin's EIP712 caches as ``_domainSeparatorV4``."""
    return _k(DOMAIN_TYPEHASH + _k(domain.name.encode()) + _k(domain.version.encode())
              + domain.chain_id.to_bytes(32, "big")
              + bytes(12) + bytes.fromhex(domain.verifying_contract[2:]))


def typed_digest(domain: Domain, struct_hash: bytes) -> bytes:
    """``keccak256("\\x19\\x01" || domainSeparator || hashStruct(message))``."""
    return _k(domain.digest_prefix + struct_hash)


def _key_bytes(private_key: bytes | str) -> bytes:
    if isinstance(private_key, str):
        private_key = bytes.fromhex(private_key[2:] if private_key.startswith("0x") else private_key)
    if len(private_key) != 32:
        raise ValueError("private key must be 32 bytes")
    return bytes(private_key)


def sign_digest(digest_: bytes, private_key: bytes | str) -> bytes:
    """65-byte ``r || s || v`` (v in {27, 28}, low s) over a 32-byte digest."""
    sig = PrivateKey(_key_bytes(private_key)).sign_recoverable(digest_, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


class _RecoverBuffers(threading.local):
    """libsecp256k1's in/out structs, allocated once per thread rather than per message."""

    def __init__(self) -> None:
        self.sig = _ffi.new("secp256k1_ecdsa_recoverable_signature *")
        self.pub = _ffi.new("secp256k1_pubkey *")
        self.out = _ffi.new("unsigned char [65]")
        self.out_len = _ffi.new("size_t *")
        self.view = _ffi.buffer(self.out, 65)


_bufs = _RecoverBuffers()
_ctx = _CTX.ctx
_parse_sig = _lib.secp256k1_ecdsa_recoverable_signature_parse_compact
_recover = _lib.secp256k1_ecdsa_recover
_serialize = _lib.secp256k1_ec_pubkey_serialize


def recover_digest(digest_: bytes, signature: bytes) -> bytes:
    """The 20-byte address that signed ``digest_``; ValueError on a malformed or malleable signature."""
    if len(signature) != 65:
        raise ValueError(f"signature must be 65 bytes, got {len(signature)}")
    if len(digest_) != 32:
        raise ValueError("digest must be 32 bytes")
    v = signature[64]
    if v != 27 and v != 28:
        raise ValueError(f"signature v must be 27 or 28, got {v}")
    # 32-byte big-endian words compare as the numbers they hold; parse_compact refuses r or s
    # of n or more, and recovery a zero r or s
    if signature[32:64] > _HALF_N_BYTES:
        raise ValueError("signature r/s out of range (high s is refused as malleable)")
    b = _bufs
    if not _parse_sig(_ctx, b.sig, signature, v - 27):
        raise ValueError("signature r/s out of range (r or s not below the group order)")
    if not _recover(_ctx, b.pub, b.sig, digest_):
        raise ValueError("signature does not recover to a public key (r or s is zero, or r is not on the curve)")
    b.out_len[0] = 65
    _serialize(_ctx, b.out, b.out_len, b.pub, _UNCOMPRESSED)
    return _k(b.view[1:])[12:]


def address_of_key(private_key: bytes | str) -> str:
    """Checksummed address of a private key."""
    pub = PrivateKey(_key_bytes(private_key)).public_key.format(compressed=False)[1:]
    return to_checksum_address(_k(pub)[12:])
