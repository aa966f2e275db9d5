"""Settlement on-chain, end to end with real replica processes and a real Anvil (ARCHITECTURE.md §4):

- the paper's propose / confirm / execute path (``settlement_path = "propose-confirm-execute"``):
  the nonce's replica proposes, the members confirm, the nonce's replica executes;
- executeSigned with its takeover: the nonce's designated submitter is SIGSTOPped, the next
  replica submits once ``settlement_timeout`` has passed, and a replay (the late submitter, or
  anyone) is refused by the contract and taken by the replica as "already done";
- ``confirmations > 0``: chain events reach the ledger only at that depth.

Each order here has one ClaimCommit and no reveal, so it settles without any training, as
"R minus tax to the client, tax split among the committee" (five payouts, summing to escrow).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import replace

import pytest
from committee_support import MIN_STAKE, TOKEN, Committee, multisig_calls, place_order, stake
from eth_account import Account

from pot.chain.anvil import DEV_KEYS
from pot.chain.errors import ChainRevert
from pot.protocol import types as T
from pot.protocol.eip712 import Domain

REWARD = 100 * TOKEN
CONFIRMATIONS = 2
MINER_KEY, CLIENT_KEY = DEV_KEYS[7], DEV_KEYS[8]


def _next_nonce(com: Committee, reader: int) -> int:
    k = 1
    while com.get(reader, f"/v1/settlements/{k}") is not None:
        k += 1
    return k


def _settle_one_order(com: Committee, reader: int, *, before_final=None, timeout: float = 60.0) -> dict:
    """Stake a miner, place an order, commit one claim (never revealed), then wait until the
    ledger of replica ``reader`` shows the order settled. Token balances of every account
    involved are taken after the order's escrow went in and again at the end."""
    c = com.contracts
    miner = stake(com, MINER_KEY)
    com.wait_for(lambda: (com.get(reader, f"/v1/nodes/{miner}") or {}).get("stake") == MIN_STAKE, 30,
                 "the miner's stake in the ledger")
    client = Account.from_key(CLIENT_KEY).address
    watched = [client, miner, *(k.address for k in com.keys), com.treasury, c.orders.address]
    escrow_before = c.token.balance_of(c.orders.address)
    oid, placed = place_order(com, CLIENT_KEY, reward=REWARD)
    before = {a: c.token.balance_of(a) for a in watched}
    assert before[c.orders.address] == escrow_before + REWARD

    # the order enters the ledger only once its block is `confirmations` deep
    com.wait_for(lambda: com.get(reader, f"/v1/orders/{oid}"), 20, "OrderPlaced in the ledger", every=0.05)
    order_seen_head = com.w3.eth.block_number

    domain = Domain.messages(com.deployment.chain_id, com.deployment.order_book)
    res = com.submit(reader, T.ClaimCommit(oid, miner, os.urandom(32)).sign(domain, MINER_KEY))
    assert res.ok, res
    if before_final is not None:
        before_final(oid)

    deadline = time.monotonic() + timeout
    while True:
        cyc = com.get(reader, f"/v1/orders/{oid}")
        if cyc is not None and cyc["status"] == "settled":
            settled_head = com.w3.eth.block_number
            break
        assert time.monotonic() < deadline, f"order {oid} never settled: {cyc and cyc['status']}"
        time.sleep(0.05)
    st = com.get(reader, f"/v1/settlements/{cyc['nonce']}")
    assert st is not None and st["executed"] and st["orderIds"] == [oid]
    after = {a: c.token.balance_of(a) for a in watched}
    return {"oid": oid, "nonce": cyc["nonce"], "placed": placed, "settlement": st, "before": before,
            "after": after, "client": client, "miner": miner, "order_seen_head": order_seen_head,
            "settled_head": settled_head}


def _check_payouts(com: Committee, run: dict) -> None:
    """The ledger's payouts are exactly what moved: escrow out, each payee in, nothing else."""
    from pot.protocol.settlement import settlement_from_json

    batch = settlement_from_json(run["settlement"]["settlement"])
    [os_] = batch.orders
    assert os_.order_id == run["oid"]
    assert sum(p.amount for p in os_.paid(batch.members)) == REWARD
    expected = {}
    for p in os_.paid(batch.members):
        expected[p.to] = expected.get(p.to, 0) + p.amount
    # claims but no reveal: R minus tax back to the client, the tax split among the members
    assert set(expected) == {run["client"], *(k.address for k in com.keys)}, expected
    assert expected[run["client"]] < REWARD
    delta = {a: run["after"][a] - run["before"][a] for a in run["before"]}
    assert delta.pop(com.contracts.orders.address) == -REWARD
    for a, d in delta.items():
        assert d == expected.get(a, 0), (a, d, expected.get(a, 0))


def _settlement_log(com: Committee, i: int) -> list[dict]:
    import json

    p = com.data_dir(i) / "settlements.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


# --- the paper's path ----------------------------------------------------------------------

