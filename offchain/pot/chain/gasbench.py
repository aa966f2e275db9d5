"""``pot bench gas``: gas of every external function, the cost of paying accounts through the
committee multisig beside the paper's Table 6, and what one order costs to settle.

Payout scenarios: n = 30 members, k in {21, 30}; one order whose escrow pays ``batch`` accounts
(1, 10, 100), settled either by the paper's path (proposeReward + k x confirmReward +
executeReward, every transaction counted) or by one executeSigned with k signatures; recipients
that already hold tokens (a nonzero balance slot) or fresh ones (a zero slot costs 20k more).

Settlement scenarios (``settlement`` in the JSON): real orders placed on the chain, their test data
released, their windows over, settled by ``pot.protocol.finalize`` into one executeSigned with
k = 2f+1 signatures: n in {4, 30} members, 1, 10 or 100 orders, each order with its own distinct
winner and 3 validators drawn from a pool of 10, the committee tax to all n members. Winners hold
POT already ("holders") or not ("fresh"); the committee and the validator pool hold POT (they were
paid before: the steady state of a running network). ``gas_per_order`` is the executeSigned's gas
over the orders; no claim transaction exists (every recipient is paid in the settlement itself).

Where it runs (``Chain``): on Anvils it starts itself (one per deployment, the dev key, time moved
with ``evm_increaseTime``: the published figures), or on any chain at ``--rpc-url`` with the key of
``--keystore``/``$POT_PRIVATE_KEY``. There no cheat code is used (unless the chain is a plain Anvil
with chain id 31337 and no keystore is given): the bench accounts are funded from the key by value
and token transfers, time passes by waiting for blocks (order windows of ``--window`` seconds), and
what the accounts have left goes back to the key at the end. Their keys are derived from the key
(public ones would be swept by bots on a public chain), so addresses and signatures differ from
the published run: calldata costs 16 gas per nonzero byte and 4 per zero byte, which moves some
figures by a few dozen gas. The JSON names the chain and the build, so two runs can be explained.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from eth_account import Account
from eth_utils import keccak

PAPER = {"RewardMultisig.proposeReward": 86_875, "RewardMultisig.confirmReward": 45_371,
         "RewardMultisig.executeReward": 161_888}
PAPER_K = 30
PAPER_PER_ACCOUNT = PAPER["RewardMultisig.proposeReward"] + PAPER_K * PAPER["RewardMultisig.confirmReward"] \
    + PAPER["RewardMultisig.executeReward"]  # 1,609,893 gas for one account
#: the paper's BSC mainnet prices of 20 June 2023 (Table 6)
PAPER_GWEI = 4.562
PAPER_USD = 246.2
N_MEMBERS = 30
VALIDATOR_POOL = 10
UNIT = 10**18
ANVIL_CHAIN_ID = 31337
#: about what a run spends and lends to its accounts, in gas (checked against the key's balance)
RUN_GAS = {"full": 400_000_000, "quick": 120_000_000}


@dataclass(frozen=True)
class Scope:
    """Which scenarios run. ``quick`` is a smoke run for a chain where every block takes seconds."""

    name: str
    ks: tuple[int, ...]
    batches: tuple[int, ...]
    #: (n, k): 2f+1 of 4, and the paper's 30-member committee with the k the README compares at
    settlement_ns: tuple[tuple[int, int], ...]
    settlement_orders: tuple[int, ...]


FULL = Scope("full", (21, 30), (1, 10, 100), ((4, 3), (30, 21)), (1, 10, 100))
QUICK = Scope("quick", (30,), (1, 10), ((4, 3),), (10,))


@dataclass
class Chain:
    """Where the bench runs and how time passes there.

    ``url`` None: an Anvil of its own per deployment. ``cheats``: anvil_setBalance and
    evm_increaseTime; without them accounts are funded from ``account`` and the bench waits for
    blocks. ``window``: seconds of each window of the settlement orders (long with cheats, so every
    order of a batch shares its windows after one time jump); ``fn_window`` those of the order that
    walks through every function.
    """

    url: str | None
    account: Any  # LocalAccount that pays for everything
    cheats: bool
    window: int = 1_000
    fn_window: int = 10
    grace: int = 10
    seed: bytes = b""  # b"": the published (public) bench keys; else a secret derived from the key
    funded: dict[str, Any] = field(default_factory=dict)  # address -> LocalAccount, returned at the end

    @property
    def unbonding(self) -> int:
        return 8 * self.window + (20 if self.cheats else self.grace + 1)

    def keys(self, n: int, tag: str) -> list:
        return [Account.from_key(keccak(self.seed + f"pot-gasbench-{tag}-{i}".encode())) for i in range(n)]


@dataclass
class _Env:
    chain: Chain
    node: object  # the Anvil this env started, or None
    w3: object
    dep: object  # deployer Sender (the key)
    members: list  # LocalAccounts
    senders: list  # Senders of members
    c: object  # Contracts
    #: settlement nonces from 1: every measured batch shares the nonce bitmap's first slot, so no row
    #: pays the one-off 20k of a fresh bitmap word but the first (RewardMultisig.executeSigned)
    nonce: int = 0

    def keys(self, n: int, tag: str) -> list:
        return self.chain.keys(n, tag)


class BenchError(click.ClickException):
    """The chain cannot run the bench (no key, no funds, time does not pass): one line for the user."""


# --- time and money on the chain -----------------------------------------------------------------

def _head_time(env: _Env) -> int:
    return int(env.w3.eth.get_block("latest")["timestamp"])


def _advance(env: _Env, seconds: int) -> None:
    """Let ``seconds`` of chain time pass."""
    from pot.chain.anvil import rpc

    if env.chain.cheats:
        rpc(env.w3.provider.endpoint_uri, "evm_increaseTime", [seconds])
        rpc(env.w3.provider.endpoint_uri, "evm_mine")
    else:
        _wait_until(env, _head_time(env) + seconds)


def _advance_to(env: _Env, timestamp: int, cheat_seconds: int) -> None:
    """Until the head's time reaches ``timestamp``; with cheat codes jump ``cheat_seconds`` (what the
    published run does: the same jumps, so the same state)."""
    if env.chain.cheats:
        _advance(env, cheat_seconds)
    else:
        _wait_until(env, timestamp)


def _wait_until(env: _Env, timestamp: int) -> None:
    """Wait for a block at or after ``timestamp``. A chain that mines only on demand (an automining
    node) gets a 0-value transaction from the key once the wall clock is there and no block came."""
    deadline = time.monotonic() + max(0, timestamp - time.time()) + 120
    last = (None, time.monotonic())
    while True:
        head = env.w3.eth.get_block("latest")
        if int(head["timestamp"]) >= timestamp:
            return
        if head["number"] != last[0]:
            last = (head["number"], time.monotonic())
        elif time.time() >= timestamp and time.monotonic() - last[1] > 1.0:
            env.dep.send(env.dep.address, b"", gas=21_000)
            last = (None, time.monotonic())
            continue
        if time.monotonic() > deadline:
            raise BenchError(f"the chain's time does not reach {timestamp} (head block {head['number']} at "
                             f"{head['timestamp']}, clock {int(time.time())}): is it producing blocks?")
        time.sleep(0.25)


def _fund_eth(env: _Env, accounts: list, gas_budget: int) -> None:
    """Gas money for accounts that send transactions: anvil_setBalance, or value transfers from the key
    (twice the budget at today's gas price; what is left goes back at the end)."""
    from pot.chain.anvil import rpc

    if env.chain.cheats:
        for a in accounts:
            rpc(env.w3.provider.endpoint_uri, "anvil_setBalance", [a.address, hex(10**20)])
        return
    want = 2 * gas_budget * env.w3.eth.gas_price
    txs = []
    for a in accounts:
        env.chain.funded[a.address] = a
        have = env.w3.eth.get_balance(a.address)
        if have < want:
            txs.append((a.address, b"", 21_000, want - have))
    if txs:
        env.dep.send_batch(txs)


def return_funds(chain: Chain, w3) -> int:
    """Send what the funded bench accounts hold back to the key (minus the transfer's own fee);
    returns the wei sent back."""
    from pot.chain.sender import Sender

    price = w3.eth.gas_price
    fee = 21_000 * price
    sent, hashes = 0, []
    for addr, acct in chain.funded.items():
        bal = w3.eth.get_balance(addr)
        if bal > fee:
            s = Sender(w3, acct, gas_price=price)
            hashes.append((s, s.send(chain.account.address, b"", value=bal - fee, gas=21_000, wait=False)))
            sent += bal - fee
    for s, h in hashes:
        s.wait(h)
    return sent


# --- deployments ---------------------------------------------------------------------------------

def _setup(chain: Chain, n_members: int = N_MEMBERS, threshold: int = 21, *, paper_payouts: int = 0):
    from pot.chain.anvil import Anvil
    from pot.chain.clients import Contracts
    from pot.chain.deployment import DeployParams, deploy
    from pot.chain.sender import Sender, connect

    node = None
    url = chain.url
    if url is None:
        # one Anvil per deployment: the contracts land at the addresses of the published figures
        node = Anvil(gas_limit=300_000_000).start()
        url = node.url
    try:
        w3 = connect(url)
        dep = Sender(w3, chain.account)
        members = chain.keys(n_members, "member")
        params = DeployParams(members=tuple(m.address for m in members), threshold=threshold,
                              treasury=chain.keys(1, "treasury")[0].address, min_reveal_duration=1,
                              unbonding_period=chain.unbonding, settlement_grace=chain.grace,
                              max_order_lifetime=8 * chain.window, min_stakes=(10, 10, 10, 10), challenge_stake=100)
        d = deploy(w3, dep, params)
        env = _Env(chain, node, w3, dep, members, [Sender(w3, m) for m in members], Contracts(w3, d))
        if chain.cheats:
            _fund_eth(env, members, 0)
        elif paper_payouts:
            # member 0 proposes every paper-path payout (batch calldata), every member confirms it
            _fund_eth(env, members[:1], paper_payouts * 700_000)
            _fund_eth(env, members[1:], paper_payouts * 80_000)
        env.c.token.approve(dep, d.order_book, 2**96 - 1)
        return env
    except BaseException:
        if node is not None:
            node.stop()
        raise


def _placed(env: _Env, receipts: list) -> list[int]:
    from pot.chain.events import decode_logs

    names = {env.c.orders.address: "OrderBook"}
    return [int(e["orderId"]) for r in receipts for e in decode_logs(env.w3, r["logs"], names) if e.name == "OrderPlaced"]


def _place_many(env: _Env, specs: list) -> list[int]:
    """Place orders from the key in one JSON-RPC batch (order ids in the order of ``specs``)."""
    book = env.c.orders
    ids = _placed(env, env.dep.send_batch([(book.address, book.encode("placeOrder", s.as_abi()), 500_000)
                                           for s in specs]))
    if len(ids) != len(specs):
        raise RuntimeError(f"placed {len(ids)} of {len(specs)} orders")
    return ids


def _payout_spec(reward: int):
    from pot.chain.clients import OrderSpec

    return OrderSpec(reward, 1, 1, 1, 1, "classification-accuracy-v1", b"\x11" * 32, "bafy-gasbench-spec")


def _finalizable(env: _Env, oids: list[int]) -> int:
    return max(int(env.c.orders.call("finalizableAt", oid)) for oid in {oids[0], oids[-1]})


def _batch(env: _Env, order_id: int, recipients: list[str], reward: int):
    from pot.protocol.settlement import OrderSettlement, Payout, Settlement

    env.nonce += 1
    per = reward // len(recipients)
    payouts = [Payout(r, per) for r in recipients]
    payouts[0] = Payout(recipients[0], per + reward - per * len(recipients))
    return Settlement(env.nonce, env.c.multisig.epoch(), 2**64 - 1, (),
                      (OrderSettlement(order_id, recipients[0], b"\x22" * 32, 0, tuple(payouts)),))


def _recipients(env: _Env, n: int, holders: bool, tag: str) -> list[str]:
    addrs = [a.address for a in env.keys(n, tag)]
    if holders:
        tok = env.c.token
        env.dep.send_batch([(tok.address, tok.encode("transfer", a, 1), 80_000) for a in addrs])
    return addrs


def _set_threshold(env: _Env, k: int) -> int:
    from pot.chain.clients import Action

    ms = env.c.multisig
    env.nonce += 1
    action = Action(env.nonce, ms.address, bytes.fromhex(ms.encode("setThreshold", k)[2:]), epoch=ms.epoch())
    sigs = [action.sign(ms.domain, m.key) for m in env.members[: ms.threshold()]]
    return ms.execute_action(env.dep, action, sigs).gas_used


# --- the measurements ----------------------------------------------------------------------------

def payout_cost(env: _Env, path: str, k: int, batch: int, holders: bool, tag: str, order_id: int) -> int:
    """Total gas to pay ``batch`` accounts from the finalizable order ``order_id`` through ``path``."""
    reward = batch * UNIT
    recips = _recipients(env, batch, holders, tag)
    b = _batch(env, order_id, recips, reward)
    ms = env.c.multisig
    if path == "executeSigned":
        sigs = ms.sign_settlement(b, [m.key for m in env.members[:k]])
        return ms.execute_signed(env.dep, b, sigs).gas_used
    total = ms.propose_reward(env.senders[0], b).gas_used
    pid = b.proposal_id(ms.domain)
    data = ms.encode("confirmReward", pid)
    raws = []
    for s in env.senders[:k]:  # each member sends one tx; batch them into one HTTP request
        raws.append(s.send_batch([(ms.address, data, 80_000)], wait=False)[0])
    for h in raws:
        r = env.dep.wait(h)
        assert r["status"] == 1, "confirmReward failed"
        total += int(r["gasUsed"])
    return total + ms.execute_reward(env.dep, pid, b).gas_used


def function_gas(env: _Env) -> tuple[dict[str, int], Any]:
    """One successful call of every external function a user or the committee sends (withdraw is
    measured by ``withdraw_gas`` once the unbonding period is over). Returns the figures and the
    user's Sender."""
    from pot.chain.clients import Action, OrderSpec, VERIFIER, challenge_commitment, data_commitment
    from pot.chain.sender import Sender
    from pot.protocol.settlement import ChallengeVerdict, OrderSettlement, Payout, Settlement, Slash

    c, dep, ms = env.c, env.dep, env.c.multisig
    d = env.chain.fn_window
    g: dict[str, int] = {}
    user = env.keys(1, "user")[0]
    us = Sender(env.w3, user)
    _fund_eth(env, [user], 5_000_000)
    g["PoTToken.transfer"] = c.token.transfer(dep, user.address, 10**6 * UNIT).gas_used
    g["PoTToken.approve"] = c.token.approve(us, c.stakes.address, 2**96 - 1).gas_used
    c.token.approve(us, c.challenges.address, 2**96 - 1)
    c.token.approve(us, c.orders.address, 2**96 - 1)
    g["StakeRegistry.register"] = c.stakes.register(us, VERIFIER, 1000).gas_used
    g["StakeRegistry.addStake"] = c.stakes.add_stake(us, 1000).gas_used
    # An order through its whole cycle, with a challenge.
    salt = b"\x33" * 32
    res = c.orders.place_order(us, OrderSpec(10 * UNIT, d, d, d, d, "classification-accuracy-v1",
                                             data_commitment(user.address, "bafy-test", salt), "bafy-spec"))
    g["OrderBook.placeOrder"] = res.gas_used
    oid = res.event("OrderPlaced")["orderId"]
    _advance_to(env, c.orders.windows(oid)["reveal_end"], 2 * d)
    res = c.orders.release_test_data(us, oid, "bafy-test", salt)
    g["OrderBook.releaseTestData"] = res.gas_used
    t3 = int(res.event("TestDataReleased")["t3"])
    _advance_to(env, t3 + 2 * d, 2 * d)  # validationRevealEnd: the challenge window opens
    vid = keccak(b"vid")
    g["ChallengeManager.commitChallenge"] = c.challenges.commit_challenge(
        us, oid, challenge_commitment(oid, user.address, vid, salt)).gas_used
    _advance_to(env, c.orders.windows(oid)["challenge_end"], d)
    g["ChallengeManager.revealChallenge"] = c.challenges.reveal_challenge(us, oid, vid, salt).gas_used
    _advance_to(env, _finalizable(env, [oid]), 2 * d)
    env.nonce += 1
    b = Settlement(env.nonce, ms.epoch(), 2**64 - 1, (),
                   (OrderSettlement(oid, user.address, b"\x01" * 32, 0, (Payout(user.address, 10 * UNIT),)),),
                   (Slash(oid, user.address, 10, env.members[0].address),),
                   (ChallengeVerdict(oid, user.address, False, env.members[1].address),))
    g["RewardMultisig.executeSigned"] = ms.execute_signed(
        dep, b, ms.sign_settlement(b, [m.key for m in env.members[:21]])).gas_used
    # The paper's path on a one-payout order.
    oid2 = _place_many(env, [_payout_spec(UNIT)])[0]
    _advance_to(env, _finalizable(env, [oid2]), 4)
    b2 = _batch(env, oid2, [user.address], UNIT)
    g["RewardMultisig.proposeReward"] = ms.propose_reward(env.senders[0], b2).gas_used
    pid = b2.proposal_id(ms.domain)
    confirms = [ms.confirm_reward(s, pid).gas_used for s in env.senders[:21]]
    g["RewardMultisig.confirmReward"] = max(confirms)
    g["RewardMultisig.executeReward"] = ms.execute_reward(dep, pid, b2).gas_used
    # Governance: one action (a parameter change) under the threshold.
    env.nonce += 1
    act = Action(env.nonce, ms.address, bytes.fromhex(ms.encode("setParam", b"taxBps".ljust(32, b"\0"), 500)[2:]),
                 epoch=ms.epoch())
    g["RewardMultisig.executeAction"] = ms.execute_action(
        dep, act, [act.sign(ms.domain, m.key) for m in env.members[:21]]).gas_used
    # Refund rules and exits.
    oid3 = _place_many(env, [_payout_spec(UNIT)])[0]
    g["OrderBook.reclaim"] = None  # filled below (needs the grace to pass)
    oid4 = c.orders.place_order(us, OrderSpec(UNIT, d, d, d, d, "classification-accuracy-v1",
                                              data_commitment(user.address, "t", salt), "s")).event("OrderPlaced")["orderId"]
    _advance_to(env, c.orders.windows(oid4)["reveal_end"], 2 * d)
    t3 = int(c.orders.release_test_data(us, oid4, "t", salt).event("TestDataReleased")["t3"])
    _advance_to(env, t3 + 2 * d, 2 * d)
    c.challenges.commit_challenge(us, oid4, challenge_commitment(oid4, user.address, vid, salt))
    _advance_to(env, max(int(c.orders.call("reclaimableAt", o)) for o in (oid3, oid4)), 100)
    g["OrderBook.reclaim"] = c.orders.reclaim(dep, oid3).gas_used
    g["ChallengeManager.reclaimStake"] = c.challenges.reclaim_stake(us, oid4).gas_used
    g["StakeRegistry.requestUnregister"] = c.stakes.request_unregister(us).gas_used
    return g, us


def withdraw_gas(env: _Env, us) -> int:
    """StakeRegistry.withdraw of the user of ``function_gas``, once its unbonding period is over."""
    end = int(env.c.stakes.call("stakerOf", us.address)[3])
    _advance_to(env, end, env.chain.unbonding + 1)
    return env.c.stakes.withdraw(us).gas_used


def settlement_cost(env: _Env, n_orders: int, fresh_winners: bool, tag: str) -> dict:
    """Settle ``n_orders`` real orders in one executeSigned (see the module docstring)."""
    from pot.chain.clients import OrderSpec, data_commitment
    from pot.protocol import types as T
    from pot.protocol.finalize import OrderCycle, Params, finalize
    from pot.protocol.ids import claim_commitment, model_type_to_bytes

    c, ms, dep = env.c, env.c.multisig, env.dep
    w = env.chain.window
    members = [m.address for m in env.members]
    pool = [a.address for a in env.keys(VALIDATOR_POOL, "validator")]
    winners = _recipients(env, n_orders, not fresh_winners, f"winner-{tag}")
    salt, test_cid = b"\x44" * 32, "bafy-gasbench-test"
    spec = OrderSpec(100 * UNIT, w, w, w, w, "classification-accuracy-v1",
                     data_commitment(dep.address, test_cid, salt), "bafy-gasbench-spec")
    oids = _place_many(env, [spec] * n_orders)
    # every order in its test release window
    _advance_to(env, max(c.orders.windows(o)["reveal_end"] for o in {oids[0], oids[-1]}), 2 * w)
    book = c.orders
    released = dep.send_batch([(book.address, book.encode("releaseTestData", oid, test_cid, salt), 200_000)
                               for oid in oids])
    t3 = [int(o["t3"]) for o in (c.orders.get_order(oid) for oid in oids)]
    assert len(released) == n_orders and all(t3)
    _advance_to(env, _finalizable(env, oids), 4 * w + 5)  # and past its challenge reveals
    cycles = []
    for i, (oid, win) in enumerate(zip(oids, winners)):
        o = c.orders.get_order(oid)
        order = T.Order(oid, dep.address, o["reward"], o["t0"], w, w, w, w,
                        model_type_to_bytes("classification-accuracy-v1"), "bafy-gasbench-spec",
                        bytes(o["data_commitment"]))
        mid = keccak(f"{tag}-model-{i}".encode())
        vals = tuple(T.ValidationReveal(oid, pool[(i + j) % VALIDATOR_POOL], mid, 900_000, salt, UNIT)
                     for j in range(3))
        cycles.append(OrderCycle(order, t3[i], (T.ClaimCommit(oid, win, claim_commitment(oid, win, mid, salt)),),
                                 (T.ClaimReveal(oid, win, mid, salt, "bafy-model"),), vals))
    env.nonce += 1
    batch = finalize(cycles, nonce=env.nonce, params=Params(treasury=members[0]), committee=members,
                     epoch=ms.epoch())
    k = ms.threshold()
    res = ms.execute_signed(dep, batch, ms.sign_settlement(batch, [m.key for m in env.members[:k]]))
    applied = len([e for e in res.events if e.name == "OrderSettled"])
    if applied != n_orders or c.token.balance_of(c.orders.address) != 0:
        raise RuntimeError(f"bench settlement applied {applied} of {n_orders} orders")
    return {"n": len(members), "k": k, "orders": n_orders, "winners": "fresh" if fresh_winners else "holders",
            "payouts": sum(len(members) + len(o.payouts) for o in batch.orders),
            "transfers": len(batch.recipients), "gas": res.gas_used, "gas_per_order": round(res.gas_used / n_orders)}


def settlements(chain: Chain, scope: Scope, say) -> list[dict]:
    rows = []
    for n, k in scope.settlement_ns:
        env = _setup(chain, n_members=n, threshold=k)
        try:
            # the steady state: the committee and the validator pool were paid before
            holders = [m.address for m in env.members] + [a.address for a in env.keys(VALIDATOR_POOL, "validator")]
            tok = env.c.token
            env.dep.send_batch([(tok.address, tok.encode("transfer", a, 1), 80_000) for a in holders])
            # and settlements ran before: the nonce and order-status bitmaps hold a word already
            settlement_cost(env, 1, False, f"{n}-warm-up")
            for orders in scope.settlement_orders:
                for fresh in (False, True):
                    say(f"settlement n={n} orders={orders} {'fresh' if fresh else 'holders'}")
                    rows.append(settlement_cost(env, orders, fresh, f"{n}-{orders}-{fresh}"))
        finally:
            if env.node is not None:
                env.node.stop()
    return rows


def run(chain: Chain, scope: Scope = FULL, progress=None) -> dict:
    """Measure everything in ``scope``; returns the figures (``functions``, ``payout``, ``settlement``)."""
    say = progress or (lambda _msg: None)
    settlement = settlements(chain, scope, say)
    # the function table's paper-path payout, then one per k, batch and kind of recipient
    env = _setup(chain, threshold=21, paper_payouts=1 + 2 * len(scope.ks) * len(scope.batches))
    try:
        say("functions")
        functions, user = function_gas(env)
        payout = []
        for k in scope.ks:
            if env.c.multisig.threshold() != k:
                _set_threshold(env, k)
            cases = [(batch, holders, path) for batch in scope.batches for holders in (True, False)
                     for path in ("propose-confirm-execute", "executeSigned")]
            # every order of this k placed at once, so their windows pass while the others are paid
            oids = _place_many(env, [_payout_spec(batch * UNIT) for batch, _, _ in cases])
            _advance_to(env, _finalizable(env, oids), 4)
            for (batch, holders, path), oid in zip(cases, oids):
                say(f"{path} k={k} batch={batch} {'holders' if holders else 'fresh'}")
                total = payout_cost(env, path, k, batch, holders, f"{path}-{k}-{batch}-{holders}", oid)
                payout.append({"path": path, "n": N_MEMBERS, "k": k, "batch": batch,
                               "recipients": "holders" if holders else "fresh",
                               "gas_per_account": round(total / batch)})
        functions["StakeRegistry.withdraw"] = withdraw_gas(env, user)
        return {"functions": dict(sorted(functions.items())), "payout": payout, "settlement": settlement}
    finally:
        if env.node is not None:
            env.node.stop()


# --- what the figures were measured on -----------------------------------------------------------

_SECRETISH = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-]{16,}$|^[0-9a-fA-F]{24,}$")


