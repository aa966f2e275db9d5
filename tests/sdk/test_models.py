"""The winning model's checks (pot.sdk.models) on a real ledger's cycle data and real model files:
the reveal must be the winner's and open its claim commitment, the file must hash to the mid and
have the spec's architecture, and the standing score is the one validators agreed on."""

from __future__ import annotations

import copy
import hashlib
import pickle

import pytest

from pot.api.views import CycleView
from pot.ledger import Ledger, LedgerConfig
from pot.ml import TaskSpec, build_model, save_model
from pot.protocol import (MINER, VALIDATOR, ClaimCommit, ClaimReveal, Order, OrderPlaced, StakeChanged,
                          TestDataReleased, ValidationCommit, ValidationReveal, address_of_key, claim_commitment,
                          model_type_to_bytes, validation_commitment)
from pot.sdk import ModelCheckError, check_model_file, check_reveal, standing_score

CONFIG = LedgerConfig(chain_id=31337, order_book="0x" + "0b" * 20, reward_multisig="0x" + "ad" * 20,
                      committee=tuple(address_of_key(hashlib.sha256(f"agg{i}".encode()).digest()) for i in range(4)))
DOMAIN = CONFIG.message_domain
ARCH = {"arch": "mlp", "in_shape": [4], "num_classes": 3, "hidden": [8]}
SPEC = TaskSpec(model=ARCH, train_data_cid="bafytrain")
T0, TRAIN, REVEAL, VALIDATE, CHALLENGE = 1000, 100, 20, 50, 30


def key(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def salt_of(name: str) -> bytes:
    return hashlib.sha256(b"salt" + name.encode()).digest()


MINERS = {name: key(name) for name in ("miner-a", "miner-b")}
VALIDATORS = {name: key(name) for name in ("val-a", "val-b")}
FILES = {"miner-a": save_model(build_model(ARCH, seed=1)), "miner-b": save_model(build_model(ARCH, seed=2))}
MIDS = {name: hashlib.sha256(f).digest() for name, f in FILES.items()}


def addr(k: bytes) -> str:
    return address_of_key(k)


@pytest.fixture(scope="module")
def cycle() -> CycleView:
    """Order 1: both miners commit and reveal; the validators agree on miner-a's model (900,000)
    and disagree on miner-b's."""
    led = Ledger(CONFIG)
    for k in MINERS.values():
        assert led.apply(StakeChanged(addr(k), MINER, 1000), 0).ok
    for k in VALIDATORS.values():
        assert led.apply(StakeChanged(addr(k), VALIDATOR, 1000), 0).ok
    order = Order(1, addr(key("client")), 10**18, T0, TRAIN, REVEAL, VALIDATE, CHALLENGE,
                  model_type_to_bytes("classification-accuracy-v2"), "bafyspec", b"\x01" * 32)
    ops = [(T0, OrderPlaced(order))]
    for i, (name, k) in enumerate(MINERS.items()):
        c = claim_commitment(1, addr(k), MIDS[name], salt_of(name))
        ops.append((T0 + 1 + i, ClaimCommit(1, addr(k), c).sign(DOMAIN, k)))
        ops.append((T0 + TRAIN + i, ClaimReveal(1, addr(k), MIDS[name], salt_of(name), f"bafy{name}").sign(DOMAIN, k)))
    t3 = T0 + TRAIN + REVEAL + 5
    ops.append((t3, TestDataReleased(1, "bafytest", t3)))
    scores = {("val-a", "miner-a"): 900_000, ("val-b", "miner-a"): 900_000, ("val-a", "miner-b"): 700_000,
              ("val-b", "miner-b"): 710_000}
    for (v, m), s in scores.items():
        k = VALIDATORS[v]
        vc = validation_commitment(1, addr(k), MIDS[m], s, salt_of(v + m))
        ops.append((t3 + 1, ValidationCommit(1, addr(k), MIDS[m], vc).sign(DOMAIN, k)))
    for (v, m), s in scores.items():
        k = VALIDATORS[v]
        ops.append((t3 + VALIDATE, ValidationReveal(1, addr(k), MIDS[m], s, salt_of(v + m), 100).sign(DOMAIN, k)))
    for t, op in sorted(ops, key=lambda x: x[0]):
        r = led.apply(op, t)
        assert r.ok, (op, r.text)
    return CycleView.from_json(led.order_cycle_data(1))


def test_the_winners_reveal_opens_its_claim_commitment(cycle):
    winner = addr(MINERS["miner-a"])
    model = check_reveal(cycle, 1, winner, MIDS["miner-a"])
    assert (model.miner, model.model_cid, model.salt) == (winner, "bafyminer-a", salt_of("miner-a"))


def test_a_reveal_that_is_not_the_winners_or_not_there_is_refused(cycle):
    with pytest.raises(ModelCheckError, match="was revealed by .*, the settlement pays"):
        check_reveal(cycle, 1, addr(MINERS["miner-b"]), MIDS["miner-a"])
    with pytest.raises(ModelCheckError, match="no reveal of the winning model"):
        check_reveal(cycle, 1, addr(MINERS["miner-a"]), b"\x07" * 32)


def test_cycle_data_whose_salt_does_not_open_the_commitment_is_refused(cycle):
    # what a lying committee (or a broken replica set) could answer: another salt for the reveal
    raw = copy.deepcopy(cycle.raw)
    raw["models"][0]["salt"] = "0x" + salt_of("forged").hex()
    with pytest.raises(ModelCheckError, match="does not open .* claim commitment"):
        check_reveal(CycleView.from_json(raw), 1, addr(MINERS["miner-a"]), MIDS["miner-a"])
    # the same cycle under another order id: the commitment binds the order too
    with pytest.raises(ModelCheckError, match="does not open"):
        check_reveal(cycle, 2, addr(MINERS["miner-a"]), MIDS["miner-a"])


def test_the_model_file_must_hash_to_the_mid_and_have_the_specs_architecture():
    assert check_model_file(FILES["miner-a"], MIDS["miner-a"], SPEC) == ARCH
    with pytest.raises(ModelCheckError, match="hashes to 0x.*not to the mid"):
        check_model_file(FILES["miner-b"], MIDS["miner-a"], SPEC)
    smaller = save_model(build_model({**ARCH, "hidden": [7]}, seed=1))
    with pytest.raises(ModelCheckError, match="hidden is \\[7\\], the spec says \\[8\\]"):
        check_model_file(smaller, hashlib.sha256(smaller).digest(), SPEC)
    # a larger one is refused by its size, before its header is parsed
    larger = save_model(build_model({**ARCH, "hidden": [9]}, seed=1))
    with pytest.raises(ModelCheckError, match="model file is 708 bytes; the limit is 676"):
        check_model_file(larger, hashlib.sha256(larger).digest(), SPEC)
    pickled = pickle.dumps({"w": [1.0, 2.0]})
    with pytest.raises(ModelCheckError, match="pickle"):
        check_model_file(pickled, hashlib.sha256(pickled).digest(), SPEC)


def test_the_standing_score_is_the_validators_unanimous_one(cycle):
    assert standing_score(cycle, MIDS["miner-a"]) == 900_000
    assert standing_score(cycle, MIDS["miner-b"]) is None  # they disagree: PoT.Verify decides
    assert standing_score(cycle, b"\x07" * 32) is None
