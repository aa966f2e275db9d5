// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IRewardMultisig} from "./interfaces/IRewardMultisig.sol";
import {IOrderBook} from "./interfaces/IOrderBook.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {IChallengeManager} from "./interfaces/IChallengeManager.sol";
import {Settlement, OrderSettlement, Slash, ChallengeVerdict, Action} from "./interfaces/ISettlement.sol";
import {SettlementHash} from "./libraries/SettlementHash.sol";

/// @title RewardMultisig
/// @notice The aggregator committee: n members, threshold k. Guarantees: a settlement batch moves
///         escrow, stake or challenge stake only after k distinct members approved exactly that
///         batch (k EIP-712 signatures in one transaction, or the paper's propose / k confirms /
///         execute, where the proposal id is derived from the batch digest, so a confirmation
///         approves one batch and no id can be squatted); each settlement nonce executes at most
///         once, and governance actions have their own nonces; every signature and proposal is
///         bound to this contract, this chain, the membership epoch and a deadline, so nothing
///         signed before a membership change or long ago can execute. One order, slash or
///         verdict that can no longer apply is skipped with an event; the rest of the batch
///         applies. Membership, threshold, treasury and every PoT parameter change only under the
///         same threshold (executeAction). This contract never holds tokens.
contract RewardMultisig is IRewardMultisig, EIP712, ReentrancyGuardTransient {
    /// @notice Largest committee: approvals of a paper-path proposal are a 128-bit field.
    uint256 public constant MAX_MEMBERS = 128;

    uint256 internal constant APPROVALS_MASK = (1 << 128) - 1;

    IOrderBook public immutable orderBook;
    IStakeRegistry public immutable stakeRegistry;
    IChallengeManager public immutable challengeManager;

    // One slot: what every execution reads.
    address public treasury;
    uint8 public threshold;
    /// @notice Membership epoch: 1 after deployment, bumped on every membership change. A batch or
    ///         action names the epoch it was signed in and executes only in that epoch.
    uint32 public epoch;

    address[] internal _members;
    /// @dev member => index in _members + 1 (0: not a member)
    mapping(address => uint256) internal _memberPos;
    /// @dev settlement nonce >> 8 => bitmap; consecutive nonces share a slot, so marking one used
    ///      is mostly a nonzero-to-nonzero write.
    mapping(uint256 => uint256) internal _usedNonces;
    /// @dev action nonce >> 8 => bitmap: a space of its own, so governance cannot burn a
    ///      settlement nonce (or the reverse).
    mapping(uint256 => uint256) internal _usedActionNonces;
    /// @dev proposal id (the digest's upper 96 bits) => digest bits [159:64] << 160 | epoch << 128
    ///      | approvals. One slot per proposal keeps proposeReward to one fresh SSTORE and
    ///      confirmReward to a warm nonzero-to-nonzero write. The epoch is never 0, so a stored
    ///      proposal is never 0.
    mapping(uint256 => uint256) internal _proposals;
    /// @notice Protocol parameters the off-chain ledger reads (taxBps, validatorBps, ...).
    mapping(bytes32 => uint256) public params;

    modifier onlySelf() {
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        _;
    }

    /// @param orderBook_ the OrderBook
    /// @param stakeRegistry_ the StakeRegistry
    /// @param challengeManager_ the ChallengeManager
    /// @param members_ initial committee, distinct, at most MAX_MEMBERS
    /// @param threshold_ k, a majority of members_
    /// @param treasury_ receives the treasury's share of rejected challenge stakes
    constructor(
        IOrderBook orderBook_,
        IStakeRegistry stakeRegistry_,
        IChallengeManager challengeManager_,
        address[] memory members_,
        uint256 threshold_,
        address treasury_
    ) EIP712("PoT RewardMultisig", "1") {
        if (
            address(orderBook_) == address(0) || address(stakeRegistry_) == address(0)
                || address(challengeManager_) == address(0) || treasury_ == address(0)
        ) revert ZeroAddress();
        orderBook = orderBook_;
        stakeRegistry = stakeRegistry_;
        challengeManager = challengeManager_;
        treasury = treasury_;
        for (uint256 i; i < members_.length; ++i) {
            _addMember(members_[i]);
        }
        _setThreshold(threshold_);
        epoch = 1;
    }

    // ---------------------------------------------------------------- the paper's path

    /// @inheritdoc IRewardMultisig
    function proposeReward(Settlement calldata batch) external returns (uint256 id) {
        if (_memberPos[msg.sender] == 0) revert NotMember(msg.sender);
        uint32 e = epoch;
        _checkFresh(batch.epoch, batch.deadline, e);
        bytes32 digest = _hashTypedDataV4(SettlementHash.hash(batch));
        id = uint256(digest) >> 160;
        // The same batch proposed twice (members racing) is refused: confirm the existing one.
        if (_proposals[id] != 0) revert AlreadyProposed(id);
        _proposals[id] = (((uint256(digest) >> 64) & ((1 << 96) - 1)) << 160) | (uint256(e) << 128);
        emit RewardProposed(id, msg.sender, digest);
    }

    /// @inheritdoc IRewardMultisig
    /// @dev The paper's hot path (k calls per batch), written in assembly to stay under 30k gas:
    ///      21k base + two cold SLOADs (member index, proposal) + one nonzero-to-nonzero SSTORE
    ///      + an anonymous LOG1 (the id and the member packed in its one topic). Same checks as
    ///      Solidity would make: member, pending, not twice. The id is the upper 96 bits of the
    ///      batch digest, so a confirmation approves the batch the member computed itself: another
    ///      batch under the same id needs a 96-bit second preimage. A confirmation of a proposal
    ///      from an older epoch is harmless: executeReward refuses it.
    function confirmReward(uint256 id) external {
        bytes4 notMember = NotMember.selector;
        bytes4 unknown = UnknownProposal.selector;
        bytes4 twice = AlreadyConfirmed.selector;
        assembly ("memory-safe") {
            mstore(0x00, caller())
            mstore(0x20, _memberPos.slot)
            let pos := sload(keccak256(0x00, 0x40))
            if iszero(pos) {
                mstore(0x00, notMember)
                mstore(0x04, caller())
                revert(0x00, 0x24)
            }
            mstore(0x00, id)
            mstore(0x20, _proposals.slot)
            let slot := keccak256(0x00, 0x40)
            let p := sload(slot)
            if iszero(p) {
                mstore(0x00, unknown)
                mstore(0x04, id)
                revert(0x00, 0x24)
            }
            let bit := shl(sub(pos, 1), 1)
            if and(p, bit) {
                mstore(0x00, twice)
                mstore(0x04, id)
                mstore(0x24, caller())
                revert(0x00, 0x44)
            }
            sstore(slot, or(p, bit))
            // RewardConfirmed, anonymous, one topic: id << 160 | member (ids are < 2^96).
            log1(0x00, 0x00, or(shl(160, id), caller()))
        }
    }

    /// @inheritdoc IRewardMultisig
    function executeReward(uint256 id, Settlement calldata batch) external nonReentrant {
        uint256 p = _proposals[id];
        if (p == 0) revert UnknownProposal(id);
        bytes32 digest = _hashTypedDataV4(SettlementHash.hash(batch));
        if (uint256(digest) >> 160 != id || ((uint256(digest) >> 64) & ((1 << 96) - 1)) != p >> 160) {
            revert BatchMismatch(id);
        }
        uint32 e = epoch;
        // Approval bits index the member list of the epoch they were given in.
        if (uint32(p >> 128) != e) revert StaleProposal(id);
        uint256 approvals = _popcount(p & APPROVALS_MASK);
        if (approvals < threshold) revert NotEnoughApprovals(approvals, threshold);
        delete _proposals[id];
        _settle(batch, digest, e);
    }

    // ---------------------------------------------------------------- one transaction

    /// @inheritdoc IRewardMultisig
    function executeSigned(Settlement calldata batch, bytes calldata signatures) external nonReentrant {
        bytes32 digest = _hashTypedDataV4(SettlementHash.hash(batch));
        _checkSignatures(digest, signatures);
        _settle(batch, digest, epoch);
    }

    /// @inheritdoc IRewardMultisig
    function executeAction(Action calldata action, bytes calldata signatures) external nonReentrant {
        address target = action.target;
        if (
            target != address(this) && target != address(orderBook) && target != address(stakeRegistry)
                && target != address(challengeManager)
        ) revert BadTarget(target);
        _checkFresh(action.epoch, action.deadline, epoch);
        _checkSignatures(_hashTypedDataV4(SettlementHash.hashAction(action)), signatures);
        _useNonce(_usedActionNonces, action.nonce);
        bytes4 selector = action.data.length >= 4 ? bytes4(action.data[:4]) : bytes4(0);
        emit ActionExecuted(action.nonce, target, selector);
        (bool ok, bytes memory ret) = target.call(action.data);
        if (!ok) revert ActionFailed(ret);
    }

    // ---------------------------------------------------------------- governance (onlySelf)

    /// @inheritdoc IRewardMultisig
    function addMember(address member) external onlySelf {
        _addMember(member);
        _nextEpoch();
        // A majority threshold must stay a majority of the larger committee.
        _setThreshold(threshold);
    }

    /// @inheritdoc IRewardMultisig
    function removeMember(address member) external onlySelf {
        _removeMember(member);
        uint256 n = _members.length;
        if (threshold > n) revert InvalidThreshold(threshold, n);
        _nextEpoch();
    }

    /// @inheritdoc IRewardMultisig
    function changeMembers(address[] calldata removed, address[] calldata added, uint256 threshold_)
        external
        onlySelf
    {
        for (uint256 i; i < removed.length; ++i) {
            _removeMember(removed[i]);
        }
        for (uint256 i; i < added.length; ++i) {
            _addMember(added[i]);
        }
        _setThreshold(threshold_);
        _nextEpoch();
    }

    /// @inheritdoc IRewardMultisig
    function setThreshold(uint256 threshold_) external onlySelf {
        _setThreshold(threshold_);
    }

    /// @inheritdoc IRewardMultisig
    function setTreasury(address treasury_) external onlySelf {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        emit TreasuryChanged(treasury_);
    }

    /// @inheritdoc IRewardMultisig
    function setParam(bytes32 key, uint256 value) external onlySelf {
        params[key] = value;
        emit ParamChanged(key, value);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IRewardMultisig
    function settlementDigest(Settlement calldata batch) external view returns (bytes32) {
        return _hashTypedDataV4(SettlementHash.hash(batch));
    }

    /// @inheritdoc IRewardMultisig
    function hashSettlement(Settlement calldata batch) external pure returns (bytes32) {
        return SettlementHash.hash(batch);
    }

    /// @inheritdoc IRewardMultisig
    function actionDigest(Action calldata action) external view returns (bytes32) {
        return _hashTypedDataV4(SettlementHash.hashAction(action));
    }

    /// @inheritdoc IRewardMultisig
    function nonceUsed(uint256 nonce) public view returns (bool) {
        return _usedNonces[nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc IRewardMultisig
    function actionNonceUsed(uint256 nonce) public view returns (bool) {
        return _usedActionNonces[nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc IRewardMultisig
    function proposalId(Settlement calldata batch) external view returns (uint256) {
        return uint256(_hashTypedDataV4(SettlementHash.hash(batch))) >> 160;
    }

    /// @inheritdoc IRewardMultisig
    function members() external view returns (address[] memory) {
        return _members;
    }

    /// @inheritdoc IRewardMultisig
    function isMember(address account) external view returns (bool) {
        return _memberPos[account] != 0;
    }

    /// @inheritdoc IRewardMultisig
    function proposalState(uint256 id) external view returns (uint256 approvals, bool exists) {
        uint256 p = _proposals[id];
        return (_popcount(p & APPROVALS_MASK), p != 0);
    }

    /// @notice The EIP-712 domain separator (name "PoT RewardMultisig", version "1").
    /// @return the separator
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internals

    function _settle(Settlement calldata batch, bytes32 digest, uint32 e) internal {
        _checkFresh(batch.epoch, batch.deadline, e);
        _useNonce(_usedNonces, batch.nonce);
        uint256 applied;
        if (batch.orders.length != 0) applied = _forwardToOrderBook(batch);
        uint256 n = batch.slashes.length;
        uint256 checkedOrder;
        for (uint256 i; i < n; ++i) {
            Slash calldata s = batch.slashes[i];
            // A slash for a wrong validation waits, like its order, for the challenge reveals
            // to end (consecutive slashes of one order check once). The first always checks:
            // order 0 does not exist, and finalizableAt refuses it.
            if (i == 0 || s.orderId != checkedOrder) {
                uint64 dueAt = orderBook.finalizableAt(s.orderId);
                if (block.timestamp < dueAt) revert IOrderBook.TooEarly(s.orderId, uint64(block.timestamp), dueAt);
                checkedOrder = s.orderId;
            }
            stakeRegistry.slash(s.staker, s.amount, s.to);
        }
        n = batch.verdicts.length;
        if (n != 0) {
            address t = treasury;
            for (uint256 i; i < n; ++i) {
                ChallengeVerdict calldata v = batch.verdicts[i];
                challengeManager.resolve(v.orderId, v.challenger, v.upheld, v.validator, t);
            }
        }
        emit SettlementExecuted(batch.nonce, digest, applied, batch.slashes.length, batch.verdicts.length);
    }

    /// @dev OrderBook.settle(batch) with the batch's bytes copied from this call's calldata rather
    ///      than ABI-encoded again (re-encoding nested calldata arrays costs ~1.5k gas per order).
    ///      A tuple's encoding is position-independent (its offsets are relative to its start), so
    ///      the bytes from the batch's start to the end of calldata are a valid encoding of it
    ///      behind a head whose one offset is 0x20; the bytes after it (signatures, if any) are
    ///      ignored by the decoder. The batch was already decoded and hashed here, so they are the
    ///      bytes the members signed.
    function _forwardToOrderBook(Settlement calldata batch) internal returns (uint256 applied) {
        address target = address(orderBook);
        bytes4 selector = IOrderBook.settle.selector;
        assembly ("memory-safe") {
            let len := sub(calldatasize(), batch)
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), 0x20)
            calldatacopy(add(ptr, 0x24), batch, len)
            if iszero(call(gas(), target, 0, ptr, add(0x24, len), 0x00, 0x20)) {
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            applied := mload(0x00)
        }
    }

    function _useNonce(mapping(uint256 => uint256) storage used, uint256 nonce) internal {
        uint256 word = used[nonce >> 8];
        uint256 bit = 1 << (nonce & 0xff);
        if (word & bit != 0) revert NonceUsed(nonce);
        used[nonce >> 8] = word | bit;
    }

    function _checkFresh(uint256 batchEpoch, uint256 deadline, uint32 e) internal view {
        if (batchEpoch != e) revert WrongEpoch(batchEpoch, e);
        if (block.timestamp > deadline) revert Expired(deadline, uint64(block.timestamp));
    }

    /// @dev Signatures are concatenated 65-byte r||s||v. Each must recover to a member, members are
    ///      deduplicated with a bitmap of their indices (any order is accepted), and at least k are
    ///      needed. OpenZeppelin's ECDSA rejects malleable (high-s) signatures.
    function _checkSignatures(bytes32 digest, bytes calldata signatures) internal view {
        uint256 len = signatures.length;
        if (len == 0 || len % 65 != 0) revert BadSignatureLength(len);
        uint256 seen;
        uint256 count;
        for (uint256 off; off < len; off += 65) {
            bytes32 r;
            bytes32 s;
            uint8 v;
            assembly ("memory-safe") {
                let p := add(signatures.offset, off)
                r := calldataload(p)
                s := calldataload(add(p, 0x20))
                v := byte(0, calldataload(add(p, 0x40)))
            }
            address signer = ECDSA.recover(digest, v, r, s);
            uint256 pos = _memberPos[signer];
            if (pos == 0) revert NotMember(signer);
            uint256 bit = 1 << (pos - 1);
            if (seen & bit != 0) revert DuplicateSigner(signer);
            seen |= bit;
            ++count;
        }
        uint256 k = threshold;
        if (count < k) revert NotEnoughApprovals(count, k);
    }

    function _addMember(address member) internal {
        if (member == address(0)) revert ZeroAddress();
        // The contracts cannot sign: a member that can never approve only raises what k means.
        if (
            member == address(this) || member == address(orderBook) || member == address(stakeRegistry)
                || member == address(challengeManager)
        ) revert BadMember(member);
        if (_memberPos[member] != 0) revert AlreadyMember(member);
        uint256 n = _members.length;
        if (n >= MAX_MEMBERS) revert TooManyMembers(n + 1, MAX_MEMBERS);
        _members.push(member);
        _memberPos[member] = n + 1;
        emit MemberAdded(member);
    }

    function _removeMember(address member) internal {
        uint256 pos = _memberPos[member];
        if (pos == 0) revert NotMember(member);
        uint256 last = _members.length - 1;
        if (pos - 1 != last) {
            address moved = _members[last];
            _members[pos - 1] = moved;
            _memberPos[moved] = pos;
        }
        _members.pop();
        delete _memberPos[member];
        emit MemberRemoved(member);
    }

    function _setThreshold(uint256 k) internal {
        uint256 n = _members.length;
        // A majority threshold means two conflicting batches cannot both gather k approvals
        // from honest-but-disjoint halves.
        if (k == 0 || k > n || 2 * k <= n) revert InvalidThreshold(k, n);
        threshold = uint8(k);
        emit ThresholdChanged(k);
    }

    /// @dev 32 bits, unchecked, skipping 0 (a stored proposal is nonzero because its epoch is):
    ///      an epoch repeats only after 2^32 - 1 membership changes.
    function _nextEpoch() internal {
        unchecked {
            uint32 e = epoch + 1;
            epoch = e == 0 ? 1 : e;
        }
        emit EpochChanged(epoch);
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        while (x != 0) {
            x &= x - 1;
            ++c;
        }
    }
}