def redact_url(url: str) -> str:
    """``url`` without credentials: userinfo, query values and path segments that look like API keys
    (Infura's /v3/<key>, Alchemy's /v2/<key>, QuickNode's /<token>/) become ``***``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"***@{host}"
    path = "/".join("***" if _SECRETISH.match(seg) else seg for seg in parts.path.split("/"))
    query = urllib.parse.urlencode([(k, "***") for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)],
                                   safe="*")
    return urllib.parse.urlunsplit((parts.scheme, host, path, query, "***" if parts.fragment else ""))


def _hardfork(url: str, block: dict) -> str:
    from pot.chain.anvil import rpc

    try:  # Anvil names its hardfork (a read, not a cheat code)
        fork = rpc(url, "anvil_nodeInfo", timeout=5).get("hardFork")
        if fork:
            return str(fork).lower()
    except Exception:  # noqa: BLE001 - any other node: infer from the header
        pass
    for key, name in (("requestsHash", "prague"), ("blobGasUsed", "cancun"), ("withdrawalsRoot", "shanghai"),
                      ("baseFeePerGas", "london")):
        if key in block:
            return f"{name} or later (from the block header)"
    return "before london (from the block header)"


def chain_info(url: str) -> dict:
    from pot.chain.anvil import rpc
    from pot.chain.sender import connect

    w3 = connect(url)
    block = dict(w3.eth.get_block("latest"))
    try:
        client = rpc(url, "web3_clientVersion", timeout=5)
    except Exception:  # noqa: BLE001 - not every node answers it
        client = None
    base = block.get("baseFeePerGas")
    return {"chain_id": int(w3.eth.chain_id), "rpc": redact_url(url), "client_version": client,
            "block": int(block["number"]), "base_fee_gwei": None if base is None else round(int(base) / 1e9, 9),
            "hardfork": _hardfork(url, block)}


def build_info() -> dict:
    """The contracts measured: commit (and whether contracts/ or the artifacts differ from it), the
    compiler and the settings that change bytecode, and a hash of the five contracts' init code."""
    from pot.chain.compile import PUBLIC, load_artifact

    arts = [load_artifact(n) for n in PUBLIC]
    settings = {k: v for k, v in arts[0]["compiler"]["settings"].items() if k not in ("outputSelection", "remappings")}
    code = hashlib.sha256("".join(a["bytecode"] for a in arts).encode()).hexdigest()
    commit = dirty = None
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "../../../contracts", "artifacts"],
                                    cwd=here, capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass  # an installed package: no checkout
    return {"commit": commit, "dirty": dirty, "solc": arts[0]["compiler"]["version"], "settings": settings,
            "code_sha256": code}