@pytest.fixture(scope="class")
def com(anvil, tmp_path_factory):
    # class scope: this committee is gone before the executeSigned one starts (2 cores)
    c = Committee(anvil, tmp_path_factory.mktemp("pce"), settlement_path="propose-confirm-execute",
                  settlement_timeout=4.0)
    c.start_all()
    yield c
    c.stop_all()


class TestProposeConfirmExecute:
    def test_settles(self, com):
        run = _settle_one_order(com, reader=0)
        turn = run["nonce"] % com.n
        _check_pce(com, run, submitter=turn, live=range(com.n))

    def test_next_replica_takes_over_a_stopped_proposer(self, com):
        nonce = _next_nonce(com, 0)
        designated = nonce % com.n
        reader = 0 if designated != 0 else 2
        stopped = []

        def stop_proposer(oid):
            com.kill(designated, signal.SIGSTOP)
            stopped.append(designated)

        try:
            run = _settle_one_order(com, reader, before_final=stop_proposer)
        finally:
            if stopped:
                com.kill(designated, signal.SIGCONT)
        assert run["nonce"] == nonce
        live = [i for i in range(com.n) if i != designated]
        _check_pce(com, run, submitter=(nonce + 1) % com.n, live=live)
        # the resumed replica learns it executed and adds nothing on-chain
        com.wait_for(lambda: (com.get(designated, f"/v1/settlements/{nonce}") or {}).get("executed"), 40,
                     "the resumed replica learns the settlement executed")
        time.sleep(1.5)
        assert len(multisig_calls(com, run["placed"].block_number)) == len(
            [e for i in range(com.n) for e in _settlement_log(com, i) if e["nonce"] == nonce])
        assert [e for e in _settlement_log(com, designated) if e["nonce"] == nonce] == []


def _check_pce(com: Committee, run: dict, *, submitter: int, live) -> None:
    """One proposeReward and one executeReward, both from ``submitter``; a confirmReward from
    at least k distinct live members, none from anyone else; no executeSigned; nothing reverted."""
    nonce = run["nonce"]
    _check_payouts(com, run)
    ms = com.contracts.multisig
    assert ms.nonce_used(nonce)
    assert tuple(ms.call("proposalState", nonce)) == (0, False)   # executed proposals are deleted

    calls = multisig_calls(com, run["placed"].block_number)
    assert all(x["status"] == 1 for x in calls), calls             # nothing mined that reverted
    by_fn: dict[str, list[dict]] = {}
    for x in calls:
        by_fn.setdefault(x["fn"], []).append(x)
    assert set(by_fn) == {"proposeReward", "confirmReward", "executeReward"}, calls
    members = [k.address for k in com.keys]
    [prop] = by_fn["proposeReward"]
    [exe] = by_fn["executeReward"]
    assert prop["from"] == members[submitter] and exe["from"] == members[submitter], (submitter, calls)
    confirmers = [x["from"] for x in by_fn["confirmReward"]]
    assert len(set(confirmers)) == len(confirmers) >= ms.threshold(), confirmers   # each member once
    assert set(confirmers) <= {members[i] for i in live}, confirmers
    assert prop["block"] <= min(x["block"] for x in by_fn["confirmReward"]) <= exe["block"]
    # the ledger learnt the settlement from executeReward's SettlementExecuted
    assert run["settlement"]["txHash"] == exe["hash"]
    # each replica recorded exactly the transactions it landed
    logged = [(e["fn"], com.keys[i].address) for i in range(com.n) for e in _settlement_log(com, i)
              if e["nonce"] == nonce]
    assert sorted(logged) == sorted((x["fn"], x["from"]) for x in calls), (logged, calls)


# --- executeSigned, takeover, confirmation depth -------------------------------------------

@pytest.fixture(scope="module")
def signed_com(anvil, tmp_path_factory):
    # module scope, requested only after the propose/confirm/execute class tore its committee down
    c = Committee(anvil, tmp_path_factory.mktemp("signed"), settlement_timeout=4.0,
                  confirmations=CONFIRMATIONS)
    c.start_all()
    yield c
    c.stop_all()


