"""A real Anvil with freshly deployed contracts, an in-process ledger fed by the chain bridge,
one embedded store, and helpers to build workers and move time (chain and ledger together)."""

from __future__ import annotations

import time

import pytest

from pot.chain.anvil import Anvil
from pot.chain.clients import Contracts
from pot.chain.deployment import DeployParams, deploy
from pot.chain.sender import Sender
from pot.ledger import Ledger, LedgerConfig
from pot.protocol import types as T
from pot.protocol.finalize import Params
from pot.roles.base import ChainAccess, OffsetClock
from pot.roles.bridge import ChainBridge
from pot.roles.config import ClientConfig, MinerConfig, ValidatorConfig, VerifierConfig
from pot.roles.gateway import LocalGateway
from pot.storage import EmbeddedStore

from roles_support import ACCOUNTS, C_STAKE, MIN_STAKE, TOKEN  # noqa: F401


@pytest.fixture(scope="session")
def anvil():
    with Anvil() as node:
        yield node


class Net:
    def __init__(self, anvil: Anvil, tmp_path) -> None:
        self.anvil = anvil
        self.w3 = anvil.w3()
        self.tmp = tmp_path
        deployer = Sender(self.w3, ACCOUNTS["deployer"])
        params = DeployParams(members=(ACCOUNTS["member"].address,), threshold=1,
                              treasury=ACCOUNTS["treasury"].address,
                              min_stakes=(MIN_STAKE, MIN_STAKE, MIN_STAKE, MIN_STAKE), unbonding_period=7200, max_order_lifetime=1800,
                              min_reveal_duration=10, settlement_grace=3600, challenge_stake=C_STAKE)
        self.deployment = deploy(self.w3, deployer, params)
        self.contracts = Contracts(self.w3, self.deployment)
        for name in ("client", "miner_a", "miner_b", "validator", "liar", "verifier"):
            self.contracts.token.transfer(deployer, ACCOUNTS[name].address, 1_000 * TOKEN)
        self.bridge = ChainBridge(self.w3, self.deployment)
        # ledger time follows the chain: sync the clock to the head block now, then move both
        self.clock = OffsetClock(self.head_time() - int(time.time()))
        ledger_params = Params(min_stake={T.MINER: MIN_STAKE, T.VALIDATOR: MIN_STAKE, T.VERIFIER: MIN_STAKE,
                                          T.AGGREGATOR: MIN_STAKE},
                               treasury=ACCOUNTS["treasury"].address, min_reveal_duration=10)
        self.ledger = Ledger(LedgerConfig(self.deployment.chain_id, self.deployment.order_book,
                                          self.deployment.reward_multisig, (ACCOUNTS["member"].address,),
                                          ledger_params))
        self.gateway = LocalGateway(self.ledger, self.clock)
        self.store = EmbeddedStore(tmp_path / "store")
        self.domain = self.ledger.config.message_domain
        self.events: list = []
        self.rejected_ops: list = []

    def head_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def pump(self) -> list:
        """Chain logs -> ledger ops, as the committee's primary would propose them.

        Anvil gives every automined block a timestamp above the last one, so a burst of
        transactions runs the chain ahead of the wall clock; ledger time follows the chain
        head here, as it would on a real chain where block time never leads the committee."""
        self.clock.offset = max(self.clock.offset, self.head_time() - int(time.time()))
        applied = []
        for op in self.bridge.poll():
            res = self.gateway.apply(op)
            if not res.ok:
                self.rejected_ops.append((op, res))
            applied.append((op, res))
        return applied

    def advance_to(self, t: int) -> None:
        """Move chain time and ledger time to ``t`` (never backwards)."""
        head = self.head_time()
        target = max(t, head + 1)
        self.anvil.set_next_timestamp(target)
        self.anvil.mine()
        self.clock.offset = target - int(time.time())
        self.pump()

    def worker(self, cls, name: str, config=None, **kw):
        account = ACCOUNTS[name]
        chain = ChainAccess(self.w3, self.deployment, account)
        cfg_cls = {"Miner": MinerConfig, "Validator": ValidatorConfig, "Verifier": VerifierConfig,
                   "Client": ClientConfig}[cls.__name__]
        config = config or cfg_cls()
        config.state_dir = str(self.tmp / name)
        return cls(config, account=account, gateway=self.gateway, domain=self.domain, store=self.store,
                   chain=chain, clock=self.clock, on_event=self.events.append, **kw)

    async def step(self, *workers) -> list:
        out = []
        for w in workers:
            out += await w.step()
            self.pump()
        return out


@pytest.fixture
def net(anvil, tmp_path):
    return Net(anvil, tmp_path)
