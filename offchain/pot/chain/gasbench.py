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
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import click
from eth_account import Account
from eth_utils import keccak

PAPER = {"RewardMultisig.proposeReward": 86_875, "RewardMultisig.confirmReward": 45_371,
         "RewardMultisig.executeReward": 161_888}
PAPER_K = 30
PAPER_PER_ACCOUNT = PAPER["RewardMultisig.proposeReward"] + PAPER_K * PAPER["RewardMultisig.confirmReward"] \
    + PAPER["RewardMultisig.executeReward"]  # 1,609,893 gas for one account
N_MEMBERS = 30
KS = (21, 30)
BATCHES = (1, 10, 100)
UNIT = 10**18
#: (n, k): 2f+1 of 4, and the paper's 30-member committee with the k the README compares at
SETTLEMENT_NS = ((4, 3), (30, 21))
SETTLEMENT_ORDERS = (1, 10, 100)
VALIDATOR_POOL = 10
#: long windows, so that every order of a batch is in the same window after one time jump
WINDOW = 1_000


@dataclass
class _Env:
    node: object
    w3: object
    dep: object  # deployer Sender
    members: list  # LocalAccounts
    senders: list  # Senders of members
    c: object  # Contracts
    #: settlement nonces from 1: every measured batch shares the nonce bitmap's first slot, so no row
    #: pays the one-off 20k of a fresh bitmap word but the first (RewardMultisig.executeSigned)
    nonce: int = 0


def _keys(n: int, tag: str) -> list:
    return [Account.from_key(keccak(text=f"pot-gasbench-{tag}-{i}")) for i in range(n)]


def _fund_eth(env: _Env, addresses: list[str]) -> None:
    from pot.chain.anvil import rpc

    try:
        for a in addresses:
            rpc(env.w3.provider.endpoint_uri, "anvil_setBalance", [a, hex(10**20)])
    except Exception:  # noqa: BLE001 - not Anvil: pay gas money from the deployer
        env.dep.send_batch([(a, b"", 21_000) for a in addresses])  # value-less would be useless
        raise click.ClickException("member funding on a non-Anvil chain needs value transfers: "
                                   "fund the 30 bench member keys first") from None


def _setup(url: str | None, n_members: int = N_MEMBERS, threshold: int = KS[0]):
    from pot.chain.anvil import DEV_KEYS, Anvil
    from pot.chain.clients import Contracts
    from pot.chain.deployment import DeployParams, deploy
    from pot.chain.keys import load_account
    from pot.chain.sender import Sender, connect

    node = None
    if url is None:
        node = Anvil(gas_limit=300_000_000).start()
        url = node.url
        account = Account.from_key(DEV_KEYS[0])
    else:
        account = load_account(allow_dev_key=False)
    w3 = connect(url)
    dep = Sender(w3, account)
    members = _keys(n_members, "member")
    params = DeployParams(members=tuple(m.address for m in members), threshold=threshold,
                          treasury=_keys(1, "treasury")[0].address, min_reveal_duration=1,
                          unbonding_period=UNBONDING, settlement_grace=10, max_order_lifetime=8 * WINDOW,
                          min_stakes=(10, 10, 10, 10), challenge_stake=100)
    d = deploy(w3, dep, params)
    env = _Env(node, w3, dep, members, [Sender(w3, m) for m in members], Contracts(w3, d))
    _fund_eth(env, [m.address for m in members])
    env.c.token.approve(dep, d.order_book, 2**96 - 1)
    return env


UNBONDING = 8 * WINDOW + 20


def _place(env: _Env, reward: int) -> int:
    from pot.chain.clients import OrderSpec

    res = env.c.orders.place_order(env.dep, OrderSpec(reward, 1, 1, 1, 1, "classification-accuracy-v1",
                                                      b"\x11" * 32, "bafy-gasbench-spec"))
    return res.event("OrderPlaced")["orderId"], res


def _advance(env: _Env, seconds: int) -> None:
    from pot.chain.anvil import rpc

    rpc(env.w3.provider.endpoint_uri, "evm_increaseTime", [seconds])
    rpc(env.w3.provider.endpoint_uri, "evm_mine")


