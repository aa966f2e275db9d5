"""LocalGateway and HttpGateway (API + BFT reads) give workers the same views; the bridge's
translation of chain logs into ledger ops."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from test_api import CLIENT, MINER, T0, Clock, commit, make_ledger  # noqa: E402

from pot.api import ApiClient, CommitteeClient, LocalNode, create_app
from pot.chain.events import ChainEvent
from pot.protocol import types as T
from pot.roles.bridge import ops_from_events
from pot.roles.gateway import HttpGateway, LocalGateway


def test_local_and_http_gateways_agree():
    async def go():
        ledgers = [make_ledger() for _ in range(4)]
        clock = Clock(T0 + 1)
        replicas = [ApiClient(f"http://r{i}", transport=httpx.ASGITransport(app=create_app(LocalNode(lg, clock))))
                    for i, lg in enumerate(ledgers)]
        http = HttpGateway(CommitteeClient(replicas))
        local = LocalGateway(ledgers[0], clock)
        signed = commit()
        base = ledgers[0].seq
        assert (await http.submit(signed)).ok          # every replica is asked; f+1 = 2 accepting is enough
        deadline = asyncio.get_running_loop().time() + 10
        while any(lg.seq != base + 1 for lg in ledgers):  # the slower copies land too (no PBFT here)
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        for lg in ledgers:
            assert lg.apply(signed, T0 + 1).reason_enum is T.Reason.REPLAY
        assert [v.order.order_id for v in await http.fetch_orders()] == \
               [v.order.order_id for v in await local.fetch_orders()] == [2, 3, 1]
        assert await http.orders("active") == await local.orders("active")
        hc, lc = await http.cycle(1), await local.cycle(1)
        assert hc.claimers == lc.claimers == (MINER.address,) and hc.order == lc.order
        assert await http.cycle(42) is None and await local.cycle(42) is None
        assert await http.node_info(MINER.address) == await local.node_info(MINER.address)
        assert await http.validations(1) == await local.validations(1) == []
        assert await http.settlement(1) is None and await local.settlement(1) is None
        for lg in ledgers:
            assert lg.apply(T.Tick(), T0 + 100).ok
        hs, ls = await http.settlement(1), await local.settlement(1)
        assert hs == ls and hs.for_order(4).payouts[0].to == CLIENT.address
        await http.aclose()

    asyncio.run(go())


def _ev(contract, name, block, tx="0x" + "ab" * 32, **args):
    return ChainEvent(contract, name, args, "0x" + "00" * 20, block, tx, 0)


def test_bridge_translates_logs():
    a = "0x" + "aa" * 20
    state = {(a, 5): (T.MINER, 100, 0), (a, 6): (T.MINER | T.VALIDATOR, 150, 0), (a, 9): (T.MINER, 150, 99)}
    events = [
        _ev("StakeRegistry", "Registered", 5, staker=a, roles=1, amount=100, stake=100),
        _ev("StakeRegistry", "Registered", 6, staker=a, roles=3, amount=50, stake=150),
        _ev("StakeRegistry", "StakeAdded", 6, staker=a, amount=0, stake=150),  # same block: one op
        _ev("StakeRegistry", "UnregisterRequested", 9, staker=a, unbondingEnd=99),
        _ev("ChallengeManager", "ChallengeCommitted", 10, orderId=3, challenger=a, commitment=b"\x01" * 32, stake=5),
        _ev("ChallengeManager", "ChallengeRevealed", 11, orderId=3, challenger=a, vid=b"\x02" * 32),
        _ev("OrderBook", "OrderSettled", 12, tx="0x" + "cd" * 32, orderId=3, winner=a, winningMid=b"\0" * 32, total=1),
        _ev("OrderBook", "OrderSettled", 12, tx="0x" + "cd" * 32, orderId=4, winner=a, winningMid=b"\0" * 32, total=1),
        _ev("RewardMultisig", "SettlementExecuted", 12, tx="0x" + "cd" * 32, nonce=7, digest=b"\0" * 32,
            orders=2, slashes=0, verdicts=0),
        _ev("OrderBook", "TestDataReleased", 13, orderId=3, testCid="bafytest", t3=1234),
    ]
    ops = ops_from_events(events, lambda acct, block: state[(acct.lower(), block)])
    acct = ops[0].account
    assert ops[:3] == [T.StakeChanged(acct, T.MINER, 100), T.StakeChanged(acct, T.MINER | T.VALIDATOR, 150),
                       T.StakeChanged(acct, 0, 150)]  # leaving: no roles for new work
    assert ops[3] == T.ChallengeCommitted(3, acct, b"\x01" * 32, 5)
    assert ops[4] == T.ChallengeRevealed(3, acct, b"\x02" * 32)
    assert ops[5] == T.SettlementExecuted(7, (3, 4), bytes.fromhex("cd" * 32))
    assert ops[6] == T.TestDataReleased(3, "bafytest", 1234)
    assert len(ops) == 7