# --- the command ---------------------------------------------------------------------------------

def open_chain(url: str | None, keystore: str | None, window: int | None) -> tuple[Chain, dict]:
    """The Chain to run on and its description for the JSON."""
    from pot.chain.anvil import DEV_KEYS, Anvil
    from pot.chain.keys import KeyLoadError, load_account

    if url is None:
        with Anvil() as probe:  # what the bench's own Anvils are, for the record
            info = chain_info(probe.url)
        info["rpc"] = "local Anvil started by the bench (one per deployment)"
        return Chain(None, Account.from_key(DEV_KEYS[0]), cheats=True), info
    try:
        info = chain_info(url)
    except ConnectionError as exc:
        raise BenchError(str(exc)) from None
    client = (info["client_version"] or "").lower()
    cheats = keystore is None and info["chain_id"] == ANVIL_CHAIN_ID and client.startswith(("anvil", "hardhat"))
    try:
        account = load_account(keystore, allow_dev_key=cheats)
    except KeyLoadError as exc:
        raise BenchError(str(exc)) from None
    if cheats:
        return Chain(url, account, cheats=True), info
    w = window or 15
    if w < 2:
        raise click.BadParameter("must be at least 2 seconds", param_hint="--window")
    return Chain(url, account, cheats=False, window=w, fn_window=w, grace=2,
                 seed=keccak(bytes(account.key) + b"pot-gasbench")), info