def _batch(env: _Env, order_id: int, recipients: list[str], reward: int):
    from pot.protocol.settlement import OrderSettlement, Payout, Settlement

    env.nonce += 1
    per = reward // len(recipients)
    payouts = [Payout(r, per) for r in recipients]
    payouts[0] = Payout(recipients[0], per + reward - per * len(recipients))
    return Settlement(env.nonce, env.c.multisig.epoch(), 2**64 - 1, (),
                      (OrderSettlement(order_id, recipients[0], b"\x22" * 32, 0, tuple(payouts)),))


def _recipients(env: _Env, n: int, holders: bool, tag: str) -> list[str]:
    addrs = [a.address for a in _keys(n, tag)]
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


def payout_cost(env: _Env, path: str, k: int, batch: int, holders: bool, tag: str) -> int:
    """Total gas to pay ``batch`` accounts from one order through ``path``."""
    reward = batch * UNIT
    order_id, _ = _place(env, reward)
    _advance(env, 4)  # past the test release window: the order is finalizable
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


def function_gas(env: _Env) -> dict[str, int]:
    """One successful call of every external function a user or the committee sends."""
    from pot.chain.clients import Action, VERIFIER, challenge_commitment, data_commitment
    from pot.chain.sender import Sender
    from pot.protocol.settlement import ChallengeVerdict, OrderSettlement, Payout, Settlement, Slash

    c, dep, ms = env.c, env.dep, env.c.multisig
    g: dict[str, int] = {}
    user = _keys(1, "user")[0]
    us = Sender(env.w3, user)
    _fund_eth(env, [user.address])
    g["PoTToken.transfer"] = c.token.transfer(dep, user.address, 10**6 * UNIT).gas_used
    g["PoTToken.approve"] = c.token.approve(us, c.stakes.address, 2**96 - 1).gas_used
    c.token.approve(us, c.challenges.address, 2**96 - 1)
    c.token.approve(us, c.orders.address, 2**96 - 1)
    g["StakeRegistry.register"] = c.stakes.register(us, VERIFIER, 1000).gas_used
    g["StakeRegistry.addStake"] = c.stakes.add_stake(us, 1000).gas_used
    # An order through its whole cycle, with a challenge.
    salt = b"\x33" * 32
    from pot.chain.clients import OrderSpec
    res = c.orders.place_order(us, OrderSpec(10 * UNIT, 10, 10, 10, 10, "classification-accuracy-v1",
                                             data_commitment(user.address, "bafy-test", salt), "bafy-spec"))
    g["OrderBook.placeOrder"] = res.gas_used
    oid = res.event("OrderPlaced")["orderId"]
    _advance(env, 20)
    g["OrderBook.releaseTestData"] = c.orders.release_test_data(us, oid, "bafy-test", salt).gas_used
    _advance(env, 20)
    vid = keccak(b"vid")
    g["ChallengeManager.commitChallenge"] = c.challenges.commit_challenge(
        us, oid, challenge_commitment(oid, user.address, vid, salt)).gas_used
    _advance(env, 10)
    g["ChallengeManager.revealChallenge"] = c.challenges.reveal_challenge(us, oid, vid, salt).gas_used
    _advance(env, 20)
    env.nonce += 1
    b = Settlement(env.nonce, ms.epoch(), 2**64 - 1, (),
                   (OrderSettlement(oid, user.address, b"\x01" * 32, 0, (Payout(user.address, 10 * UNIT),)),),
                   (Slash(oid, user.address, 10, env.members[0].address),),
                   (ChallengeVerdict(oid, user.address, False, env.members[1].address),))
    g["RewardMultisig.executeSigned"] = ms.execute_signed(
        dep, b, ms.sign_settlement(b, [m.key for m in env.members[:21]])).gas_used
    # The paper's path on a one-payout order.
    oid2, _ = _place(env, UNIT)
    _advance(env, 4)
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
    oid3, _ = _place(env, UNIT)
    g["OrderBook.reclaim"] = None  # filled below (needs the grace to pass)
    oid4 = c.orders.place_order(us, OrderSpec(UNIT, 10, 10, 10, 10, "classification-accuracy-v1",
                                              data_commitment(user.address, "t", salt), "s")).event("OrderPlaced")["orderId"]
    _advance(env, 20)
    c.orders.release_test_data(us, oid4, "t", salt)
    _advance(env, 20)
    c.challenges.commit_challenge(us, oid4, challenge_commitment(oid4, user.address, vid, salt))
    _advance(env, 100)
    g["OrderBook.reclaim"] = c.orders.reclaim(dep, oid3).gas_used
    g["ChallengeManager.reclaimStake"] = c.challenges.reclaim_stake(us, oid4).gas_used
    g["StakeRegistry.requestUnregister"] = c.stakes.request_unregister(us).gas_used
    _advance(env, UNBONDING + 1)
    g["StakeRegistry.withdraw"] = c.stakes.withdraw(us).gas_used
    return g


