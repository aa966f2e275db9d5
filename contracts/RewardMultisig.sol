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
///         execute); each nonce executes at most once; signatures are bound to this contract and
///         chain. Membership, threshold, treasury and every PoT parameter change only under the
///         same threshold (executeAction). This contract never holds tokens.
contract RewardMultisig is IRewardMultisig, EIP712, ReentrancyGuardTransient {
    /// @notice Largest committee: the paper path keeps approvals in a 56-bit field.
    uint256 public constant MAX_MEMBERS = 56;

    IOrderBook public immutable orderBook;
    IStakeRegistry public immutable stakeRegistry;
    IChallengeManager public immutable challengeManager;

    // One slot: what every execution reads.
    address public treasury;
    uint8 public threshold;
    /// @notice Bumped on every membership change; proposals from an older epoch cannot execute
    ///         because their approval bits index the old member list. 16 bits, incremented
    ///         unchecked: membership never freezes. It wraps only after 65,536 changes, each a
    ///         k-of-n executeAction, so a stale proposal could match again only if the committee
    ///         itself made 65,536 changes while it sat pending (and a k majority can already
    ///         executeSigned anything).
    uint16 public epoch;

    address[] internal _members;
    /// @dev member => index in _members + 1 (0: not a member)
    mapping(address => uint256) internal _memberPos;
    /// @dev nonce >> 8 => bitmap; consecutive nonces share a slot, so marking one used is mostly
    ///      a nonzero-to-nonzero write.
    mapping(uint256 => uint256) internal _usedNonces;
    /// @dev proposal id (= batch nonce) => digest[255:72] | epoch[71:56] | approvals[55:0].
    ///      One slot per proposal keeps proposeReward to one fresh SSTORE and lets confirmReward be
    ///      a warm nonzero-to-nonzero write. The 184-bit digest prefix (its lowest bit forced to 1)
    ///      leaves a 2^183 second preimage: members confirm only the batch their own ledger
    ///      computed, so a proposer cannot pick both colliding batches and a birthday search does
    ///      not apply.
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
    }

    // ---------------------------------------------------------------- the paper's path

    /// @inheritdoc IRewardMultisig
    function proposeReward(Settlement calldata batch) external returns (uint256 id) {
        if (_memberPos[msg.sender] == 0) revert NotMember(msg.sender);
        id = batch.nonce;
        // The id shares RewardConfirmed's single topic with a 160-bit address.
        if (id >= 1 << 96) revert ProposalIdTooLarge(id);
        // A used nonce is not checked here: executeReward refuses it, and the read costs 2.1k.
        if (_proposals[id] != 0) revert AlreadyProposed(id);
        bytes32 digest = _hashTypedDataV4(SettlementHash.hash(batch));
        // Force a nonzero slot even for the (2^-184) zero prefix: nonzero marks "pending".
        uint256 prefix = (uint256(digest) >> 72) | 1;
        _proposals[id] = (prefix << 72) | (uint256(epoch) << 56);
        emit RewardProposed(id, msg.sender, digest);
    }

    /// @inheritdoc IRewardMultisig
    /// @dev The paper's hot path (k calls per batch), written in assembly to stay under 30k gas:
    ///      21k base + two cold SLOADs (member index, proposal) + one nonzero-to-nonzero SSTORE
    ///      + an anonymous LOG1 (the id and the member packed in its one topic). Same checks as Solidity would make: member, pending, not twice.
    ///      A confirmation of a proposal from an older epoch is harmless: executeReward refuses it.
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
        if (batch.nonce != id || ((uint256(digest) >> 72) | 1) != p >> 72) revert BatchMismatch(id);
        if (uint16(p >> 56) != epoch) revert StaleProposal(id);
        uint256 approvals = _popcount(p & ((1 << 56) - 1));
        if (approvals < threshold) revert NotEnoughApprovals(approvals, threshold);
        delete _proposals[id];
        _settle(batch, digest);
    }

    // ---------------------------------------------------------------- one transaction

    /// @inheritdoc IRewardMultisig
    function executeSigned(Settlement calldata batch, bytes calldata signatures) external nonReentrant {
        bytes32 digest = _hashTypedDataV4(SettlementHash.hash(batch));
        _checkSignatures(digest, signatures);
        _settle(batch, digest);
    }

    /// @inheritdoc IRewardMultisig
    function executeAction(Action calldata action, bytes calldata signatures) external nonReentrant {
        address target = action.target;
        if (
            target != address(this) && target != address(orderBook) && target != address(stakeRegistry)
                && target != address(challengeManager)
        ) revert BadTarget(target);
        _checkSignatures(_hashTypedDataV4(SettlementHash.hashAction(action)), signatures);
        _useNonce(action.nonce);
        bytes4 selector = action.data.length >= 4 ? bytes4(action.data[:4]) : bytes4(0);
        emit ActionExecuted(action.nonce, target, selector);
        (bool ok, bytes memory ret) = target.call(action.data);
        if (!ok) revert ActionFailed(ret);
    }

    // ---------------------------------------------------------------- governance (onlySelf)

    /// @inheritdoc IRewardMultisig
    function addMember(address member) external onlySelf {
        _addMember(member);
        // A majority threshold must stay a majority of the larger committee.
        _setThreshold(threshold);
    }

    /// @inheritdoc IRewardMultisig
    function removeMember(address member) external onlySelf {
        uint256 pos = _memberPos[member];
        if (pos == 0) revert NotMember(member);
        uint256 last = _members.length - 1;
        if (threshold > last) revert InvalidThreshold(threshold, last);
        if (pos - 1 != last) {
            address moved = _members[last];
            _members[pos - 1] = moved;
            _memberPos[moved] = pos;
        }
        _members.pop();
        delete _memberPos[member];
        unchecked {
            ++epoch;
        }
        emit MemberRemoved(member);
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
        return (_popcount(p & ((1 << 56) - 1)), p != 0);
    }

    /// @notice The EIP-712 domain separator (name "PoT RewardMultisig", version "1").
    /// @return the separator
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internals

    function _settle(Settlement calldata batch, bytes32 digest) internal {
        _useNonce(batch.nonce);
        emit SettlementExecuted(batch.nonce, digest, batch.orders.length, batch.slashes.length, batch.verdicts.length);
        uint256 n = batch.orders.length;
        for (uint256 i; i < n; ++i) {
            OrderSettlement calldata o = batch.orders[i];
            orderBook.settle(o.orderId, o.winner, o.winningMid, o.payouts);
        }
        n = batch.slashes.length;
        for (uint256 i; i < n; ++i) {
            Slash calldata s = batch.slashes[i];
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
    }

    function _useNonce(uint256 nonce) internal {
        uint256 word = _usedNonces[nonce >> 8];
        uint256 bit = 1 << (nonce & 0xff);
        if (word & bit != 0) revert NonceUsed(nonce);
        _usedNonces[nonce >> 8] = word | bit;
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
        if (_memberPos[member] != 0) revert AlreadyMember(member);
        uint256 n = _members.length;
        if (n >= MAX_MEMBERS) revert TooManyMembers(n + 1, MAX_MEMBERS);
        _members.push(member);
        _memberPos[member] = n + 1;
        unchecked {
            ++epoch;
        }
        emit MemberAdded(member);
    }

    function _setThreshold(uint256 k) internal {
        uint256 n = _members.length;
        // A majority threshold means two conflicting batches cannot both gather k approvals
        // from honest-but-disjoint halves.
        if (k == 0 || k > n || 2 * k <= n) revert InvalidThreshold(k, n);
        threshold = uint8(k);
        emit ThresholdChanged(k);
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        while (x != 0) {
            x &= x - 1;
            ++c;
        }
    }
}
