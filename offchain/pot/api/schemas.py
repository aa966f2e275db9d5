"""The HTTP API's response shapes, for the OpenAPI document at ``/openapi.json`` (and ``/docs``).

The routes render their bodies themselves (``views``: canonical bytes that BFT reads compare), so
these models document the bodies and do not produce them; ``tests/api/test_explorer_api.py``
validates real answers against them so that the two cannot drift apart. Token amounts are
integers in token wei (18 decimals) and may exceed 2**53: read them as big integers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Address = str
Hex = str


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(_Doc):
    error: str = Field(description="not-found, bad-request, unavailable, ...")
    detail: str


class SubmitResult(_Doc):
    ok: bool
    reason: str = Field(description="the ledger's Reason name (OK, REPLAY, WRONG_WINDOW, ...)")
    code: int = Field(description="the Reason's wire code")
    text: str
    digest: Hex | None = Field(None, description="EIP-712 digest of the submitted message")


class OrderJson(_Doc):
    type: str = "Order"
    orderId: int
    client: Address
    reward: int
    t0: int = Field(description="block time of placeOrder (seconds)")
    trainDuration: int
    revealDuration: int
    validateDuration: int
    challengeDuration: int
    modelType: Hex
    specCid: str
    testCommitment: Hex


class Timeline(_Doc):
    """The order's windows (CONVENTIONS.md); the ones after the test release are null until it came."""
    t0: int
    train_end: int
    reveal_end: int
    release_end: int
    t3: int | None
    validate_end: int | None
    validation_reveal_end: int | None
    challenge_end: int | None
    challenge_reveal_end: int | None


class OrderSummary(_Doc):
    order: OrderJson
    status: str = Field(description="open, verifying, settling, settled or skipped")
    cancelled: bool
    t3: int | None
    testCid: str | None
    phase: str
    rewardPerSecond: float
    timeline: Timeline
    phaseEnd: int | None = Field(description="ledger time the current phase ends (null in finalization)")
    claims: int
    models: int = Field(description="revealed models")
    validations: int = Field(description="revealed validations")
    challenges: int
    nonce: int | None = Field(description="the settlement that settles the order, once built")
    winner: Address | None


class OrderList(_Doc):
    time: int = Field(description="ledger time (seconds)")
    seq: int = Field(description="ledger sequence number the answer was read at")
    orders: list[OrderSummary]
    nextCursor: int | None = Field(description="pass as cursor= for the next page; null on the last")
    total: int = Field(description="orders that pass the filters, over all pages")


class Claim(_Doc):
    miner: Address
    commitment: Hex
    seq: int
    signature: Hex = Field(description="the miner's EIP-712 signature of its ClaimCommit")


class ValidationRecord(_Doc):
    validator: Address
    mid: Hex
    score: int = Field(description="parts per million")
    salt: Hex
    vStake: int
    seq: int
    signature: Hex = Field(description="the validator's EIP-712 signature of its ValidationReveal")


class ModelRecord(_Doc):
    mid: Hex
    miner: Address
    modelCid: str
    salt: Hex = Field(description="the reveal's salt: anyone can check keccak256(abi.encode(orderId, miner, mid, "
                                  "salt)) against the miner's claim commitment")
    seq: int
    signature: Hex = Field(description="the miner's EIP-712 signature of its ClaimReveal")
    validations: list[ValidationRecord]
    verifiedScore: int | None = Field(description="PoT.Verify's result (2f+1 replicas), when it ran")


class ChallengeRecord(_Doc):
    challenger: Address
    commitment: Hex
    cStake: int
    vid: Hex | None
    seq: int


class OrderCycle(_Doc):
    """The paper's order cycle data ⟨order, phase, mList⟩."""
    time: int
    seq: int
    order: OrderJson
    phase: str
    status: str
    cancelled: bool
    t3: int | None
    testCid: str | None
    timeline: Timeline
    claims: list[Claim]
    models: list[ModelRecord]
    challenges: list[ChallengeRecord]
    pendingVerification: list[Hex]
    excluded: list[Hex]
    nonce: int | None


class ValidationReveal(BaseModel):
    type: str = "ValidationReveal"
    model_config = ConfigDict(extra="allow")


class ValidationList(_Doc):
    orderId: int
    validations: list[ValidationReveal]


class ModelLink(_Doc):
    mid: Hex
    cid: str