def settlement_cost(env: _Env, n_orders: int, fresh_winners: bool, tag: str) -> dict:
    """Settle ``n_orders`` real orders in one executeSigned (see the module docstring)."""
    from pot.chain.clients import OrderSpec, data_commitment
    from pot.protocol import types as T
    from pot.protocol.finalize import OrderCycle, Params, finalize
    from pot.protocol.ids import claim_commitment, model_type_to_bytes

    c, ms, dep = env.c, env.c.multisig, env.dep
    members = [m.address for m in env.members]
    pool = [a.address for a in _keys(VALIDATOR_POOL, "validator")]
    winners = _recipients(env, n_orders, not fresh_winners, f"winner-{tag}")
    salt, test_cid = b"\x44" * 32, "bafy-gasbench-test"
    spec = OrderSpec(100 * UNIT, WINDOW, WINDOW, WINDOW, WINDOW, "classification-accuracy-v1",
                     data_commitment(dep.address, test_cid, salt), "bafy-gasbench-spec")
    oids = [r.event("OrderPlaced")["orderId"] for r in
            (c.orders.place_order(dep, spec) for _ in range(n_orders))]
    _advance(env, 2 * WINDOW)  # every order is in its test release window
    t3 = [c.orders.release_test_data(dep, oid, test_cid, salt).event("TestDataReleased")["t3"] for oid in oids]
    _advance(env, 4 * WINDOW + 5)  # and past its challenge reveals
    cycles = []
    for i, (oid, w) in enumerate(zip(oids, winners)):
        o = c.orders.get_order(oid)
        order = T.Order(oid, dep.address, o["reward"], o["t0"], WINDOW, WINDOW, WINDOW, WINDOW,
                        model_type_to_bytes("classification-accuracy-v1"), "bafy-gasbench-spec",
                        bytes(o["data_commitment"]))
        mid = keccak(f"{tag}-model-{i}".encode())
        vals = tuple(T.ValidationReveal(oid, pool[(i + j) % VALIDATOR_POOL], mid, 900_000, salt, UNIT)
                     for j in range(3))
        cycles.append(OrderCycle(order, t3[i], (T.ClaimCommit(oid, w, claim_commitment(oid, w, mid, salt)),),
                                 (T.ClaimReveal(oid, w, mid, salt, "bafy-model"),), vals))
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


def settlements(url: str | None, say) -> list[dict]:
    rows = []
    for n, k in SETTLEMENT_NS:
        env = _setup(url, n_members=n, threshold=k)
        try:
            # the steady state: the committee and the validator pool were paid before
            holders = [m.address for m in env.members] + [a.address for a in _keys(VALIDATOR_POOL, "validator")]
            tok = env.c.token
            env.dep.send_batch([(tok.address, tok.encode("transfer", a, 1), 80_000) for a in holders])
            # and settlements ran before: the nonce and order-status bitmaps hold a word already
            settlement_cost(env, 1, False, f"{n}-warm-up")
            for orders in SETTLEMENT_ORDERS:
                for fresh in (False, True):
                    say(f"settlement n={n} orders={orders} {'fresh' if fresh else 'holders'}")
                    rows.append(settlement_cost(env, orders, fresh, f"{n}-{orders}-{fresh}"))
        finally:
            if env.node is not None:
                env.node.stop()
    return rows


def run(url: str | None = None, progress=None) -> dict:
    """Measure everything; returns the JSON document ``--json`` writes (without prices)."""
    say = progress or (lambda _msg: None)
    settlement = settlements(url, say)
    env = _setup(url)
    try:
        say = progress or (lambda _msg: None)
        say("functions")
        functions = function_gas(env)
        payout = []
        for k in KS:
            if env.c.multisig.threshold() != k:
                _set_threshold(env, k)
            for batch in BATCHES:
                for holders in (True, False):
                    for path in ("propose-confirm-execute", "executeSigned"):
                        say(f"{path} k={k} batch={batch} {'holders' if holders else 'fresh'}")
                        tag = f"{path}-{k}-{batch}-{holders}"
                        total = payout_cost(env, path, k, batch, holders, tag)
                        payout.append({"path": path, "n": N_MEMBERS, "k": k, "batch": batch,
                                       "recipients": "holders" if holders else "fresh",
                                       "gas_per_account": round(total / batch)})
        return {"functions": functions, "payout": payout, "settlement": settlement}
    finally:
        if env.node is not None:
            env.node.stop()


