// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IOrderBook} from "./interfaces/IOrderBook.sol";
import {Payout} from "./interfaces/ISettlement.sol";

/// @title OrderBook
/// @notice Training orders and their escrow. Guarantees: the token balance of this contract equals
///         the sum of the rewards of open orders; an order's escrow leaves exactly once, either in
///         full through a k-approved settlement (payouts summing exactly to the escrow) or back to
///         the client by `reclaim` when the committee stayed silent past the grace period.
contract OrderBook is IOrderBook, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    IERC20 public immutable token;
    /// @notice RewardMultisig: the only caller of settle and the parameter setters.
    address public immutable multisig;

    uint32 public minRevealDuration;
    uint32 public settlementGrace;
    uint256 public orderCount;
    mapping(uint256 => Order) internal _orders;

    modifier onlyMultisig() {
        if (msg.sender != multisig) revert OnlyMultisig(msg.sender);
        _;
    }

    /// @param token_ the escrowed token
    /// @param multisig_ the RewardMultisig (predicted address at deployment)
    /// @param minRevealDuration_ floor for every order's revealDuration
    /// @param settlementGrace_ seconds after the last window before a client may reclaim
    constructor(IERC20 token_, address multisig_, uint32 minRevealDuration_, uint32 settlementGrace_) {
        if (address(token_) == address(0) || multisig_ == address(0)) revert ZeroAddress();
        token = token_;
        multisig = multisig_;
        minRevealDuration = minRevealDuration_;
        settlementGrace = settlementGrace_;
    }

    /// @inheritdoc IOrderBook
    function placeOrder(OrderParams calldata p) external nonReentrant returns (uint256 orderId) {
        if (p.reward == 0) revert ZeroReward();
        if (p.trainDuration == 0 || p.validateDuration == 0 || p.challengeDuration == 0 || p.revealDuration == 0) {
            revert ZeroDuration();
        }
        uint32 minReveal = minRevealDuration;
        if (p.revealDuration < minReveal) revert RevealDurationTooShort(p.revealDuration, minReveal);
        orderId = ++orderCount;
        _orders[orderId] = Order({
            client: msg.sender,
            t0: uint40(block.timestamp),
            t3: 0,
            status: Status.Open,
            reward: p.reward,
            trainDuration: p.trainDuration,
            validateDuration: p.validateDuration,
            challengeDuration: p.challengeDuration,
            revealDuration: p.revealDuration,
            testCommitment: p.testCommitment
        });
        emit OrderPlaced(
            orderId,
            msg.sender,
            p.modelType,
            p.reward,
            uint64(block.timestamp),
            p.trainDuration,
            p.validateDuration,
            p.challengeDuration,
            p.revealDuration,
            p.testCommitment,
            p.specCid
        );
        token.safeTransferFrom(msg.sender, address(this), p.reward);
    }

    /// @inheritdoc IOrderBook
    function releaseTestData(uint256 orderId, string calldata testCid, bytes32 salt) external {
        Order storage o = _orders[orderId];
        _requireOpen(orderId, o.status);
        if (msg.sender != o.client) revert NotClient(orderId, msg.sender);
        if (o.t3 != 0) revert AlreadyReleased(orderId);
        uint64 revealEnd = uint64(o.t0) + o.trainDuration + o.revealDuration;
        uint64 releaseEnd = revealEnd + o.revealDuration;
        if (block.timestamp < revealEnd || block.timestamp >= releaseEnd) {
            revert OutsideWindow(orderId, uint64(block.timestamp), revealEnd, releaseEnd);
        }
        // The client committed to the test set before any model existed; a different opening
        // would let it pick a test set after seeing the models.
        if (keccak256(abi.encode(o.client, keccak256(bytes(testCid)), salt)) != o.testCommitment) {
            revert BadTestOpening(orderId);
        }
        o.t3 = uint40(block.timestamp);
        emit TestDataReleased(orderId, testCid, uint64(block.timestamp));
    }

    /// @inheritdoc IOrderBook
    function reclaim(uint256 orderId) external nonReentrant {
        Order storage o = _orders[orderId];
        _requireOpen(orderId, o.status);
        if (msg.sender != o.client) revert NotClient(orderId, msg.sender);
        uint64 at = _reclaimableAt(o);
        if (block.timestamp < at) revert TooEarly(orderId, uint64(block.timestamp), at);
        o.status = Status.Reclaimed;
        uint256 amount = o.reward;
        emit OrderReclaimed(orderId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IOrderBook
    function settle(uint256 orderId, address winner, bytes32 winningMid, Payout[] calldata payouts)
        external
        onlyMultisig
        nonReentrant
    {
        Order storage o = _orders[orderId];
        _requireOpen(orderId, o.status);
        // Even a k-approved batch cannot settle before the first legitimate moment (a cancel
        // with no claims, at trainEnd; with test data released, after the challenge reveals).
        uint64 earliest = o.t3 == 0
            ? uint64(o.t0) + o.trainDuration
            : uint64(o.t3) + o.validateDuration + 2 * uint64(o.revealDuration) + o.challengeDuration;
        if (block.timestamp < earliest) revert TooEarly(orderId, uint64(block.timestamp), earliest);
        uint256 escrow = o.reward;
        uint256 total;
        uint256 n = payouts.length;
        for (uint256 i; i < n; ++i) {
            total += payouts[i].amount;
        }
        if (total != escrow) revert PayoutMismatch(orderId, total, escrow);
        o.status = Status.Settled;
        emit OrderSettled(orderId, winner, winningMid, total);
        IERC20 t = token;
        for (uint256 i; i < n; ++i) {
            uint256 amount = payouts[i].amount;
            if (amount != 0) t.safeTransfer(payouts[i].to, amount);
        }
    }

    /// @inheritdoc IOrderBook
    function setMinRevealDuration(uint32 minRevealDuration_) external onlyMultisig {
        minRevealDuration = minRevealDuration_;
        emit MinRevealDurationChanged(minRevealDuration_);
    }

    /// @inheritdoc IOrderBook
    function setSettlementGrace(uint32 settlementGrace_) external onlyMultisig {
        settlementGrace = settlementGrace_;
        emit SettlementGraceChanged(settlementGrace_);
    }

    /// @inheritdoc IOrderBook
    function getOrder(uint256 orderId) external view returns (Order memory) {
        return _orders[orderId];
    }

    /// @inheritdoc IOrderBook
    function windows(uint256 orderId)
        external
        view
        returns (uint64 trainEnd, uint64 revealEnd, uint64 releaseEnd, uint64 challengeEnd, uint64 challengeRevealEnd)
    {
        Order storage o = _orders[orderId];
        if (o.status == Status.None) revert UnknownOrder(orderId);
        trainEnd = uint64(o.t0) + o.trainDuration;
        revealEnd = trainEnd + o.revealDuration;
        releaseEnd = revealEnd + o.revealDuration;
        if (o.t3 != 0) {
            uint64 validationRevealEnd = uint64(o.t3) + o.validateDuration + o.revealDuration;
            challengeEnd = validationRevealEnd + o.challengeDuration;
            challengeRevealEnd = challengeEnd + o.revealDuration;
        }
    }

    /// @inheritdoc IOrderBook
    function reclaimableAt(uint256 orderId) external view returns (uint64) {
        Order storage o = _orders[orderId];
        if (o.status == Status.None) revert UnknownOrder(orderId);
        return _reclaimableAt(o);
    }

    function _reclaimableAt(Order storage o) internal view returns (uint64) {
        // The last window: the challenge reveals when test data came, else the test release.
        uint64 last = o.t3 == 0
            ? uint64(o.t0) + o.trainDuration + 2 * uint64(o.revealDuration)
            : uint64(o.t3) + o.validateDuration + 2 * uint64(o.revealDuration) + o.challengeDuration;
        return last + settlementGrace;
    }

    function _requireOpen(uint256 orderId, Status status) internal pure {
        if (status == Status.None) revert UnknownOrder(orderId);
        if (status != Status.Open) revert NotOpen(orderId, status);
    }
}