def default_json_path(now: dt.datetime) -> Path:
    """bench-gas-<date>-<time>.json in the working directory, never an existing file."""
    base = f"bench-gas-{now.strftime('%Y%m%d-%H%M%S')}"
    path, i = Path(f"{base}.json"), 1
    while path.exists():
        path, i = Path(f"{base}-{i}.json"), i + 1
    return path


@click.command("gas")
@click.option("--rpc-url", "url", default=None, metavar="URL",
              help="JSON-RPC of the chain to measure on (default: local Anvils the bench starts). Without "
                   "--keystore on an Anvil with chain id 31337 the bench uses its cheat codes; anywhere else "
                   "it funds its accounts from the key and waits for blocks.")
@click.option("--rpc", "url_alias", default=None, hidden=True)  # its name before --rpc-url
@click.option("--keystore", type=click.Path(dir_okay=False), default=None,
              help="Encrypted key that pays (password from $POT_KEYSTORE_PASSWORD or prompted); else "
                   "$POT_PRIVATE_KEY.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the results here (default: a new bench-gas-<date>-<time>.json in the working "
                   "directory; publish with --json docs/bench/gas.json).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every row as CSV.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also draw PNG plots into DIR (payout.png, functions.png, settlement.png).")
@click.option("--compare", "base_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="BASE.json", help="Print each figure's change against an earlier run's JSON.")
@click.option("--gas-price-gwei", type=float, default=None,
              help="Gas price of the cost columns (default: the chain's; on the bench's own Anvils the "
                   f"paper's BSC price, {PAPER_GWEI} gwei).")
@click.option("--token-usd", type=float, default=PAPER_USD, show_default=True,
              help="USD per unit of the chain's native token (the paper's BNB price).")
@click.option("--window", type=int, default=None,
              help="Seconds of each order window on a chain without cheat codes (default 15; a local "
                   "chain can take 2-3).")
@click.option("--quick", is_flag=True,
              help="A smoke run: k = 30, batches 1 and 10, settlements of 10 orders at n = 4.")
def command(url, url_alias, keystore, json_path, csv_path, plot_dir, base_path, gas_price_gwei, token_usd, window,
            quick) -> None:
    """Gas of every PoT contract function and the cost of paying accounts via the multisig."""
    from rich.console import Console

    from pot.chain import gasreport

    if url and url_alias and url != url_alias:
        raise click.UsageError("--rpc is the old name of --rpc-url: give one of them")
    url = url or url_alias

    if (gas_price_gwei is not None and gas_price_gwei <= 0) or token_usd <= 0:
        raise click.BadParameter("prices must be positive")
    base = gasreport.load(base_path) if base_path else None
    console = gasreport.console()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    json_path = json_path or default_json_path(now)
    chain, info = open_chain(url, keystore, window)
    if gas_price_gwei is not None:
        price, source = gas_price_gwei, "option"
    elif url is None:
        price, source = PAPER_GWEI, "paper (BSC, 20 June 2023): the bench's Anvil has no market price"
    else:
        from pot.chain.sender import connect

        price, source = connect(url).eth.gas_price / 1e9, "chain (eth_gasPrice at the start)"
    from web3.exceptions import Web3RPCError

    t0 = time.monotonic()
    scope = QUICK if quick else FULL
    spent = key_before = w3 = None
    if not chain.cheats:
        from pot.chain.sender import connect

        w3 = connect(chain.url)
        key_before = w3.eth.get_balance(chain.account.address)
        need = RUN_GAS[scope.name] * w3.eth.gas_price
        if key_before < need:
            raise BenchError(f"{chain.account.address} holds {key_before / 1e18:.6f} of the chain's native token; "
                             f"the {scope.name} bench needs about {need / 1e18:.6f} ({RUN_GAS[scope.name]:,} gas at "
                             f"{w3.eth.gas_price / 1e9:g} gwei, most of it paid back at the end): fund the key")
    try:
        with Console(stderr=True).status("measuring gas...") as status:
            figures = run(chain, scope, progress=lambda m: status.update(f"measuring gas: {m}"))
    except (ConnectionError, TimeoutError) as exc:
        raise BenchError(f"the chain stopped answering: {exc}") from None
    except (ValueError, RuntimeError, Web3RPCError) as exc:  # refused: insufficient funds, gas price, ...
        raise BenchError(f"the chain refused a transaction: {exc}") from None
    finally:
        if w3 is not None:
            try:
                returned = return_funds(chain, w3)
                spent = key_before - w3.eth.get_balance(chain.account.address)
                console.print(f"returned {returned / 1e18:.6f} to {chain.account.address}; the run cost "
                              f"{spent / 1e18:.6f} of the chain's native token")
            except Exception as exc:  # noqa: BLE001 - never hide the run's own error behind this one
                console.print(f"[red]could not return what the bench accounts hold ({exc}); their keys derive "
                              "from yours, so the next run with this key pays it back[/red]")
    doc: dict[str, Any] = {
        "date": now.isoformat().replace("+00:00", "Z"),
        "chain": info,
        "build": build_info(),
        "scope": "quick" if quick else "full",
        "cheat_codes": chain.cheats,
        "seconds": round(time.monotonic() - t0, 1),
        "gas_price_gwei": price,
        "gas_price_source": source,
        "token_usd": token_usd,
        **figures,
    }
    if not chain.cheats:
        doc["funding"] = {"key": chain.account.address, "accounts": sorted(chain.funded), "spent_wei": spent,
                          "window_s": chain.window}
    gasreport.render(doc, console)
    console.print(f"[dim]measured in {doc['seconds']:.1f} s[/dim]")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    console.print(f"wrote {json_path}")
    if csv_path:
        gasreport.write_csv(doc, csv_path)
        console.print(f"wrote {csv_path}")
    if plot_dir:
        for p in gasreport.plot(doc, plot_dir):
            console.print(f"wrote {p}")
    if base is not None:
        gasreport.compare(base, doc, console, base_name=str(base_path))