def _money(gas: int, gwei: float, usd: float) -> tuple[str, str]:
    bnb = gas * gwei * 1e-9
    return f"{bnb:.6f}", f"${bnb * usd:.4f}"


def render(doc: dict, console) -> None:
    from rich.table import Table

    gwei, usd = doc["gas_price_gwei"], doc["token_usd"]
    t = Table(title=f"PoT contract functions (gas; BNB and USD at {gwei} gwei, ${usd}/BNB)")
    for col in ("function", "gas", "BNB", "USD", "paper (Table 6)"):
        t.add_column(col, justify="left" if col == "function" else "right")
    for name, gas in sorted(doc["functions"].items()):
        paper = PAPER.get(name)
        t.add_row(name, f"{gas:,}", *_money(gas, gwei, usd), f"{paper:,}" if paper else "")
    console.print(t)
    p = Table(title=f"Paying accounts, n = {N_MEMBERS} (paper: {PAPER_PER_ACCOUNT:,} gas = "
                    f"{_money(PAPER_PER_ACCOUNT, gwei, usd)[1]} per account at k = 30)")
    for col in ("path", "k", "batch", "recipients", "gas/account", "BNB/account", "USD/account", "vs paper"):
        p.add_column(col, justify="left" if col in ("path", "recipients") else "right")
    for row in doc["payout"]:
        gas = row["gas_per_account"]
        p.add_row(row["path"], str(row["k"]), str(row["batch"]), row["recipients"], f"{gas:,}",
                  *_money(gas, gwei, usd), f"{PAPER_PER_ACCOUNT / gas:.0f}x less")
    console.print(p)
    if doc.get("settlement"):
        q = Table(title="Settling orders: one executeSigned, k = 2f+1, every order with its own winner, "
                        "3 validators of a pool of 10, the tax to all n members")
        for col in ("n", "k", "orders", "winners", "payouts", "transfers", "gas", "gas/order", "USD/order"):
            q.add_column(col, justify="left" if col == "winners" else "right")
        for r in doc["settlement"]:
            q.add_row(str(r["n"]), str(r["k"]), str(r["orders"]), r["winners"], f"{r['payouts']:,}",
                      f"{r['transfers']:,}", f"{r['gas']:,}", f"{r['gas_per_order']:,}",
                      _money(r["gas_per_order"], gwei, usd)[1])
        console.print(q)


@click.command("gas")
@click.option("--rpc", "url", default=None, metavar="URL",
              help="JSON-RPC of an Anvil-compatible dev chain (default: start a local Anvil).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures as JSON to FILE.")
@click.option("--gas-price-gwei", type=float, default=4.562, show_default=True,
              help="Gas price for the BNB and USD columns (the paper's BSC price of 20 June 2023).")
@click.option("--token-usd", type=float, default=246.2, show_default=True, help="USD per BNB.")
def command(url: str | None, json_path: Path | None, gas_price_gwei: float, token_usd: float) -> None:
    """Gas of every PoT contract function and the cost of paying accounts via the multisig.

    The bench deploys its own contracts and drives 30 committee keys; with --rpc it needs a chain
    that accepts anvil_setBalance and evm_increaseTime (Anvil, Hardhat), and the deployer key
    from $POT_PRIVATE_KEY.
    """
    from rich.console import Console

    if gas_price_gwei <= 0 or token_usd <= 0:
        raise click.BadParameter("prices must be positive")
    console = Console(stderr=False)
    t0 = time.monotonic()
    with console.status("measuring gas...") as status:
        doc = run(url, progress=lambda m: status.update(f"measuring gas: {m}"))
    doc["gas_price_gwei"] = gas_price_gwei
    doc["token_usd"] = token_usd
    render(doc, console)
    console.print(f"[dim]measured in {time.monotonic() - t0:.1f} s[/dim]")
    if json_path:
        json_path.write_text(json.dumps(doc, indent=1) + "\n")
        console.print(f"wrote {json_path}")
