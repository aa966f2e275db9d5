"""Workers restarted mid-cycle: the miner, the validators and the verifier are replaced by fresh
instances (same account, same state directory) right after their commits, and the new ones
reveal what the old ones committed to; plus the state files' crash safety."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat

from eth_account import Account
from pot.chain.anvil import DEV_KEYS
from pot.chain.sender import Sender
from pot.ledger import Ledger, LedgerConfig
from pot.ml import score
from pot.protocol import types as T
from pot.protocol.timeline import timeline
from pot.roles.base import StateDir, Worker
from pot.roles.client import Client
from pot.roles.config import ClientConfig, MinerConfig, ValidatorConfig
from pot.roles.gateway import LocalGateway
from pot.roles.miner import Claim, Miner
from pot.roles.validator import Validation, Validator
from pot.roles.verifier import Verifier
from roles_support import ACCOUNTS, MIN_STAKE, TOKEN

LIE = 50_000


def kinds(events, kind):
    return [e for e in events if e.kind == kind]


def restart(net, old, name, config):
    """A crash and a restart: the old instance is dropped as it is, a new one reads the state."""
    cls = type(old)
    new = net.worker(cls, name, config)
    assert new.state.path == old.state.path
    return new


def order_files(worker):
    return sorted(p.name for p in worker.state.path.glob("order-*.json*")) if worker.state.path.exists() else []


def test_restarted_workers_reveal_what_they_committed(net):
    asyncio.run(_restart_cycle(net))


async def _restart_cycle(net):
    client = net.worker(Client, "client", ClientConfig(
        dataset="digits", arch="mlp", model={"hidden": [32]}, epochs=4, batch_size=64, lr=3e-3,
        reward=100 * TOKEN, train_duration=120, validate_duration=40, challenge_duration=40, reveal_duration=30))
    mcfg = {name: MinerConfig(commit_margin_s=2, min_train_s=1, train_seed=seed, stake=MIN_STAKE)
            for name, seed in (("miner_a", 1), ("miner_b", 2))}
    vcfg = {"validator": ValidatorConfig(v_stake=2 * TOKEN),
            "liar": ValidatorConfig(v_stake=3 * TOKEN, dishonest_offset=LIE)}
    miners = {name: net.worker(Miner, name, cfg) for name, cfg in mcfg.items()}
    validators = {name: net.worker(Validator, name, cfg) for name, cfg in vcfg.items()}
    verifier = net.worker(Verifier, "verifier")
    everyone = [*miners.values(), *validators.values(), verifier]
    await net.step(*everyone)
    await net.step(*everyone)
    assert all(w._staked for w in everyone)

    oid = await client.place_order()
    net.pump()
    order = net.ledger.order(oid)

    # training: every better model is committed; its salt and bytes are on disk first
    await net.step(*miners.values())
    committed = {}
    for name, m in miners.items():
        await m.wait_training()
        assert kinds(m.events, "commit"), m.events
        committed[name] = m.claims[oid]
        doc = json.loads((m.state.path / f"order-{oid}.json").read_text())["data"]
        [entry] = doc["claims"]
        assert entry["status"] == "committed" and entry["salt"] == "0x" + committed[name].salt.hex()
        assert stat.S_IMODE(os.stat(m.state.path / f"order-{oid}.json").st_mode) == 0o600
        assert (m.state.path / entry["modelFile"]).read_bytes() == committed[name].model_bytes
    # miner_b "crashes" right after saving a newer claim it never got to send: the restarted
    # miner must still open the commitment the ledger holds, not this one
    stray = b"a model whose ClaimCommit never left"
    miners["miner_b"].maybe[oid] = [Claim(stray, hashlib.sha256(stray).digest(), os.urandom(32), 0.99)]
    await miners["miner_b"]._persist(oid)

    miners = {name: restart(net, m, name, mcfg[name]) for name, m in miners.items()}
    for name, m in miners.items():
        [ev] = kinds(m.events, "resumed")
        assert ev.data["mid"] == committed[name].mid and m.claims[oid].salt == committed[name].salt
    assert len(miners["miner_b"].maybe[oid]) == 1

    tl = timeline(order, None)
    net.advance_to(tl.train_end + 2)
    await net.step(*miners.values())
    cyc = net.ledger.cycle(oid)
    assert {r.miner: r.mid for r in cyc.reveals} == {m.address: committed[n].mid for n, m in miners.items()}
    for name, m in miners.items():
        [ev] = kinds(m.events, "reveal")
        assert ev.data["mid"] == committed[name].mid
        assert hashlib.sha256(net.store.get(ev.data["cid"])).digest() == committed[name].mid
        assert not kinds(m.events, "rejected") and not kinds(m.events, "commit")
    # the stray candidate was dropped once the ledger's commitment named the real one
    assert not any(p.name == f"model-{hashlib.sha256(stray).hexdigest()}.safetensors"
                   for p in miners["miner_b"].state.path.iterdir())

    net.advance_to(tl.reveal_end + 2)
    await net.step(client)
    tl = timeline(order, net.ledger.order_cycle_data(oid)["t3"])

    # validation: both commit, then both restart before the reveal window
    net.advance_to(tl.t3 + 2)
    await net.step(*validators.values())
    reported = {}
    for name, v in validators.items():
        assert len(kinds(v.events, "validation-commit")) == 2
        reported[name] = {mid: val.score for (o, mid), val in v.validations.items() if o == oid}
    true_scores = {e.data["mid"]: e.data["score"] for e in kinds(validators["validator"].events, "score")}
    validators = {name: restart(net, v, name, vcfg[name]) for name, v in validators.items()}
    for v in validators.values():
        assert kinds(v.events, "resumed")[0].data["validations"] == 2

    net.advance_to(tl.validate_end + 2)
    await net.step(*validators.values())
    for name, v in validators.items():
        revealed = {e.data["mid"]: e.data["score"] for e in kinds(v.events, "validation-reveal")}
        assert revealed == reported[name] and not kinds(v.events, "rejected")
        assert not kinds(v.events, "validation-commit") and not kinds(v.events, "score")
    assert len(net.ledger.fetch_validations(oid)) == 4

    # the verifier challenges the liar on-chain, then restarts before the challenge-reveal window
    net.advance_to(tl.validation_reveal_end + 2)
    await net.step(verifier, *validators.values())
    [commit] = kinds(verifier.events, "challenge-commit")
    assert commit.data["validator"] == validators["liar"].address
    for v in validators.values():  # the reveal window closed: the validators' salts are gone
        assert order_files(v) == []
    salt = verifier.challenges[oid].salt
    verifier = restart(net, verifier, "verifier", None)
    assert verifier.challenges[oid].salt == salt and verifier.challenges[oid].committed

    net.advance_to(tl.challenge_end + 2)
    await net.step(verifier)
    assert kinds(verifier.events, "challenge-reveal") and not kinds(verifier.events, "rejected")
    assert not kinds(verifier.events, "challenge-commit")
    [ch] = net.ledger.cycle(oid).challenges
    assert ch.challenger == verifier.address and ch.vid is not None
    assert not net.rejected_ops, net.rejected_ops

    # finalization and settlement, the test playing the 1-member committee
    net.advance_to(tl.challenge_reveal_end + 2)
    await net.step(verifier)
    assert order_files(verifier) == []
    assert net.gateway.tick().ok
    rec = net.ledger.order_cycle_data(oid)
    test_bytes = net.store.get(rec["testCid"])
    member = ACCOUNTS["member"]
    for p in net.ledger.pending_verifications():
        s = score(net.store.get(p["modelCid"]), test_bytes, p["modelType"])
        assert s == true_scores[p["mid"]]
        assert net.gateway.apply(T.VerifyResult(oid, p["mid"], s, member.address).sign(net.domain, member.key)).ok
    res = net.gateway.tick()
    assert res.ok and res.nonces, res
    [pend] = net.ledger.pending_settlements()
    batch = pend["settlement"]
    [os_] = batch.orders
    best = max(true_scores.values())
    assert true_scores[os_.winning_mid] == best
    assert os_.winner in {m.address for m in miners.values()}
    assert {s.staker for s in batch.slashes} == {validators["liar"].address}
    [verdict] = batch.verdicts
    assert verdict.upheld and verdict.challenger == verifier.address
    sig = batch.sign(net.ledger.config.multisig_domain, member.key)
    assert net.gateway.apply(T.SettlementSignature(pend["nonce"], member.address, sig)).ok
    net.contracts.multisig.execute_signed(Sender(net.w3, ACCOUNTS["deployer"]), batch, [sig])
    net.pump()
    assert net.ledger.order_cycle_data(oid)["status"] == "settled"
    assert not net.rejected_ops, net.rejected_ops

    # settled: the miners drop the order's salts and model files
    await net.step(*miners.values())
    for m in miners.values():
        assert order_files(m) == [] and not list(m.state.path.glob("model-*"))


# --- the state files -----------------------------------------------------------------------

def test_half_written_state_is_ignored_and_the_last_complete_state_wins(tmp_path, caplog):
    sd = StateDir(tmp_path / "s")
    sd.save("order-1", {"n": 1})
    sd.save("order-1", {"n": 2})
    sd.save("order-2", {"n": 7})
    assert stat.S_IMODE(os.stat(tmp_path / "s" / "order-1.json").st_mode) == 0o600
    # a crash while writing the third version: a half-written tmp beside the complete file
    full = (tmp_path / "s" / "order-1.json").read_text().replace('"n": 2', '"n": 3')
    (tmp_path / "s" / "order-1.json.tmp").write_text(full[: len(full) // 2])
    # and a document truncated by something less careful
    (tmp_path / "s" / "order-3.json").write_text('{"format": 1, "seq": 1, "sha')
    with caplog.at_level(logging.WARNING, logger="pot.roles"):
        got = StateDir(tmp_path / "s").load_all()
    assert got == {"order-1": {"n": 2}, "order-2": {"n": 7}}
    assert "order-1.json.tmp" in caplog.text and "order-3.json" in caplog.text
    assert not (tmp_path / "s" / "order-1.json.tmp").exists()

    # a tmp that is complete (the crash came between fsync and rename) is the newer state
    sd = StateDir(tmp_path / "s")
    sd.load("order-2")
    sd.save("order-2", {"n": 8})
    doc = json.loads((tmp_path / "s" / "order-2.json").read_text())
    doc.update(seq=doc["seq"] + 1, data={"n": 9}, sha256=StateDir._digest({"n": 9}))
    (tmp_path / "s" / "order-2.json.tmp").write_text(json.dumps(doc))
    assert StateDir(tmp_path / "s").load("order-2") == {"n": 9}
    # a checksum that does not match is not a complete state
    doc.update(seq=doc["seq"] + 1, data={"n": 10})
    (tmp_path / "s" / "order-2.json.tmp").write_text(json.dumps(doc))
    assert StateDir(tmp_path / "s").load("order-2") == {"n": 9}


def test_a_worker_loads_past_a_crashed_write_and_works_without_a_state_dir(tmp_path):
    account = Account.from_key(DEV_KEYS[5])
    ledger = Ledger(LedgerConfig(31337, "0x" + "11" * 20, "0x" + "22" * 20, ("0x" + "33" * 20,)))
    kw = {"account": account, "gateway": LocalGateway(ledger), "domain": ledger.config.message_domain}
    v = Validator(ValidatorConfig(state_dir=str(tmp_path)), **kw)
    assert v.state.path == tmp_path / "validator" / "31337-11111111" / account.address  # keyed by deployment
    mid = b"\x01" * 32
    v.validations[(4, mid)] = v_ = Validation(900_000, 900_000, b"\x02" * 32, committed=True)
    v._save_order(4)
    (v.state.path / "order-5.json.tmp").write_bytes(b'{"format": 1, "seq": 3, "da')  # crashed write
    again = Validator(ValidatorConfig(state_dir=str(tmp_path)), **kw)
    assert again.validations == {(4, mid): v_}
    assert [e.order_id for e in again.events if e.kind == "resumed"] == [4]

    class Plain(Worker):  # like the demo's thief: no config at all, everything in memory
        role = "plain"

        async def _step(self) -> None:
            pass

    w = Plain(**kw)
    assert w.config is None and not w.state.enabled
    w.state.save("order-1", {"x": 1})
    assert w.state.load_all() == {}
