"""A small deterministic world for ledger tests: keys, a config, and op builders."""

from __future__ import annotations

import hashlib

from pot.ledger import Ledger, LedgerConfig
from pot.protocol import (AGGREGATOR, MINER, VALIDATOR, VERIFIER, ClaimCommit, ClaimReveal, Order,
                          OrderPlaced, StakeChanged, TestDataReleased, ValidationCommit, ValidationReveal,
                          address_of_key, claim_commitment, model_type_to_bytes, validation_commitment)


def key(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


class Actor:
    def __init__(self, name: str) -> None:
        self.name = name
        self.key = key(name)
        self.addr = address_of_key(self.key)


CLIENT = Actor("client")
MINERS = [Actor(f"miner{i}") for i in range(3)]
VALIDATORS = [Actor(f"validator{i}") for i in range(3)]
VERIFIER_ = Actor("verifier")
COMMITTEE = [Actor(f"aggregator{i}") for i in range(4)]
TREASURY = "0x000000000000000000000000000000000000dEaD"
ORDER_BOOK = "0x" + "0b" * 20
MULTISIG = "0x" + "ad" * 20
CONFIG = LedgerConfig(chain_id=31337, order_book=ORDER_BOOK, reward_multisig=MULTISIG,
                      committee=tuple(a.addr for a in COMMITTEE))
DOMAIN = CONFIG.message_domain

# timeline of the default order
T0, TRAIN, REVEAL, VALIDATE, CHALLENGE = 1000, 100, 20, 50, 30
TRAIN_END = T0 + TRAIN            # 1100
REVEAL_END = TRAIN_END + REVEAL   # 1120
RELEASE_END = REVEAL_END + REVEAL  # 1140
T3 = 1125
VALIDATE_END = T3 + VALIDATE      # 1175
VREVEAL_END = VALIDATE_END + REVEAL  # 1195
CHALLENGE_END = VREVEAL_END + CHALLENGE  # 1225
CREVEAL_END = CHALLENGE_END + REVEAL    # 1245
REWARD = 1_000_000_000_000_000_000


def order(order_id: int = 1, reward: int = REWARD, train: int = TRAIN) -> Order:
    return Order(order_id, CLIENT.addr, reward, T0, train, REVEAL, VALIDATE, CHALLENGE,
                 model_type_to_bytes("classification-accuracy-v1"), "bafyspec", b"\x01" * 32)


def salt(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def mid(i: int) -> bytes:
    return hashlib.sha256(f"model{i}".encode()).digest()


def commit(m: Actor, oid: int, model: bytes):
    return ClaimCommit(oid, m.addr, claim_commitment(oid, m.addr, model, salt(m.name, oid, model))).sign(DOMAIN, m.key)


def reveal(m: Actor, oid: int, model: bytes):
    return ClaimReveal(oid, m.addr, model, salt(m.name, oid, model), "bafy" + model.hex()[:16]).sign(DOMAIN, m.key)


def vcommit(v: Actor, oid: int, model: bytes, score: int):
    c = validation_commitment(oid, v.addr, model, score, salt(v.name, oid, model))
    return ValidationCommit(oid, v.addr, model, c).sign(DOMAIN, v.key)


def vreveal(v: Actor, oid: int, model: bytes, score: int, stake: int = 100):
    return ValidationReveal(oid, v.addr, model, score, salt(v.name, oid, model), stake).sign(DOMAIN, v.key)


def staked_ledger(path: str | None = None, *, cls: type[Ledger] = Ledger, **kw) -> Ledger:
    led = cls(CONFIG, path, **kw)
    for m in MINERS:
        assert led.apply(StakeChanged(m.addr, MINER, 1000), 0).ok
    for v in VALIDATORS:
        assert led.apply(StakeChanged(v.addr, VALIDATOR, 1000), 0).ok
    assert led.apply(StakeChanged(VERIFIER_.addr, VERIFIER, 1000), 0).ok
    for a in COMMITTEE:
        assert led.apply(StakeChanged(a.addr, AGGREGATOR, 1000), 0).ok
    return led


def happy_ops(oid: int = 1, scores=(900_000, 800_000)):
    """(time, op) list of a full honest cycle: two miners, two validators scoring both models."""
    ops = [(T0, OrderPlaced(order(oid)))]
    for i, _s in enumerate(scores):
        ops.append((T0 + 10 + i, commit(MINERS[i], oid, mid(i))))
    for i, _s in enumerate(scores):
        ops.append((TRAIN_END + i, reveal(MINERS[i], oid, mid(i))))
    ops.append((T3, TestDataReleased(oid, "bafytest", T3)))
    for v in VALIDATORS[:2]:
        for i, s in enumerate(scores):
            ops.append((T3 + 1, vcommit(v, oid, mid(i), s)))
    for v in VALIDATORS[:2]:
        for i, s in enumerate(scores):
            ops.append((VALIDATE_END, vreveal(v, oid, mid(i), s)))
    return ops