def test_execute_signed_taken_over_when_submitter_is_stopped(signed_com, caplog):
    com = signed_com
    n = com.n
    reader = 0
    nonce = _next_nonce(com, reader)
    designated = nonce % n
    if designated == reader:
        reader = (designated + 2) % n
    stopped = []

    def stop_submitter(oid):
        # before the order finalizes: the designated submitter never sees the settlement
        com.kill(designated, signal.SIGSTOP)
        stopped.append(designated)

    t0 = time.monotonic()
    try:
        run = _settle_one_order(com, reader, before_final=stop_submitter)
    finally:
        if stopped:
            com.kill(designated, signal.SIGCONT)
    assert run["nonce"] == nonce
    _check_payouts(com, run)
    ms = com.contracts.multisig
    assert ms.nonce_used(nonce)
    members = [k.address for k in com.keys]
    takeover = (nonce + 1) % n

    # exactly one executeSigned landed, from the next replica in turn
    calls = multisig_calls(com, run["placed"].block_number)
    assert [(x["fn"], x["from"], x["status"]) for x in calls] == [("executeSigned", members[takeover], 1)], calls
    assert run["settlement"]["txHash"] == calls[0]["hash"]
    assert [e["fn"] for e in _settlement_log(com, takeover) if e["nonce"] == nonce] == ["executeSigned"]
    assert [e for e in _settlement_log(com, designated) if e["nonce"] == nonce] == []
    print(f"\ntakeover: replica {takeover} executed nonce {nonce} for stopped replica {designated}; "
          f"order placed -> settled in ledger {time.monotonic() - t0:.1f}s")

    # confirmations: OrderPlaced and SettlementExecuted entered the ledger only at that depth
    exec_block = com.w3.eth.get_transaction_receipt(calls[0]["hash"])["blockNumber"]
    assert run["order_seen_head"] >= run["placed"].block_number + CONFIRMATIONS, run
    assert run["settled_head"] >= exec_block + CONFIRMATIONS, (run["settled_head"], exec_block)

    # the resumed submitter catches up and sends nothing: the nonce is used
    com.wait_for(lambda: (com.get(designated, f"/v1/settlements/{nonce}") or {}).get("executed"), 40,
                 "the resumed replica learns the settlement executed")
    time.sleep(1.5)  # a few settle passes of the resumed replica
    assert len(multisig_calls(com, run["placed"].block_number)) == 1
    assert [e for e in _settlement_log(com, designated) if e["nonce"] == nonce] == []

    # a replay of the same batch with k valid signatures is refused by the contract...
    from pot.protocol.settlement import settlement_from_json

    batch = settlement_from_json(run["settlement"]["settlement"])
    sigs = ms.sign_settlement(batch, [k.key for k in com.keys[:3]])
    replayer = com.deployer
    replayer.resync()
    with pytest.raises(ChainRevert) as e:
        ms.execute_signed(replayer, batch, sigs)
    assert e.value.error == "NonceUsed"
    assert {a: com.contracts.token.balance_of(a) for a in run["after"]} == run["after"]

    # ...and a replica whose nonceUsed read raced the other submission takes the refusal as
    # success: no exception, no warning, nothing recorded, no transaction (the real
    # _submit_signed of the nonce's designated replica, in process, against the same chain)
    asyncio.run(_late_submitter_replay(com, designated, nonce, batch, sigs, caplog))
    assert len(multisig_calls(com, run["placed"].block_number)) == 1


async def _late_submitter_replay(com: Committee, rid: int, nonce: int, batch, sigs, caplog) -> None:
    from pot.roles.aggregator import Aggregator, load_aggregator_config

    cfg = load_aggregator_config(com.paths[rid])
    cfg = replace(cfg, data_dir=com.tmp / "late-submitter")
    agg = Aggregator(cfg, account=com.keys[rid])
    await asyncio.to_thread(agg._chain_setup)
    from pot.ledger import Ledger
    agg.ledger = Ledger(agg.ledger_config)  # the settler reads the committee's current k from its ledger
    ms = agg.contracts.multisig
    ms.nonce_used = lambda _n: False          # the check ran just before the other tx landed
    st = {"nonce": nonce, "orderIds": [o.order_id for o in batch.orders], "settlement": batch,
          "signatures": sigs}
    with caplog.at_level(logging.INFO, logger="pot.aggregator"):
        await agg._settler()._submit_signed(st)
    assert "already executed by another replica" in caplog.text, caplog.text
    assert not [r for r in caplog.records if r.name.startswith("pot") and r.levelno >= logging.WARNING], caplog.text
    assert agg.stats["settlements"] == []
    assert not (cfg.data_dir / "settlements.jsonl").exists()


def test_chain_events_wait_for_confirmations(signed_com):
    """A stake registered on-chain reaches the ledger only once its block is deep enough; with
    Anvil mining a block a second that is seconds, not the sub-second of depth 0."""
    com = signed_com
    key = DEV_KEYS[9]
    addr = Account.from_key(key).address
    head0 = com.w3.eth.block_number
    stake(com, key)
    reg_block = max(b for b in range(head0, com.w3.eth.block_number + 1)
                    if any(tx["from"] == addr for tx in com.w3.eth.get_block(b, full_transactions=True)
                           ["transactions"]))
    com.wait_for(lambda: (com.get(0, f"/v1/nodes/{addr}") or {}).get("stake") == MIN_STAKE, 20,
                 "the stake in the ledger", every=0.05)
    seen_head = com.w3.eth.block_number
    assert seen_head >= reg_block + CONFIRMATIONS, (seen_head, reg_block)
    # every replica attested it (f+1 needed) and agrees
    com.wait_for(lambda: all((com.get(i, f"/v1/nodes/{addr}") or {}).get("stake") == MIN_STAKE
                             for i in range(com.n)), 20, "the stake on every replica")