class NodeInfo(_Doc):
    address: Address
    roles: int = Field(description="bitmask: MINER=1, VALIDATOR=2, VERIFIER=4, AGGREGATOR=8")
    stake: int
    locked: int = Field(description="vStake at risk until the settlements of the orders it validated")


class Payout(_Doc):
    to: Address
    amount: int


class OrderSettlement(_Doc):
    orderId: int
    winner: Address
    winningMid: Hex
    perMember: int = Field(description="committee tax paid to each member")
    payouts: list[Payout]


class Slash(_Doc):
    orderId: int
    staker: Address
    amount: int = Field(description="at most this much: a slash takes what is there")
    to: Address


class Verdict(_Doc):
    orderId: int
    challenger: Address
    upheld: bool
    validator: Address


class SettlementBatch(_Doc):
    nonce: int
    epoch: int
    deadline: int
    members: list[Address]
    orders: list[OrderSettlement]
    slashes: list[Slash]
    verdicts: list[Verdict]


class SettlementDoc(_Doc):
    nonce: int
    settlement: SettlementBatch
    digest: Hex = Field(description="EIP-712 digest the committee signs")
    orderIds: list[int]
    executed: bool
    txHash: Hex | None
    signers: list[Address] = Field(description="members who signed, by address ascending")
    signatures: list[Hex] = Field(description="their EIP-712 signatures, in the order of signers")


class PendingSettlement(_Doc):
    nonce: int
    settlement: SettlementBatch
    digest: Hex
    orderIds: list[int]
    signers: list[Address]
    signatures: list[Hex]
    ready: bool = Field(description="threshold signatures are in")


class PendingList(_Doc):
    settlements: list[PendingSettlement]


class Health(_Doc):
    status: str
    seq: int
    time: int


class Info(BaseModel):
    """This replica's facts; an aggregator adds its PBFT state (primary, pbftDigest, ...)."""
    model_config = ConfigDict(extra="allow")
    replicaId: int | None
    view: int
    lastExecuted: int
    ledgerDigest: Hex
    ledgerSeq: int
    ledgerTime: int
    chainId: int
    orderBook: Address
    rewardMultisig: Address
    committee: list[Address]
    threshold: int


# --- the explorer's reads --------------------------------------------------------------------

class PaidTo(_Doc):
    to: Address
    amount: int
    roles: list[str] = Field(description="what the address was in the order: winner, client, miner, "
                                         "validator, challenger, committee")


class DeploymentDoc(_Doc):
    chain_id: int
    addresses: dict[str, Address]
    block: int
    deployer: Address
    parameters: dict[str, Any]


class ModelScore(_Doc):
    mid: Hex
    miner: Address
    score: int | None


class OrderOutcome(_Doc):
    orderId: int
    status: str
    cancelled: bool
    reward: int
    nonce: int | None
    executed: bool
    applied: bool | None = Field(None, description="the contract applied the order (false: skipped)")
    txHash: Hex | None
    winner: Address | None
    winningMid: Hex | None
    winningScore: int | None = Field(description="the winner's standing score (ppm)")
    perMember: int
    members: int
    paid: list[PaidTo] = Field(description="what the order pays by address, committee tax included")
    slashes: list[Slash]
    verdicts: list[Verdict]
    scores: list[ModelScore] = Field(description="every revealed model's standing score (ppm), once settled")
    batchOrders: int = Field(description="orders in the same settlement")


class SettlementSummary(_Doc):
    nonce: int
    orderIds: list[int]
    executed: bool
    txHash: Hex | None
    digest: Hex
    epoch: int
    deadline: int
    signatures: int
    threshold: int
    paid: list[Payout] = Field(description="by address over all the batch's orders, tax included")
    total: int
    slashes: list[Slash]
    verdicts: list[Verdict]
    skipped: list[int] = Field(description="orders the contract skipped (their client reclaimed first)")


class SettlementList(_Doc):
    time: int
    seq: int
    settlements: list[SettlementSummary]
    nextCursor: int | None
    total: int


class Receipt(_Doc):
    """The settlement transaction as this aggregator's chain node reports it (not ledger state)."""
    nonce: int
    txHash: Hex
    status: int = Field(description="1 success, 0 reverted")
    gasUsed: int
    effectiveGasPrice: int | None
    blockNumber: int
    blockTime: int | None
    sender: Address | None = Field(description="the member that submitted it")
    orders: int
    gasPerOrder: int


