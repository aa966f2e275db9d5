"""A deployed PoT system for tests (shared by tests/conftest.py and tests that build a second one)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PotSystem:
    """A deployed system plus the keys that drive it (committee of 4, k = 3)."""

    node: object
    w3: object
    deployment: object
    c: object  # pot.chain.clients.Contracts
    deployer: object  # Sender (holds the whole token supply)
    members: list  # LocalAccounts of the committee
    users: list  # Senders of funded user accounts (dev keys 1..)
    treasury: str
    params: object
    nonce: list = field(default_factory=lambda: [0])

    def next_nonce(self) -> int:
        self.nonce[0] += 1
        return self.nonce[0]

    def resync(self) -> None:
        for s in [self.deployer, *self.users]:
            s.resync()


def make_system(node, token: str | None = None, n_members: int = 4, k: int = 3):
    from eth_account import Account
    from eth_utils import keccak

    from pot.chain.anvil import DEV_KEYS
    from pot.chain.clients import Contracts
    from pot.chain.deployment import DeployParams, deploy
    from pot.chain.sender import Sender

    w3 = node.w3()
    deployer = Sender(w3, DEV_KEYS[0])
    members = [Account.from_key(keccak(text=f"test-member-{i}")) for i in range(n_members)]
    treasury = Account.from_key(keccak(text="test-treasury")).address
    params = DeployParams(members=tuple(m.address for m in members), threshold=k, treasury=treasury,
                          min_stakes=(100, 100, 100, 1000), unbonding_period=2000, min_reveal_duration=10,
                          settlement_grace=500, max_order_lifetime=1000, challenge_stake=40)
    d = deploy(w3, deployer, params, token=token)
    users = [Sender(w3, key) for key in DEV_KEYS[1:8]]
    c = Contracts(w3, d)
    if token is None:
        for u in users:
            c.token.transfer(deployer, u.address, 10**24)
    return PotSystem(node, w3, d, c, deployer, members, users, treasury, params)
