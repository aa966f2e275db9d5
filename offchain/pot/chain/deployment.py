"""Deploying the PoT contracts and the deployment file everything else reads.

The contracts take each other's addresses as immutables (cheaper than a storage read on every
guarded call, and no initializer to front-run): ``deploy`` predicts the CREATE addresses from
the deployer's nonce, deploys in order, and checks every prediction.

Deployment file (JSON), one entry per chain id:
    {"31337": {"chain_id": 31337, "addresses": {"PoTToken": "0x..", ...}, "block": 1,
               "deployer": "0x..", "parameters": {...}}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import rlp
from eth_utils import keccak, to_bytes, to_checksum_address
from web3 import Web3

from pot.chain.compile import load_artifact
from pot.chain.sender import Sender

CONTRACTS = ("PoTToken", "StakeRegistry", "OrderBook", "ChallengeManager", "RewardMultisig")
DAY = 86_400
#: RewardMultisig.MAX_MEMBERS (the approvals field of a paper-path proposal is 128 bits)
MAX_MEMBERS = 128


@dataclass(frozen=True)
class DeployParams:
    """Deployment parameters (ARCHITECTURE.md §3); amounts in token wei (18 decimals)."""

    members: tuple[str, ...]
    threshold: int
    treasury: str
    min_stakes: tuple[int, int, int, int] = (100 * 10**18, 100 * 10**18, 100 * 10**18, 1_000 * 10**18)
    #: must stay above max_order_lifetime + settlement_grace (checked on-chain as well), so stake
    #: exposed to an order cannot leave before the settlement that may slash it
    unbonding_period: int = 14 * DAY
    min_reveal_duration: int = 600
    settlement_grace: int = 2 * DAY
    #: bound on trainDuration + validateDuration + challengeDuration + 4 * revealDuration
    max_order_lifetime: int = 10 * DAY
    challenge_stake: int = 50 * 10**18
    token_supply: int = 1_000_000_000 * 10**18

    def check(self) -> None:
        n = len(self.members)
        if n == 0 or n > MAX_MEMBERS:
            raise ValueError(f"committee must have 1..{MAX_MEMBERS} members, got {n}")
        if len({m.lower() for m in self.members}) != n:
            raise ValueError("committee members must be distinct")
        if not (0 < self.threshold <= n and 2 * self.threshold > n):
            raise ValueError(f"threshold {self.threshold} must be a majority of {n} members")
        if self.token_supply >= 2**96:
            raise ValueError("token supply must fit uint96")
        for v in (self.unbonding_period, self.min_reveal_duration, self.settlement_grace, self.max_order_lifetime):
            if v < 0:
                raise ValueError("durations must be >= 0")
        if self.max_order_lifetime + self.settlement_grace >= self.unbonding_period:
            raise ValueError(f"max_order_lifetime ({self.max_order_lifetime}) + settlement_grace "
                             f"({self.settlement_grace}) must be below unbonding_period ({self.unbonding_period}): "
                             "a staker could otherwise withdraw before the settlement that slashes it")
        if self.unbonding_period > 365 * DAY:
            raise ValueError("unbonding_period must be at most 365 days")
        if self.challenge_stake <= 0:
            raise ValueError("challenge_stake must be positive: a free challenge costs nothing to lose")


@dataclass
class Deployment:
    chain_id: int
    addresses: dict[str, str]
    block: int
    deployer: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.addresses["PoTToken"]

    @property
    def stake_registry(self) -> str:
        return self.addresses["StakeRegistry"]

    @property
    def order_book(self) -> str:
        return self.addresses["OrderBook"]

    @property
    def challenge_manager(self) -> str:
        return self.addresses["ChallengeManager"]

    @property
    def reward_multisig(self) -> str:
        return self.addresses["RewardMultisig"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Deployment:
        missing = [c for c in CONTRACTS if c not in d.get("addresses", {})]
        if missing:
            raise ValueError(f"deployment lacks addresses for {', '.join(missing)}")
        return cls(int(d["chain_id"]), {k: to_checksum_address(v) for k, v in d["addresses"].items()},
                   int(d["block"]), to_checksum_address(d["deployer"]), dict(d.get("parameters", {})))

    def save(self, path: str | Path) -> Path:
        """Write (or update) this chain's entry of the deployment file; other chains are kept."""
        path = Path(path)
        data: dict[str, Any] = {}
        if path.exists():
            data = json.loads(path.read_text())
        data[str(self.chain_id)] = self.to_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, chain_id: int | None = None) -> Deployment:
        """The entry for ``chain_id`` (or the only entry) of a deployment file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"deployment file {path} not found: run `pot contracts deploy`") from None
        if chain_id is None:
            if len(data) != 1:
                raise ValueError(f"{path} holds chains {sorted(data)}: say which chain id")
            return cls.from_json(next(iter(data.values())))
        if str(chain_id) not in data:
            raise ValueError(f"{path} has no deployment for chain id {chain_id} (has {sorted(data)})")
        return cls.from_json(data[str(chain_id)])


def create_address(deployer: str, nonce: int) -> str:
    return to_checksum_address(keccak(rlp.encode([to_bytes(hexstr=deployer), nonce]))[12:])


def _deploy_one(sender: Sender, name: str, args: list) -> tuple[str, Any]:
    art = load_artifact(name)
    data = Web3().eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(*args).data_in_transaction
    receipt = sender.send(None, data)
    return to_checksum_address(receipt["contractAddress"]), receipt


def deploy(w3: Web3, sender: Sender, params: DeployParams, *, token: str | None = None,
           token_holder: str | None = None) -> Deployment:
    """Deploy PoTToken (unless ``token`` is given: tests pass a hostile hook token), StakeRegistry,
    OrderBook, ChallengeManager and RewardMultisig; returns the Deployment."""
    params.check()
    sender.resync()
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    first = nonce
    if token is None:
        first += 1
    predicted = {name: create_address(sender.address, first + i)
                 for i, name in enumerate(("StakeRegistry", "OrderBook", "ChallengeManager", "RewardMultisig"))}
    multisig = predicted["RewardMultisig"]
    addresses: dict[str, str] = {}
    start_block = w3.eth.block_number + 1
    if token is None:
        addresses["PoTToken"], _ = _deploy_one(sender, "PoTToken",
                                               [token_holder or sender.address, params.token_supply])
    else:
        addresses["PoTToken"] = to_checksum_address(token)
    tok = addresses["PoTToken"]
    steps = [
        ("StakeRegistry", [tok, multisig, predicted["OrderBook"], list(params.min_stakes), params.unbonding_period]),
        ("OrderBook", [tok, multisig, predicted["StakeRegistry"], params.min_reveal_duration, params.settlement_grace,
                       params.max_order_lifetime]),
        ("ChallengeManager", [tok, predicted["OrderBook"], predicted["StakeRegistry"], multisig,
                              params.challenge_stake]),
        ("RewardMultisig", [predicted["OrderBook"], predicted["StakeRegistry"], predicted["ChallengeManager"],
                            [to_checksum_address(m) for m in params.members], params.threshold,
                            to_checksum_address(params.treasury)]),
    ]
    for name, args in steps:
        addr, _ = _deploy_one(sender, name, args)
        if addr != predicted[name]:
            raise RuntimeError(f"{name} landed at {addr}, expected {predicted[name]}: another transaction "
                               f"from {sender.address} interleaved; redeploy from an idle account")
        addresses[name] = addr
    p = asdict(params)
    p["members"] = [to_checksum_address(m) for m in params.members]
    return Deployment(w3.eth.chain_id, addresses, start_block, sender.address, p)