class AccountNode(_Doc):
    roles: int
    roleNames: list[str]
    stake: int
    locked: int


class AccountOrder(_Doc):
    orderId: int
    roles: list[str]
    status: str
    cancelled: bool
    phase: str
    reward: int


class Earning(_Doc):
    orderId: int
    nonce: int | None
    amount: int
    source: str = Field(description="payout (the order's reward) or slash (a slashed stake)")
    executed: bool
    applied: bool


class AccountSlash(_Doc):
    orderId: int
    staker: Address
    amount: int
    to: Address
    nonce: int | None
    executed: bool


class Account(_Doc):
    time: int
    seq: int
    address: Address
    node: AccountNode | None = Field(description="stake and roles; null: never staked")
    member: bool = Field(description="a committee member")
    earned: int = Field(description="paid by executed settlements")
    pending: int = Field(description="owed by settlements not executed yet")
    slashed: int
    orderCount: int
    orders: list[AccountOrder]
    earnings: list[Earning]
    slashes: list[AccountSlash]


class MemberStatus(_Doc):
    url: str
    ok: bool
    error: str | None = None
    latencyMs: int | None = None
    replicaId: int | None = None
    address: Address | None = None
    view: int | None = None
    primary: int | None = None
    lastExecuted: int | None = None
    ledgerSeq: int | None = None
    ledgerDigest: Hex | None = None
    ledgerTime: int | None = None
    self_: bool = Field(False, alias="self", description="the replica that answered this request")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Committee(_Doc):
    members: list[MemberStatus]
    committee: list[Address] = Field(description="the ledger's committee (RewardMultisig members)")
    threshold: int
    answering: int
    views: list[int] = Field(description="the distinct views the members report")
    digestsAgree: bool = Field(description="members at the same ledger sequence have the same digest")
    behind: list[str] = Field(description="URLs of members more than a few ops behind the highest")


class EpochMember(_Doc):
    account: Address
    publicKey: Hex | None = Field(description="compressed secp256k1 key (its PBFT key); null without PBFT")
    endpoint: str | None = Field(description="PBFT host:port; null without PBFT")
    apiUrl: str | None = Field(description="the member's public API URL; null where unknown")


class CommitteeDoc(_Doc):
    epoch: int = Field(description="the committee's epoch: a client follows a newer one f+1 replicas report alike")
    threshold: int
    n: int
    f: int
    members: list[EpochMember] = Field(description="PBFT order: replica i is members[i]")


class EpochChange(_Doc):
    digest: Hex = Field(description="EIP-712 digest of the change's on-chain Action (its identity)")
    status: str = Field(description="voting | decided | confirmed | void")
    kind: str = Field(description="add | remove | replace | resize")
    epoch: int = Field(description="the epoch it moves the committee out of")
    removed: list[Address]
    added: list[dict[str, Any]] = Field(description="account, publicKey, endpoint, apiUrl of each joining member")
    threshold: int = Field(description="k of the new committee")
    deadline: int = Field(description="latest block time the change may execute on chain")
    votes: int
    needed: int = Field(description="votes that decide it: k of the current committee")
    voters: list[Address]
    decidedSeq: int | None = Field(description="ledger sequence number of the deciding vote")
    next: dict[str, Any] | None = Field(description="the committee it leads to")


class Epoch(_Doc):
    epoch: int = Field(description="RewardMultisig.epoch() while this committee signs")
    threshold: int
    n: int
    f: int
    members: list[EpochMember] = Field(description="PBFT order: replica i is members[i]")
    settlingPaused: bool = Field(description="a change is decided: no new settlement until it executes or "
                                             "its deadline passes")
    changes: list[EpochChange]
    pending: dict[str, Any] | None = Field(description="the confirmed next committee, switched to at the next "
                                                       "PBFT checkpoint")
    boundary: int | None = Field(None, description="the PBFT sequence number of the switch, once known")
    ledgerTime: int
    ledgerSeq: int


class ArchivePage(_Doc):
    kind: str = Field(description="orders or settlements")
    rows: list[tuple[int, Hex]] = Field(description="[id, archive blob] in id order: the order's (or settlement's) "
                                                    "rows, zlib-compressed, as the ledger digest hashes them")
