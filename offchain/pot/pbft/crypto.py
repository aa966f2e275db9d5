"""Keys, replica signatures, link MAC keys and client-request verifiers.

Decision (measured by ``pot bench pbft``, see the README table): every frame on a replica link
carries a MAC (keyed BLAKE2b under a per-connection key derived by HMAC-SHA256 from the per-pair
key; the paper's authenticators, ~1 µs), while a
secp256k1 ECDSA signature (~25 µs to sign, ~36 µs to verify) is made only on the statements
that may later be forwarded as proof (pre-prepare, prepare, checkpoint, view-change,
new-view) and is verified when it is forwarded (prepares: when a prepared certificate goes
into a view-change, see ``Replica._forwardable``), except the pre-prepare's, checked once on
receipt (one per batch). Per-pair MAC keys come from ECDH between
the replicas' secp256k1 keys, so the configuration holds public keys only.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Callable, Protocol, Sequence

import coincurve


def keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak  # pycryptodome, already a web3 dependency

    h = keccak.new(digest_bits=256)
    h.update(data)
    return h.digest()


class Signer(Protocol):
    """Signs this replica's statements and checks other replicas' ones."""

    def sign(self, data: bytes) -> bytes: ...

    def verify(self, replica: int, data: bytes, sig: bytes) -> bool: ...


def devnet_private_key(seed: bytes | str, index: int) -> bytes:
    """Deterministic keys for devnets, tests and benchmarks only."""
    if isinstance(seed, str):
        seed = seed.encode()
    return hashlib.sha256(b"pot-pbft-key" + seed + index.to_bytes(4, "big")).digest()


def public_key(private_key: bytes) -> bytes:
    return coincurve.PrivateKey(private_key).public_key.format(compressed=True)


class Secp256k1Signer:
    """ECDSA over secp256k1 (coincurve) with a cache of checked signatures."""

    def __init__(self, private_key: bytes, public_keys: Sequence[bytes]):
        self._sk = coincurve.PrivateKey(private_key)
        self._pks = [coincurve.PublicKey(pk) for pk in public_keys]
        self._ok: set[bytes] = set()

    def sign(self, data: bytes) -> bytes:
        return self._sk.sign(hashlib.sha256(data).digest(), hasher=None)

    def verify(self, replica: int, data: bytes, sig: bytes) -> bool:
        if not 0 <= replica < len(self._pks):
            return False
        d = hashlib.sha256(data).digest()
        key = hashlib.sha256(replica.to_bytes(2, "big") + d + sig).digest()
        if key in self._ok:
            return True
        try:
            ok = self._pks[replica].verify(sig, d, hasher=None)
        except Exception:  # malformed DER from a Byzantine peer
            return False
        if ok:
            if len(self._ok) > 100_000:
                self._ok.clear()
            self._ok.add(key)
        return ok


class TableSigner:
    """Keyed-hash 'signatures' against a key table every replica knows.

    For the in-process simulator only: it is deterministic and ~20x cheaper than ECDSA, and
    the simulated Byzantine replica never reads other replicas' keys, so it cannot forge.
    """

    def __init__(self, index: int, keys: Sequence[bytes]):
        self._i = index
        self._keys = list(keys)

    def sign(self, data: bytes) -> bytes:
        return hmac.digest(self._keys[self._i], data, "sha256")

    def verify(self, replica: int, data: bytes, sig: bytes) -> bool:
        if not 0 <= replica < len(self._keys):
            return False
        return hmac.compare_digest(hmac.digest(self._keys[replica], data, "sha256"), sig)


def link_key(private_key: bytes, peer_public_key: bytes) -> bytes:
    """Per-pair MAC key: ECDH(sk_i, pk_j) == ECDH(sk_j, pk_i), hashed with a domain tag."""
    shared = coincurve.PrivateKey(private_key).ecdh(peer_public_key)
    return hashlib.sha256(b"pot-pbft-link-mac" + shared).digest()


# --- client requests -------------------------------------------------------------------------

RequestVerifier = Callable[[bytes], bool]
"""Pluggable check of a client request before it may enter a batch (signature, format)."""


def accept_all(payload: bytes) -> bool:
    return True


def sign_transaction(private_key: bytes, body: bytes) -> bytes:
    """A 'signed transaction' for benchmarks and tests: body || 65-byte recoverable signature
    over keccak256(body)."""
    sig = coincurve.PrivateKey(private_key).sign_recoverable(keccak256(body), hasher=None)
    return body + sig


def verify_signed_transaction(payload: bytes) -> bool:
    """Recover the signer of body || sig and require the body to name it (first 33 bytes are
    the signer's compressed public key), so a transaction cannot be replayed under another
    sender."""
    if len(payload) < 33 + 65:
        return False
    body, sig = payload[:-65], payload[-65:]
    try:
        pk = coincurve.PublicKey.from_signature_and_message(sig, keccak256(body), hasher=None)
    except Exception:
        return False
    return pk.format(compressed=True) == body[:33]


def make_transaction(private_key: bytes, data: bytes) -> bytes:
    """Build a signed transaction whose body starts with the sender's public key."""
    return sign_transaction(private_key, public_key(private_key) + data)
