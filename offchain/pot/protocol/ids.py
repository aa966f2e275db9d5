"""Ids and commitments, exactly as docs/CONVENTIONS.md fixes them (Solidity computes the same).

Every commitment hashes ``abi.encode`` of its fields, so the contracts can recompute it with
``keccak256(abi.encode(...))``. Each one includes the sender's address: that is what makes a
copied commitment worthless to anybody else (model theft, copied validations).
"""

from __future__ import annotations

import hashlib
import threading

from Crypto.Hash.keccak import _raw_keccak_lib
from Crypto.Util import _raw_api
from eth_abi import encode as abi_encode

ZERO_BYTES32 = b"\x00" * 32

# keccak256 is the hot path of every message (struct hash, EIP-712 digest, signer address,
# commitment): pycryptodome's C sponge, called directly. Its Python wrapper allocates and frees a
# state and a buffer per hash, most of the cost; here each thread keeps one state and resets it.
# pycryptodome loads the sponge through cffi when cffi is installed (a dependency: its calls cost
# half of ctypes') and through ctypes otherwise; both are handled.
_KECCAK_CAPACITY, _KECCAK_ROUNDS, _KECCAK_PADDING = 64, 24, 0x01   # keccak256, not SHA3's 0x06

if _raw_api.backend == "cffi":
    _ffi = _raw_api.ffi

    class _Sponge(threading.local):
        def __init__(self) -> None:
            pp = _ffi.new("void **")
            if _raw_keccak_lib.keccak_init(pp, _KECCAK_CAPACITY, _KECCAK_ROUNDS):
                raise RuntimeError("keccak_init failed")
            self.state = pp[0]
            self.out = _ffi.new("uint8_t[32]")
            self.view = _ffi.buffer(self.out)

    _reset, _absorb, _digest = (_raw_keccak_lib.keccak_reset, _raw_keccak_lib.keccak_absorb,
                                _raw_keccak_lib.keccak_digest)
else:  # pragma: no cover - environments without cffi
    import ctypes

    _lib = ctypes.CDLL(_raw_keccak_lib._name)
    _vp = ctypes.c_void_p
    _lib.keccak_init.argtypes = [ctypes.POINTER(_vp), ctypes.c_size_t, ctypes.c_uint8]
    _lib.keccak_reset.argtypes = [_vp]
    _lib.keccak_absorb.argtypes = [_vp, ctypes.c_char_p, ctypes.c_size_t]
    _lib.keccak_digest.argtypes = [_vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint8]

    class _Sponge(threading.local):  # type: ignore[no-redef]
        def __init__(self) -> None:
            self.state = _vp()
            if _lib.keccak_init(ctypes.byref(self.state), _KECCAK_CAPACITY, _KECCAK_ROUNDS):
                raise RuntimeError("keccak_init failed")
            self.out = ctypes.create_string_buffer(32)

        @property
        def view(self) -> bytes:  # what keccak slices: bytes, as cffi's buffer slice gives
            return self.out.raw

    _reset, _absorb, _digest = _lib.keccak_reset, _lib.keccak_absorb, _lib.keccak_digest


_sponge = _Sponge()


def keccak(data: bytes) -> bytes:
    """keccak256 (Ethereum's, not SHA3-256)."""
    s = _sponge
    state = s.state
    if type(data) is not bytes:
        data = bytes(data)
    if _reset(state) or _absorb(state, data, len(data)) or _digest(state, s.out, 32, _KECCAK_PADDING):
        raise RuntimeError("keccak failed")
    return s.view[:]


def _b32(value: bytes, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes")
    return bytes(value)


def mid_of(model_file: bytes) -> bytes:
    """``mid = sha256(model file bytes)``: the model's id, checked by anyone who fetches it."""
    return hashlib.sha256(model_file).digest()


# The commitments below are checked once per message on the ledger's hot path: ``abi.encode`` of
# static types is 32-byte words, concatenated here directly (tests/protocol checks them
# against eth_abi).

def _u256(value: int, name: str) -> bytes:
    if type(value) is not int or not 0 <= value < 1 << 256:
        raise ValueError(f"{name} must be an int in [0, 2**256)")
    return value.to_bytes(32, "big")


def _addr(address: str | bytes, name: str) -> bytes:
    if isinstance(address, (bytes, bytearray)):
        raw = bytes(address)
    elif isinstance(address, str) and address[:2] in ("0x", "0X") and len(address) == 42:
        try:
            raw = bytes.fromhex(address[2:])
        except ValueError:
            raw = b""
    else:
        raw = b""
    if len(raw) != 20:
        raise ValueError(f"{name} must be a 20-byte address")
    return bytes(12) + raw


def claim_commitment(order_id: int, miner: str | bytes, mid: bytes, salt: bytes) -> bytes:
    """``keccak256(abi.encode(orderId, miner, mid, salt))``: binds the miner, hides the model."""
    return keccak(_u256(order_id, "orderId") + _addr(miner, "miner") + _b32(mid, "mid") + _b32(salt, "salt"))


def vid(order_id: int, validator: str | bytes, mid: bytes) -> bytes:
    """``keccak256(abi.encode(orderId, validator, mid))``: the id a challenge names."""
    return keccak(_u256(order_id, "orderId") + _addr(validator, "validator") + _b32(mid, "mid"))


def validation_commitment(order_id: int, validator: str | bytes, mid: bytes, score: int, salt: bytes) -> bytes:
    """``keccak256(abi.encode(orderId, validator, mid, score, salt))``: binds the validator, so a
    commitment copied from another validator can never be opened by the copier."""
    return keccak(_u256(order_id, "orderId") + _addr(validator, "validator") + _b32(mid, "mid")
                  + _u256(score, "score") + _b32(salt, "salt"))


def challenge_commitment(order_id: int, challenger: str, vid_: bytes, salt: bytes) -> bytes:
    """``keccak256(abi.encode(orderId, challenger, vid, salt))`` (checked by ChallengeManager)."""
    return keccak(abi_encode(["uint256", "address", "bytes32", "bytes32"],
                             [order_id, challenger, _b32(vid_, "vid"), _b32(salt, "salt")]))


def test_commitment(client: str, test_cid: str, salt: bytes) -> bytes:
    """``keccak256(abi.encode(client, keccak256(bytes(testCid)), salt))``: the client commits to its
    test set at placeOrder, so it cannot pick one after seeing the models."""
    return keccak(abi_encode(["address", "bytes32", "bytes32"],
                             [client, keccak(test_cid.encode("utf-8")), _b32(salt, "salt")]))


def model_type_to_bytes(name: str) -> bytes:
    """``"classification-accuracy-v1"`` -> bytes32, ASCII right-padded with zeros."""
    raw = name.encode("ascii")
    if not raw or len(raw) > 32 or b"\x00" in raw:
        raise ValueError(f"model type must be 1..32 ASCII characters without NUL: {name!r}")
    return raw.ljust(32, b"\x00")


def model_type_from_bytes(value: bytes) -> str:
    """bytes32 -> the validation function's name; rejects anything not canonically padded."""
    value = _b32(value, "modelType")
    name = value.rstrip(b"\x00")
    if not name or b"\x00" in name:
        raise ValueError("modelType is not a zero-padded ASCII name")
    try:
        return name.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError("modelType is not ASCII") from exc
