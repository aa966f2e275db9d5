"""pot.chain: Anvil launcher, deployment file, sender, event follower, keys, compile, CLI, gas ceilings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from pot.chain.anvil import DEV_KEYS, Anvil, rpc
from pot.chain.deployment import Deployment
from pot.chain.events import EventFollower


def test_anvil_context_manager_starts_and_stops():
    with Anvil() as node:
        assert int(rpc(node.url, "eth_chainId"), 16) == 31337
        url = node.url
    with pytest.raises(OSError):
        rpc(url, "eth_chainId", timeout=1)


def test_deployment_file_roundtrip(pot, tmp_path):
    path = pot.deployment.save(tmp_path / "d.json")
    other = Deployment(97, dict(pot.deployment.addresses), 5, pot.deployment.deployer, {})
    other.save(path)
    assert set(json.loads(path.read_text())) == {"31337", "97"}
    loaded = Deployment.load(path, 31337)
    assert (loaded.addresses, loaded.block, loaded.chain_id) == (pot.deployment.addresses, pot.deployment.block, 31337)
    assert loaded.parameters["threshold"] == 3
    with pytest.raises(ValueError):
        Deployment.load(path)  # two chains: must say which
    with pytest.raises(ValueError):
        Deployment.load(path, 1)


def test_follower_confirmations_and_sender_batch(pot):
    from contracts.helpers import place

    f = EventFollower(pot.w3, pot.deployment, from_block=pot.w3.eth.block_number + 1, confirmations=2)
    place(pot, pot.users[0], reward=10)
    assert [e.name for e in f.poll()] == []  # not deep enough yet
    pot.node.mine(2)
    evs = f.poll()
    placed = [e for e in evs if e.name == "OrderPlaced"]
    assert len(placed) == 1 and placed[0]["reward"] == 10
    assert f.poll() == []  # each event once
    tok = pot.c.token
    receipts = pot.users[1].send_batch([(tok.address, tok.encode("transfer", pot.users[2].address, 1), 80_000)] * 5)
    assert all(r["status"] == 1 for r in receipts)


def test_keystore_and_env_keys(tmp_path, monkeypatch):
    from pot.chain.keys import KeyLoadError, load_account, write_keystore

    acct = Account.create()
    path = write_keystore(acct, tmp_path / "k.json", "pw")
    monkeypatch.setenv("POT_KEYSTORE_PASSWORD", "pw")
    assert load_account(path).address == acct.address
    monkeypatch.setenv("POT_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(KeyLoadError):
        load_account(path)
    monkeypatch.delenv("POT_PRIVATE_KEY", raising=False)
    with pytest.raises(KeyLoadError):
        load_account()
    monkeypatch.setenv("POT_PRIVATE_KEY", DEV_KEYS[1])
    assert load_account().address == Account.from_key(DEV_KEYS[1]).address


def test_compile_is_up_to_date_and_cli():
    from pot.cli import main

    r = CliRunner().invoke(main, ["contracts", "compile"])
    assert r.exit_code == 0 and "up to date" in r.output


def test_cli_deploy_on_embedded_anvil(tmp_path):
    from pot.cli import main

    out = tmp_path / "dep.json"
    r = CliRunner().invoke(main, ["contracts", "deploy", "--out", str(out)], env={"POT_PRIVATE_KEY": ""})
    assert r.exit_code == 0, r.output
    assert Deployment.load(out).reward_multisig.startswith("0x")


def test_gas_bench_ceilings_and_json(tmp_path):
    """Issue 2 targets, asserted as ceilings on the full bench (n = 30)."""
    from pot.cli import main

    out = tmp_path / "gas.json"
    r = CliRunner().invoke(main, ["bench", "gas", "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["gas_price_gwei"] == 4.562 and doc["token_usd"] == 246.2
    assert doc["cheat_codes"] is True and doc["scope"] == "full" and doc["chain"]["chain_id"] == 31337
    assert doc["build"]["code_sha256"] and doc["date"].endswith("Z")
    # the published figures are this run's (deterministic on the bench's own Anvils)
    published = json.loads((Path(__file__).resolve().parents[2] / "docs/bench/gas.json").read_text())
    assert {k: published[k] for k in ("functions", "payout", "settlement")} == \
        {k: doc[k] for k in ("functions", "payout", "settlement")}, "docs/bench/gas.json is stale"
    f = doc["functions"]
    assert f["RewardMultisig.confirmReward"] <= 30_000
    assert f["RewardMultisig.proposeReward"] <= 60_000
    rows = {(p["path"], p["k"], p["batch"], p["recipients"]): p["gas_per_account"] for p in doc["payout"]}
    assert len(rows) == 24 and all(isinstance(v, int) for v in rows.values())
    # issue 9: no dearer per paid account than before the settlement rewrite (11,900 / 29,001)
    assert rows[("executeSigned", 21, 100, "holders")] <= 11_900
    assert rows[("executeSigned", 21, 100, "fresh")] <= 29_001
    # issue 9: what one order costs to settle, on real orders with their own winners
    settle = {(r["n"], r["k"], r["orders"], r["winners"]): r for r in doc["settlement"]}
    assert set(settle) == {(n, k, o, w) for n, k in ((4, 3), (30, 21)) for o in (1, 10, 100)
                           for w in ("holders", "fresh")}
    assert settle[(30, 21, 100, "holders")]["gas_per_order"] <= 30_000
    # a fresh winner costs at least its new balance slot (22,100) more, and not much beyond
    assert settle[(30, 21, 100, "fresh")]["gas_per_order"] <= 30_000 + 22_100


def test_follower_moves_only_when_told_and_resumes_from_its_saved_position(pot, tmp_path):
    """Issue 10: a follower must never advance past events its caller has not handled; after a
    restart it resumes from the saved position (not from the deployment block, whose old
    states a pruned node no longer serves), and a file of another deployment is ignored."""
    from contracts.helpers import place

    state = tmp_path / "follower.json"
    start = pot.w3.eth.block_number + 1
    f = EventFollower(pot.w3, pot.deployment, from_block=start, state_path=state)
    place(pot, pot.users[0], reward=11)
    evs, end = f.fetch()
    assert [e["reward"] for e in evs if e.name == "OrderPlaced"] == [11]
    again, end2 = f.fetch()  # not handled: the same events again
    assert (again, end2) == (evs, end) and f.next_block == start and not state.exists()
    f.advance(end)
    assert f.fetch()[0] == []
    place(pot, pot.users[0], reward=12)
    # a restarted follower: from the saved position, not from the deployment block
    g = EventFollower(pot.w3, pot.deployment, state_path=state)
    assert g.next_block == end
    assert [e["reward"] for e in g.poll() if e.name == "OrderPlaced"] == [12]
    # another deployment's file (another chain) is ignored
    from pot.chain.deployment import Deployment

    other = Deployment(97, dict(pot.deployment.addresses), pot.deployment.block, pot.deployment.deployer, {})
    assert EventFollower(pot.w3, other, state_path=state).next_block == pot.deployment.block
