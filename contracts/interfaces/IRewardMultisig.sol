// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Settlement, Action} from "./ISettlement.sol";

/// @title The aggregator committee's k-of-n multisig: the only path that settles orders.
interface IRewardMultisig {
    error NotMember(address account);
    error AlreadyMember(address account);
    error TooManyMembers(uint256 count, uint256 max);
    error InvalidThreshold(uint256 threshold, uint256 members);
    error NonceUsed(uint256 nonce);
    error AlreadyProposed(uint256 id);
    error UnknownProposal(uint256 id);
    error AlreadyConfirmed(uint256 id, address member);
    error StaleProposal(uint256 id);
    error BatchMismatch(uint256 id);
    error NotEnoughApprovals(uint256 approvals, uint256 threshold);
    error BadSignatureLength(uint256 length);
    error DuplicateSigner(address signer);
    error OnlySelf(address caller);
    error BadTarget(address target);
    error ActionFailed(bytes reason);
    error ZeroAddress();
    error BadMember(address account);
    error WrongEpoch(uint256 epoch, uint256 current);
    error Expired(uint256 deadline, uint64 now_);

    /// @notice A member proposed a batch; the batch itself is in the calldata.
    /// @param id the proposal id: the upper 96 bits of the batch digest
    /// @param proposer the member
    /// @param digest the batch's EIP-712 digest
    event RewardProposed(uint256 indexed id, address indexed proposer, bytes32 digest);
    /// @notice A member approved a proposal. Anonymous with one topic, `id << 160 | member`, no
    ///         data: it keeps confirmReward under 30k gas (two topics cost 375 more). It is this
    ///         contract's only anonymous event, so a one-topic log from it is this one.
    /// @param idAndMember proposal id (upper 96 bits) and approving member (lower 160 bits)
    event RewardConfirmed(uint256 indexed idAndMember) anonymous;
    /// @notice A settlement batch executed (orders, slashes and verdicts that could not apply were
    ///         skipped with OrderSkipped, SlashSkipped or VerdictSkipped).
    /// @param nonce the batch nonce
    /// @param digest its EIP-712 digest
    /// @param orders orders settled (skipped ones not counted)
    /// @param slashes slashes applied
    /// @param verdicts challenges resolved
    event SettlementExecuted(uint256 indexed nonce, bytes32 digest, uint256 orders, uint256 slashes, uint256 verdicts);
    /// @notice A governance action executed.
    /// @param nonce the action nonce
    /// @param target the called contract
    /// @param selector the called function
    event ActionExecuted(uint256 indexed nonce, address indexed target, bytes4 selector);
    /// @notice The membership changed: batches and actions of older epochs no longer execute.
    /// @param epoch the new epoch
    event EpochChanged(uint256 epoch);
    /// @notice `member` joined the committee.
    /// @param member the account
    event MemberAdded(address indexed member);
    /// @notice `member` left the committee.
    /// @param member the account
    event MemberRemoved(address indexed member);
    /// @notice The approval threshold changed.
    /// @param threshold k
    event ThresholdChanged(uint256 threshold);
    /// @notice The treasury changed.
    /// @param treasury the new treasury
    event TreasuryChanged(address indexed treasury);
    /// @notice A protocol parameter the off-chain ledger reads changed (taxBps, validatorBps, ...).
    /// @param key parameter name as bytes32
    /// @param value new value
    event ParamChanged(bytes32 indexed key, uint256 value);

