"""A whole task cycle against a real Anvil and an in-process ledger fed by the chain bridge:
a client, two miners, an honest and a lying validator, a verifier; the test plays the committee
(PoT.Verify, the settlement signature, executeSigned)."""

from __future__ import annotations

import asyncio

from roles_support import ACCOUNTS, C_STAKE, MIN_STAKE, TOKEN

from pot.chain.clients import MINER, VALIDATOR, VERIFIER
from pot.ml import score
from pot.protocol import types as T
from pot.protocol.timeline import timeline
from pot.roles.client import Client
from pot.roles.config import ClientConfig, MinerConfig, ValidatorConfig
from pot.roles.miner import Miner
from pot.roles.validator import Validator
from pot.roles.verifier import Verifier

LIE = 50_000  # ppm the lying validator adds to every score


def kinds(events, kind, role=None, address=None):
    return [e for e in events if e.kind == kind and (role is None or e.role == role)
            and (address is None or e.address == address)]


def test_full_cycle_with_a_lying_validator(net):
    asyncio.run(_full_cycle(net))


async def _full_cycle(net):
    client = net.worker(Client, "client", ClientConfig(
        dataset="digits", arch="mlp", model={"hidden": [32]}, epochs=6, batch_size=64, lr=3e-3,
        reward=100 * TOKEN, train_duration=120, validate_duration=40, challenge_duration=40, reveal_duration=30))
    miners = [net.worker(Miner, name, MinerConfig(commit_margin_s=2, min_train_s=1, train_seed=seed, stake=MIN_STAKE))
              for name, seed in (("miner_a", 1), ("miner_b", 2))]
    honest = net.worker(Validator, "validator", ValidatorConfig(v_stake=2 * TOKEN))
    liar = net.worker(Validator, "liar", ValidatorConfig(v_stake=3 * TOKEN, dishonest_offset=LIE))
    verifier = net.worker(Verifier, "verifier")
    everyone = [*miners, honest, liar, verifier]

    # stake on-chain; the bridge carries it into the ledger
    await net.step(*everyone)
    await net.step(*everyone)
    assert all(w._staked for w in everyone)
    for w, role in zip(everyone, (MINER, MINER, VALIDATOR, VALIDATOR, VERIFIER)):
        assert net.ledger.node_info(w.address)["roles"] & role
        assert net.contracts.stakes.has_roles(w.address, role)

    # the client places an order: escrow on-chain, OrderPlaced into the ledger
    balance0 = net.contracts.token.balance_of(ACCOUNTS["client"].address)
    oid = await client.place_order()
    net.pump()
    order = net.ledger.order(oid)
    assert order is not None and order.reward == 100 * TOKEN
    assert net.contracts.token.balance_of(ACCOUNTS["client"].address) == balance0 - 100 * TOKEN
    fetched = await net.gateway.fetch_orders()
    assert [v.order.order_id for v in fetched] == [oid]

    # miners pick it, train and commit every better model before trainEnd
    await net.step(*miners)
    for m in miners:
        assert kinds(m.events, "order-picked")
        await m.wait_training()
        assert kinds(m.events, "commit"), m.events
        assert oid in m.claims
    assert len(net.ledger.cycle(oid).claims) == 2

    tl = timeline(order, None)
    net.advance_to(tl.train_end + 2)
    await net.step(*miners)
    for m in miners:
        assert kinds(m.events, "reveal"), m.events
    cyc = net.ledger.cycle(oid)
    assert {r.miner for r in cyc.reveals} == {m.address for m in miners}

    # test release: upload, then open the commitment on-chain; t3 enters the ledger
    net.advance_to(tl.reveal_end + 2)
    await net.step(client)
    assert kinds(client.events, "test-released")
    rec = net.ledger.order_cycle_data(oid)
    assert rec["t3"] is not None and rec["testCid"]
    tl = timeline(order, rec["t3"])

    # validation: both validators score both models and commit
    net.advance_to(tl.t3 + 2)
    await net.step(honest, liar)
    assert len(kinds(honest.events, "validation-commit")) == 2
    assert len(kinds(liar.events, "validation-commit")) == 2
    net.advance_to(tl.validate_end + 2)
    await net.step(honest, liar)
    assert len(kinds(honest.events, "validation-reveal")) == 2
    assert len(kinds(liar.events, "validation-reveal")) == 2
    true_scores = {e.data["mid"]: e.data["score"] for e in kinds(honest.events, "score")}
    for e in kinds(liar.events, "score"):
        assert e.data["reported"] == min(1_000_000, true_scores[e.data["mid"]] + LIE)

    # the verifier recomputes and challenges the liar on-chain, then reveals
    net.advance_to(tl.validation_reveal_end + 2)
    await net.step(verifier)
    [commit] = kinds(verifier.events, "challenge-commit")
    assert commit.data["validator"] == liar.address
    assert net.contracts.challenges.get_challenge(oid, verifier.address)["stake"] == C_STAKE
    net.advance_to(tl.challenge_end + 2)
    await net.step(verifier)
    assert kinds(verifier.events, "challenge-reveal")
    [ch] = net.ledger.cycle(oid).challenges
    assert ch.challenger == verifier.address and ch.vid is not None
    assert not net.rejected_ops, net.rejected_ops

    # finalization: the disputed models go to PoT.Verify; the test is the 1-member committee
    net.advance_to(tl.challenge_reveal_end + 2)
    assert net.gateway.tick().ok
    pending = net.ledger.pending_verifications()
    assert {p["mid"] for p in pending} == set(true_scores)
    test_bytes = net.store.get(rec["testCid"])
    member = ACCOUNTS["member"]
    for p in pending:
        s = score(net.store.get(p["modelCid"]), test_bytes, p["modelType"])
        assert s == true_scores[p["mid"]]
        res = net.gateway.apply(T.VerifyResult(oid, p["mid"], s, member.address).sign(net.domain, member.key))
        assert res.ok, res
    res = net.gateway.tick()
    assert res.ok and res.nonces, res
    [pend] = net.ledger.pending_settlements()
    batch = pend["settlement"]
    [os_] = batch.orders
    best = max(true_scores.values())
    winner_mids = [m for m, s in true_scores.items() if s == best]
    assert os_.winning_mid in winner_mids
    assert {s.staker for s in batch.slashes} == {liar.address}
    [verdict] = batch.verdicts
    assert verdict.upheld and verdict.challenger == verifier.address and verdict.validator == liar.address

    # the committee executes it on-chain; SettlementExecuted closes the order in the ledger
    from pot.chain.sender import Sender

    sig = batch.sign(net.ledger.config.multisig_domain, member.key)
    assert net.gateway.apply(T.SettlementSignature(pend["nonce"], member.address, sig)).ok
    winner_balance = net.contracts.token.balance_of(os_.winner)
    net.contracts.multisig.execute_signed(Sender(net.w3, ACCOUNTS["deployer"]), batch, [sig])
    net.pump()
    assert net.ledger.order_cycle_data(oid)["status"] == "settled"
    assert not net.rejected_ops, net.rejected_ops
    payout = sum(p.amount for p in os_.payouts if p.to == os_.winner)
    assert net.contracts.token.balance_of(os_.winner) == winner_balance + payout
    # both of its validations were wrong: each loses its vStake
    assert net.contracts.stakes.staker(liar.address)["stake"] == MIN_STAKE - 2 * 3 * TOKEN

    # the client fetches the winning model, checks its mid and reproduces its score
    await net.step(client)
    result = client.results[oid]
    assert result.ok and result.executed and result.mid == os_.winning_mid
    assert result.local_score == best and result.model_path.exists()

    phases = [e.data["phase"] for e in kinds(honest.events, "phase") if e.order_id == oid]
    assert phases == ["validation", "validation-reveal"]
