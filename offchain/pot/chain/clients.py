"""Typed clients of the PoT contracts: thin wrappers that encode, send, and decode the events.

    c = Contracts(w3, deployment)
    res = c.orders.place_order(client_sender, OrderSpec(reward=..., ...))   # TxResult
    order_id = res.event("OrderPlaced")["orderId"]

Every transacting method takes the ``Sender`` of the account that acts first; reads take none.
Reverts raise ``ChainRevert`` carrying the contract's custom error name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from pot.chain.compile import load_artifact
from pot.chain.deployment import Deployment
from pot.chain.errors import decode_revert
from pot.chain.events import decode_logs
from pot.chain.sender import Sender, TxResult
from pot.protocol import eip712, ids
from pot.protocol.settlement import Action, Settlement  # noqa: F401  (Action: re-exported)

MINER, VALIDATOR, VERIFIER, AGGREGATOR = 1, 2, 4, 8


def model_type_bytes(name: str | bytes) -> bytes:
    """`modelType` as bytes32 (CONVENTIONS.md); a bytes32 passes through unchanged."""
    if isinstance(name, (bytes, bytearray)):
        if len(name) != 32:
            raise ValueError(f"modelType must be 32 bytes, got {len(name)}")
        return bytes(name)
    return ids.model_type_to_bytes(name)


# The commitments are protocol rules and live in pot.protocol.ids; these names are what dApp-facing
# code imported from here. (`test_commitment` is exported as `data_commitment` so that pytest does
# not collect it as a test when a test module imports it.)
data_commitment = ids.test_commitment
challenge_commitment = ids.challenge_commitment


@dataclass(frozen=True)
class OrderSpec:
    """What a client passes to placeOrder (amounts in token wei, durations in seconds)."""

    reward: int
    train_duration: int
    validate_duration: int
    challenge_duration: int
    reveal_duration: int
    model_type: str | bytes
    data_commitment: bytes
    spec_cid: str

    def as_abi(self) -> tuple:
        return (self.reward, self.train_duration, self.validate_duration, self.challenge_duration,
                self.reveal_duration, model_type_bytes(self.model_type), bytes(self.data_commitment),
                self.spec_cid)


def pack_signatures(sigs: list[bytes]) -> bytes:
    """Concatenate 65-byte signatures as executeSigned/executeAction expect (any order)."""
    for s in sigs:
        if len(s) != 65:
            raise ValueError(f"signature must be 65 bytes, got {len(s)}")
    return b"".join(sigs)


class _Client:
    NAME = ""

    def __init__(self, w3: Web3, address: str, names_by_address: dict[str, str]):
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(self.NAME)["abi"])
        self._names = names_by_address

    def encode(self, fn: str, *args) -> str:
        return self.contract.encode_abi(fn, args=list(args))

    def call(self, fn: str, *args) -> Any:
        try:
            return getattr(self.contract.functions, fn)(*args).call()
        except (ContractCustomError, ContractLogicError) as exc:
            raise decode_revert(exc) from None

    def transact(self, sender: Sender, fn: str, *args, gas: int | None = None) -> TxResult:
        receipt = sender.send(self.address, self.encode(fn, *args), gas=gas)
        return TxResult("0x" + bytes(receipt["transactionHash"]).hex(), receipt,
                        decode_logs(self.w3, receipt["logs"], self._names))


class TokenClient(_Client):
    NAME = "PoTToken"

    def balance_of(self, who: str) -> int:
        return self.call("balanceOf", to_checksum_address(who))

    def allowance(self, owner: str, spender: str) -> int:
        return self.call("allowance", to_checksum_address(owner), to_checksum_address(spender))

    def transfer(self, sender: Sender, to: str, amount: int) -> TxResult:
        return self.transact(sender, "transfer", to_checksum_address(to), amount)

    def approve(self, sender: Sender, spender: str, amount: int) -> TxResult:
        return self.transact(sender, "approve", to_checksum_address(spender), amount)

    def ensure_allowance(self, sender: Sender, spender: str, amount: int) -> None:
        if self.allowance(sender.address, spender) < amount:
            self.approve(sender, spender, amount)


class StakeRegistryClient(_Client):
    NAME = "StakeRegistry"

    def register(self, sender: Sender, roles: int, amount: int) -> TxResult:
        return self.transact(sender, "register", roles, amount)

    def add_stake(self, sender: Sender, amount: int) -> TxResult:
        return self.transact(sender, "addStake", amount)

    def request_unregister(self, sender: Sender) -> TxResult:
        return self.transact(sender, "requestUnregister")

    def withdraw(self, sender: Sender) -> TxResult:
        return self.transact(sender, "withdraw")

    def staker(self, who: str) -> dict[str, int]:
        stake, locked, roles, unbonding_end = self.call("stakerOf", to_checksum_address(who))
        return {"stake": stake, "locked": locked, "roles": roles, "unbonding_end": unbonding_end}

    def has_roles(self, who: str, roles: int) -> bool:
        return self.call("hasRoles", to_checksum_address(who), roles)

    def required_stake(self, roles: int) -> int:
        return self.call("requiredStake", roles)


class OrderBookClient(_Client):
    NAME = "OrderBook"

    def place_order(self, sender: Sender, spec: OrderSpec) -> TxResult:
        return self.transact(sender, "placeOrder", spec.as_abi())

    def release_test_data(self, sender: Sender, order_id: int, test_cid: str, salt: bytes) -> TxResult:
        return self.transact(sender, "releaseTestData", order_id, test_cid, salt)

    def reclaim(self, sender: Sender, order_id: int) -> TxResult:
        return self.transact(sender, "reclaim", order_id)

    def get_order(self, order_id: int) -> dict[str, Any]:
        o = self.call("getOrder", order_id)
        keys = ("client", "t0", "t3", "status", "reward", "train_duration", "validate_duration",
                "challenge_duration", "reveal_duration", "settlement_grace", "data_commitment")
        return dict(zip(keys, o))

    def windows(self, order_id: int) -> dict[str, int]:
        keys = ("train_end", "reveal_end", "release_end", "challenge_end", "challenge_reveal_end")
        return dict(zip(keys, self.call("windows", order_id)))

    def order_count(self) -> int:
        return self.call("orderCount")


class ChallengeManagerClient(_Client):
    NAME = "ChallengeManager"

    def commit_challenge(self, sender: Sender, order_id: int, commitment: bytes) -> TxResult:
        return self.transact(sender, "commitChallenge", order_id, commitment)

    def reveal_challenge(self, sender: Sender, order_id: int, vid: bytes, salt: bytes) -> TxResult:
        return self.transact(sender, "revealChallenge", order_id, vid, salt)

    def reclaim_stake(self, sender: Sender, order_id: int) -> TxResult:
        return self.transact(sender, "reclaimStake", order_id)

    def get_challenge(self, order_id: int, challenger: str) -> dict[str, Any]:
        stake, status, commitment, vid = self.call("getChallenge", order_id, to_checksum_address(challenger))
        return {"stake": stake, "status": status, "commitment": commitment, "vid": vid}


class RewardMultisigClient(_Client):
    NAME = "RewardMultisig"

    @property
    def domain(self) -> eip712.Domain:
        return eip712.Domain.multisig(self.w3.eth.chain_id, self.address)

    def propose_reward(self, sender: Sender, batch: Settlement, gas: int | None = None) -> TxResult:
        return self.transact(sender, "proposeReward", batch.as_abi(), gas=gas)

    def proposal_id(self, batch: Settlement) -> int:
        return self.call("proposalId", batch.as_abi())

    def proposal_state(self, proposal_id: int) -> tuple[int, bool]:
        approvals, exists = self.call("proposalState", proposal_id)
        return int(approvals), bool(exists)

    def epoch(self) -> int:
        return self.call("epoch")

    def action_nonce_used(self, nonce: int) -> bool:
        return self.call("actionNonceUsed", nonce)

    def confirm_reward(self, sender: Sender, proposal_id: int, gas: int | None = None) -> TxResult:
        return self.transact(sender, "confirmReward", proposal_id, gas=gas)

    def execute_reward(self, sender: Sender, proposal_id: int, batch: Settlement) -> TxResult:
        return self.transact(sender, "executeReward", proposal_id, batch.as_abi())

    def execute_signed(self, sender: Sender, batch: Settlement, signatures: bytes | list[bytes]) -> TxResult:
        sigs = pack_signatures(signatures) if isinstance(signatures, list) else signatures
        return self.transact(sender, "executeSigned", batch.as_abi(), sigs)

    def execute_action(self, sender: Sender, action: Action, signatures: bytes | list[bytes]) -> TxResult:
        sigs = pack_signatures(signatures) if isinstance(signatures, list) else signatures
        return self.transact(sender, "executeAction", action.as_abi(), sigs)

    def sign_settlement(self, batch: Settlement, keys: list) -> list[bytes]:
        d = self.domain
        return [batch.sign(d, k) for k in keys]

    def settlement_digest(self, batch: Settlement) -> bytes:
        return bytes(self.call("settlementDigest", batch.as_abi()))

    def nonce_used(self, nonce: int) -> bool:
        return self.call("nonceUsed", nonce)

    def members(self) -> list[str]:
        return list(self.call("members"))

    def threshold(self) -> int:
        return self.call("threshold")


class Contracts:
    """Clients of one deployment: token, stakes, orders, challenges, multisig."""

    def __init__(self, w3: Web3, deployment: Deployment):
        self.w3 = w3
        self.deployment = deployment
        names = {addr: name for name, addr in deployment.addresses.items()}
        # A test deployment with a foreign token still decodes its Transfer events as ERC-20.
        self.token = TokenClient(w3, deployment.token, names)
        self.stakes = StakeRegistryClient(w3, deployment.stake_registry, names)
        self.orders = OrderBookClient(w3, deployment.order_book, names)
        self.challenges = ChallengeManagerClient(w3, deployment.challenge_manager, names)
        self.multisig = RewardMultisigClient(w3, deployment.reward_multisig, names)