    /// @notice Paper path, step 1: a member proposes a batch of the current epoch before its
    ///         deadline; only digest bits are stored. Any number of batches may be proposed for one
    ///         nonce; at most one executes.
    /// @param batch the settlement batch
    /// @return id the proposal id: the upper 96 bits of the batch's EIP-712 digest
    function proposeReward(Settlement calldata batch) external returns (uint256 id);
    /// @notice Paper path, step 2: a member approves proposal `id`. Since the id is derived from
    ///         the digest, a member confirms the id of the batch its own ledger computed and so
    ///         approves that batch only.
    /// @param id the proposal id (proposalId(batch))
    function confirmReward(uint256 id) external;
    /// @notice Paper path, step 3: anyone executes proposal `id` once k members confirmed it.
    /// @param id the proposal id
    /// @param batch the proposed batch (checked against the stored digest)
    function executeReward(uint256 id, Settlement calldata batch) external;
    /// @notice One-transaction path: execute `batch` (current epoch, deadline not passed) with k
    ///         EIP-712 signatures of distinct members.
    /// @param batch the settlement batch
    /// @param signatures concatenated 65-byte r||s||v signatures over settlementDigest(batch)
    function executeSigned(Settlement calldata batch, bytes calldata signatures) external;
    /// @notice Execute a governance call with k EIP-712 signatures (parameters, membership, locks).
    /// @param action nonce, target (this or a PoT contract), calldata
    /// @param signatures concatenated 65-byte signatures over actionDigest(action)
    function executeAction(Action calldata action, bytes calldata signatures) external;

    /// @notice Add a member (only through executeAction).
    /// @param member the account
    function addMember(address member) external;
    /// @notice Remove a member (only through executeAction).
    /// @param member the account
    function removeMember(address member) external;
    /// @notice Change k (only through executeAction).
    /// @param threshold new k, a majority of the members
    function setThreshold(uint256 threshold) external;
    /// @notice One committee change as one epoch (only through executeAction): remove, then add,
    ///         then set k. The old epoch's k members sign it, so a replacement, a key rotation or a
    ///         resize never passes through an intermediate committee nobody decided on, and the
    ///         epoch grows by exactly one.
    /// @param removed members leaving (a rotated key's old account is removed, its new one added)
    /// @param added accounts joining
    /// @param threshold k of the new committee, a majority of it
    function changeMembers(address[] calldata removed, address[] calldata added, uint256 threshold) external;
    /// @notice Change the treasury (only through executeAction).
    /// @param treasury the new treasury
    function setTreasury(address treasury) external;
    /// @notice Set a protocol parameter for the off-chain ledger (only through executeAction).
    /// @param key parameter name
    /// @param value new value
    function setParam(bytes32 key, uint256 value) external;

    /// @notice The EIP-712 digest members sign for `batch`.
    /// @param batch the settlement batch
    /// @return the digest
    function settlementDigest(Settlement calldata batch) external view returns (bytes32);
    /// @notice The EIP-712 struct hash of `batch` (without the domain).
    /// @param batch the settlement batch
    /// @return the struct hash
    function hashSettlement(Settlement calldata batch) external pure returns (bytes32);
    /// @notice The EIP-712 digest members sign for `action`.
    /// @param action the governance action
    /// @return the digest
    function actionDigest(Action calldata action) external view returns (bytes32);
    /// @notice Whether settlement `nonce` executed.
    /// @param nonce the nonce
    /// @return true when used
    function nonceUsed(uint256 nonce) external view returns (bool);
    /// @notice Whether governance action `nonce` executed.
    /// @param nonce the nonce
    /// @return true when used
    function actionNonceUsed(uint256 nonce) external view returns (bool);
    /// @notice The paper path's proposal id of `batch`: the upper 96 bits of its digest.
    /// @param batch the settlement batch
    /// @return the id
    function proposalId(Settlement calldata batch) external view returns (uint256);
    /// @notice The membership epoch batches and actions must name.
    /// @return the epoch
    function epoch() external view returns (uint32);
    /// @notice Current members.
    /// @return the member list
    function members() external view returns (address[] memory);
    /// @notice Whether `account` is a member.
    /// @param account the account
    /// @return true when a member
    function isMember(address account) external view returns (bool);
    /// @notice Number of approvals of proposal `id`, and whether it exists.
    /// @param id the proposal id
    /// @return approvals number of confirmations
    /// @return exists whether the proposal is pending
    function proposalState(uint256 id) external view returns (uint256 approvals, bool exists);
}
