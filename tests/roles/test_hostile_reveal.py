"""Hostile models revealed into a real cycle (Anvil, the ledger, the real validator and verifier):
a header with a 5,000-digit integer and one naming its architecture as a list were revealed
before an honest model; the validator raised on every poll and never scored the honest one
(issue 10, item 9). Now each bad file scores 0 with a reason, and the honest one is scored."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import struct

from roles_support import ACCOUNTS, MIN_STAKE, TOKEN

from pot.ml import TaskSpec, build_model, save_model
from pot.protocol import types as T
from pot.protocol.ids import claim_commitment
from pot.protocol.timeline import timeline
from pot.roles.client import Client
from pot.roles.config import ClientConfig, MinerConfig, ValidatorConfig
from pot.roles.miner import Miner
from pot.roles.validator import Validator
from pot.roles.verifier import Verifier


def kinds(events, kind):
    return [e for e in events if e.kind == kind]


def hostile_variants(honest: bytes) -> dict[str, bytes]:
    """The honest file with its architecture metadata made hostile (weights cut short, so the
    file stays within the order's size limit and the header is what is judged)."""
    (n,) = struct.unpack("<Q", honest[:8])
    header = json.loads(honest[8 : 8 + n])
    cfg = header["__metadata__"]["pot.arch"]

    def with_arch(text: str) -> bytes:
        h = {**header, "__metadata__": {**header["__metadata__"], "pot.arch": text}}
        raw = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
        return struct.pack("<Q", len(raw)) + raw + honest[8 + n :][:256]

    return {"digits": with_arch(cfg.replace('"hidden":64', '"hidden":' + "7" * 5000)),
            "arch-list": with_arch(cfg.replace('"arch":"cnn"', '"arch":["cnn"]'))}


def test_hostile_reveals_score_zero_and_the_honest_model_is_still_scored(net):
    asyncio.run(_cycle(net))


async def _cycle(net):
    client = net.worker(Client, "client", ClientConfig(
        dataset="digits", arch="cnn", reward=100 * TOKEN, train_duration=60, validate_duration=40,
        challenge_duration=40, reveal_duration=30))
    # three miners send files they made by hand: hostile ones first, the honest one last
    names = ["miner_a", "liar", "miner_b"]
    miners = {name: net.worker(Miner, name, MinerConfig(stake=MIN_STAKE)) for name in names}
    validator = net.worker(Validator, "validator", ValidatorConfig(v_stake=2 * TOKEN))
    verifier = net.worker(Verifier, "verifier")
    for _ in range(2):
        for w in [*miners.values(), validator, verifier]:
            await w.ensure_staked()
        net.pump()
    assert all(w._staked for w in [*miners.values(), validator, verifier])

    oid = await client.place_order()
    net.pump()
    order = net.ledger.order(oid)
    spec = TaskSpec.from_json(net.store.get(order.spec_cid))
    honest = save_model(build_model(spec.model, seed=1))
    files = dict(zip(names, [*hostile_variants(honest).values(), honest]))
    salts = {name: os.urandom(32) for name in names}
    mids = {name: hashlib.sha256(b).digest() for name, b in files.items()}
    for name, m in miners.items():
        commit = T.ClaimCommit(oid, m.address, claim_commitment(oid, m.address, mids[name], salts[name]))
        assert (await m.send("commit", commit, oid)).ok

    tl = timeline(order, None)
    net.advance_to(tl.train_end + 2)
    for name, m in miners.items():
        cid = net.store.add_bytes(files[name])
        assert (await m.send("reveal", T.ClaimReveal(oid, m.address, mids[name], salts[name], cid), oid)).ok
    assert [r.mid for r in net.ledger.cycle(oid).reveals] == [mids[n] for n in names]

    net.advance_to(tl.reveal_end + 2)
    await net.step(client)
    tl = timeline(order, net.ledger.order_cycle_data(oid)["t3"])

    net.advance_to(tl.t3 + 2)
    await net.step(validator)
    scores = {e.data["mid"]: e.data for e in kinds(validator.events, "score")}
    assert set(scores) == set(mids.values()), validator.events
    assert "number longer" in scores[mids["miner_a"]]["note"] and scores[mids["miner_a"]]["score"] == 0
    assert "arch as a string" in scores[mids["liar"]]["note"] and scores[mids["liar"]]["score"] == 0
    assert scores[mids["miner_b"]]["score"] > 0 and "note" not in scores[mids["miner_b"]]
    assert len(kinds(validator.events, "validation-commit")) == 3

    net.advance_to(tl.validate_end + 2)
    await net.step(validator)
    assert len(kinds(validator.events, "validation-reveal")) == 3

    # the verifier recomputes the same outcomes: nothing to challenge
    net.advance_to(tl.validation_reveal_end + 2)
    await net.step(verifier)
    assert not kinds(verifier.events, "challenge-commit") and not kinds(verifier.events, "abstain")
    assert oid in verifier.done_orders
    for w in (validator, verifier):
        await w.close()
