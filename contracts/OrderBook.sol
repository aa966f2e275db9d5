// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IOrderBook} from "./interfaces/IOrderBook.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {OrderSettlement, Settlement} from "./interfaces/ISettlement.sol";

/// @title OrderBook
/// @notice Training orders and their escrow. Guarantees: the token balance of this contract equals
///         the sum of the rewards of open orders; an order's escrow leaves exactly once, either in
///         full through a k-approved settlement (payouts summing exactly to the escrow) or back to
///         the client by `reclaim` when the committee stayed silent past the order's grace period.
///         An order's windows sum to at most `maxOrderLifetime`, and `maxOrderLifetime +
///         settlementGrace` stays below StakeRegistry's unbonding period (checked here and there
///         on every change), so a staker who misbehaves in an order cannot withdraw before the
///         settlement that slashes it is due. One order that cannot settle never blocks the others
///         of its batch: it is skipped with a reason.
contract OrderBook is IOrderBook, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint256 internal constant AMOUNT_MASK = (1 << 240) - 1;

    IERC20 public immutable token;
    /// @notice RewardMultisig: the only caller of settle and the parameter setters.
    address public immutable multisig;
    /// @notice Where the unbonding period comes from (the exposure bound above).
    IStakeRegistry public immutable stakeRegistry;

    /// @dev An order as stored (3 slots): getOrder's record less its status. Slot 0: client, t0,
    ///      t3; slot 1: reward, durations, grace; slot 2: the test commitment.
    struct Stored {
        address client;
        uint40 t0;
        uint40 t3;
        uint96 reward;
        uint32 trainDuration;
        uint32 validateDuration;
        uint32 challengeDuration;
        uint32 revealDuration;
        uint32 settlementGrace;
        bytes32 testCommitment;
    }

    uint32 public minRevealDuration;
    uint32 public settlementGrace;
    uint32 public maxOrderLifetime;
    /// @dev The latest reclaim time of the orders placed under earlier lifetime and grace bounds
    ///      (see latestReclaimAt): raised at each change of either bound.
    uint64 internal _earlierReclaimBound;
    uint256 public orderCount;
    mapping(uint256 => Stored) internal _orders;
    /// @dev orderId >> 7 => two bits per order: 01 settled, 10 reclaimed, 00 open (or unknown:
    ///      an order exists when its client is set). A settlement of consecutive orders then
    ///      writes one warm slot, not a status slot per order (2,900 gas each).
    mapping(uint256 => uint256) internal _closed;

    modifier onlyMultisig() {
        if (msg.sender != multisig) revert OnlyMultisig(msg.sender);
        _;
    }

    /// @param token_ the escrowed token
    /// @param multisig_ the RewardMultisig (predicted address at deployment)
    /// @param stakeRegistry_ the StakeRegistry (deployed before this contract)
    /// @param minRevealDuration_ floor for every order's revealDuration
    /// @param settlementGrace_ seconds after the last window before a client may reclaim
    /// @param maxOrderLifetime_ bound on an order's summed windows
    constructor(
        IERC20 token_,
        address multisig_,
        IStakeRegistry stakeRegistry_,
        uint32 minRevealDuration_,
        uint32 settlementGrace_,
        uint32 maxOrderLifetime_
    ) {
        if (address(token_) == address(0) || multisig_ == address(0) || address(stakeRegistry_) == address(0)) {
            revert ZeroAddress();
        }
        token = token_;
        multisig = multisig_;
        stakeRegistry = stakeRegistry_;
        minRevealDuration = minRevealDuration_;
        _checkExposure(maxOrderLifetime_, settlementGrace_, stakeRegistry_.unbondingPeriod());
        settlementGrace = settlementGrace_;
        maxOrderLifetime = maxOrderLifetime_;
    }

    /// @inheritdoc IOrderBook
    function placeOrder(OrderParams calldata p) external nonReentrant returns (uint256 orderId) {
        if (p.reward == 0) revert ZeroReward();
        if (p.trainDuration == 0 || p.validateDuration == 0 || p.challengeDuration == 0 || p.revealDuration == 0) {
            revert ZeroDuration();
        }
        uint32 minReveal = minRevealDuration;
        if (p.revealDuration < minReveal) revert RevealDurationTooShort(p.revealDuration, minReveal);
        uint256 lifetime = uint256(p.trainDuration) + p.validateDuration + p.challengeDuration + 4 * uint256(p.revealDuration);
        if (lifetime > maxOrderLifetime) revert OrderTooLong(lifetime, maxOrderLifetime);
        // A zero commitment is what an unset field looks like: no test set was committed to.
        if (p.testCommitment == bytes32(0)) revert ZeroTestCommitment();
        orderId = ++orderCount;
        _orders[orderId] = Stored({
            client: msg.sender,
            t0: uint40(block.timestamp),
            t3: 0,
            reward: p.reward,
            trainDuration: p.trainDuration,
            validateDuration: p.validateDuration,
            challengeDuration: p.challengeDuration,
            revealDuration: p.revealDuration,
            settlementGrace: settlementGrace,
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
        Stored storage o = _orders[orderId];
        _requireOpen(orderId, _status(orderId, o));
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
        Stored storage o = _orders[orderId];
        _requireOpen(orderId, _status(orderId, o));
        if (msg.sender != o.client) revert NotClient(orderId, msg.sender);
        uint64 reclaimAt = _reclaimableAt(o);
        if (block.timestamp < reclaimAt) revert TooEarly(orderId, uint64(block.timestamp), reclaimAt);
        _close(orderId, RECLAIMED);
        uint256 amount = o.reward;
        emit OrderReclaimed(orderId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IOrderBook
    function settle(Settlement calldata batch) external onlyMultisig nonReentrant returns (uint256 applied) {
        address[] calldata recipients = batch.recipients;
        uint256 nr = recipients.length;
        uint256 members = batch.members;
        if (members > nr) revert BadMembers(members, nr);
        // What each recipient is owed over the orders that apply; the per-member tax is summed
        // apart and added to the first `members` entries once, at the end.
        uint256[] memory owed = new uint256[](nr);
        uint256 shared;
        OrderSettlement[] calldata orders = batch.orders;
        uint256 n = orders.length;
        for (uint256 i; i < n; ++i) {
            OrderSettlement calldata os = orders[i];
            if (_settleOne(os, recipients, members, owed)) {
                unchecked {
                    shared += os.perMember;
                    ++applied;
                }
            }
        }
        // Interactions last: every order is marked settled before the first transfer.
        IERC20 t = token;
        for (uint256 i; i < nr; ++i) {
            uint256 amount = owed[i];
            if (i < members) amount += shared;
            if (amount != 0) t.safeTransfer(recipients[i], amount);
        }
    }

    /// @inheritdoc IOrderBook
    function setMinRevealDuration(uint32 minRevealDuration_) external onlyMultisig {
        minRevealDuration = minRevealDuration_;
        emit MinRevealDurationChanged(minRevealDuration_);
    }

    /// @inheritdoc IOrderBook
    function setSettlementGrace(uint32 settlementGrace_) external onlyMultisig {
        _checkExposure(maxOrderLifetime, settlementGrace_, stakeRegistry.unbondingPeriod());
        _boundEarlierOrders();
        settlementGrace = settlementGrace_;
        emit SettlementGraceChanged(settlementGrace_);
    }

    /// @inheritdoc IOrderBook
    function setMaxOrderLifetime(uint32 maxOrderLifetime_) external onlyMultisig {
        _checkExposure(maxOrderLifetime_, settlementGrace, stakeRegistry.unbondingPeriod());
        _boundEarlierOrders();
        maxOrderLifetime = maxOrderLifetime_;
        emit MaxOrderLifetimeChanged(maxOrderLifetime_);
    }

    /// @inheritdoc IOrderBook
    function getOrder(uint256 orderId) external view returns (Order memory) {
        Stored storage o = _orders[orderId];
        return Order({
            client: o.client,
            t0: o.t0,
            t3: o.t3,
            status: _status(orderId, o),
            reward: o.reward,
            trainDuration: o.trainDuration,
            validateDuration: o.validateDuration,
            challengeDuration: o.challengeDuration,
            revealDuration: o.revealDuration,
            settlementGrace: o.settlementGrace,
            testCommitment: o.testCommitment
        });
    }

    /// @inheritdoc IOrderBook
    function windows(uint256 orderId)
        external
        view
        returns (uint64 trainEnd, uint64 revealEnd, uint64 releaseEnd, uint64 challengeEnd, uint64 challengeRevealEnd)
    {
        Stored storage o = _orders[orderId];
        if (o.client == address(0)) revert UnknownOrder(orderId);
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
        Stored storage o = _orders[orderId];
        if (o.client == address(0)) revert UnknownOrder(orderId);
        return _reclaimableAt(o);
    }

    /// @inheritdoc IOrderBook
    function latestReclaimAt() public view returns (uint64) {
        uint64 current = uint64(block.timestamp) + maxOrderLifetime + settlementGrace;
        uint64 earlier = _earlierReclaimBound;
        return earlier > current ? earlier : current;
    }

    /// @inheritdoc IOrderBook
    function finalizableAt(uint256 orderId) external view returns (uint64) {
        Stored storage o = _orders[orderId];
        if (o.client == address(0)) revert UnknownOrder(orderId);
        return _lastWindowEnd(o);
    }

    /// @dev Marks one order settled and credits its payouts to `owed`, or skips it with a reason.
    ///      The hot path of a settlement (once per order): one read of each of the order's two
    ///      first slots, the payout words walked in assembly (see _sumPayouts, _credit).
    function _settleOne(
        OrderSettlement calldata os,
        address[] calldata recipients,
        uint256 members,
        uint256[] memory owed
    ) internal returns (bool) {
        uint256 orderId = os.orderId;
        Stored storage o = _orders[orderId];
        uint256 slot0;
        uint256 slot1;
        assembly ("memory-safe") {
            slot0 := sload(o.slot)
            slot1 := sload(add(o.slot, 1))
        }
        // slot 0: client | t0 << 160 | t3 << 200; slot 1: reward | train << 96 | validate << 128
        //         | challenge << 160 | reveal << 192 | grace << 224 (the Stored layout)
        if (uint160(slot0) == 0 || _closedBits(orderId) != 0) return _skip(orderId, SkipReason.NotOpen);
        uint256 escrow = uint96(slot1);
        SkipReason why = _checkPayouts(os, recipients, members, escrow);
        if (why != SkipReason.None) return _skip(orderId, why);
        uint256 last = _lastWindowEnd(slot0, slot1);
        // Before the windows end, only the cancel refund is possible: at trainEnd with no test
        // data, the whole escrow back to the client (the committee saw no claims). Anything else
        // reverts the batch (it waits: the windows will end) rather than skipping a valid order.
        if (block.timestamp < last && !_isCancelRefund(slot0, slot1, os, recipients)) {
            revert TooEarly(orderId, uint64(block.timestamp), uint64(last));
        }
        _credit(os.payouts, owed);
        _close(orderId, SETTLED);
        emit OrderSettled(orderId, os.winner, os.winningMid, escrow);
        return true;
    }

    /// @dev The amounts add up to the escrow, every index names a recipient, the winner is paid first.
    function _checkPayouts(
        OrderSettlement calldata os,
        address[] calldata recipients,
        uint256 members,
        uint256 escrow
    ) internal pure returns (SkipReason) {
        uint256 perMember = os.perMember;
        uint256[] calldata ps = os.payouts;
        // perMember <= escrow first: the product below then cannot overflow (members < 2^16).
        if (perMember > escrow) return SkipReason.PayoutMismatch;
        (uint256 paid, bool badIndex) = _sumPayouts(ps, recipients.length);
        if (badIndex) return SkipReason.BadRecipient;
        if (paid + perMember * members != escrow) return SkipReason.PayoutMismatch;
        // An OrderSettled event must never name a winner the batch does not pay.
        address winner = os.winner;
        if (winner != address(0) && (ps.length == 0 || recipients[ps[0] >> 240] != winner || ps[0] & AMOUNT_MASK == 0)) {
            return SkipReason.WinnerNotPaid;
        }
        return SkipReason.None;
    }

    function _skip(uint256 orderId, SkipReason why) internal returns (bool) {
        emit OrderSkipped(orderId, why);
        return false;
    }

    /// @dev The refund of a cancel: at or after trainEnd, no test data, the whole escrow to the client.
    function _isCancelRefund(uint256 slot0, uint256 slot1, OrderSettlement calldata os, address[] calldata recipients)
        internal
        view
        returns (bool)
    {
        uint256[] calldata ps = os.payouts;
        return uint40(slot0 >> 200) == 0 && block.timestamp >= uint40(slot0 >> 160) + uint32(slot1 >> 96)
            && os.perMember == 0 && os.winner == address(0) && ps.length == 1
            && recipients[ps[0] >> 240] == address(uint160(slot0));
    }

    /// @dev Sum of the payout amounts, or badIndex when one names no recipient. No overflow: each
    ///      amount is below 2^240 and a calldata array has far fewer than 2^16 words.
    function _sumPayouts(uint256[] calldata ps, uint256 nr) internal pure returns (uint256 total, bool badIndex) {
        assembly ("memory-safe") {
            let end := add(ps.offset, shl(5, ps.length))
            for { let p := ps.offset } lt(p, end) { p := add(p, 0x20) } {
                let w := calldataload(p)
                if iszero(lt(shr(240, w), nr)) {
                    badIndex := 1
                    break
                }
                total := add(total, and(w, AMOUNT_MASK))
            }
        }
    }

    /// @dev owed[index] += amount for every payout word; _sumPayouts checked every index against
    ///      owed.length (= recipients.length), so every write stays inside the array.
    function _credit(uint256[] calldata ps, uint256[] memory owed) internal pure {
        assembly ("memory-safe") {
            let base := add(owed, 0x20)
            let end := add(ps.offset, shl(5, ps.length))
            for { let p := ps.offset } lt(p, end) { p := add(p, 0x20) } {
                let w := calldataload(p)
                let cell := add(base, shl(5, shr(240, w)))
                mstore(cell, add(mload(cell), and(w, AMOUNT_MASK)))
            }
        }
    }

    /// @dev The end of the order's last window from its two first slots: the challenge reveals
    ///      when test data came, else the test release window.
    function _lastWindowEnd(uint256 slot0, uint256 slot1) internal pure returns (uint256) {
        uint256 reveal = uint32(slot1 >> 192);
        uint256 t3 = uint40(slot0 >> 200);
        return t3 == 0
            ? uint40(slot0 >> 160) + uint32(slot1 >> 96) + 2 * reveal
            : t3 + uint32(slot1 >> 128) + 2 * reveal + uint32(slot1 >> 160);
    }

    /// @dev The end of the order's last window: the challenge reveals when test data came,
    ///      else the test release window.
    function _lastWindowEnd(Stored storage o) internal view returns (uint64) {
        return o.t3 == 0
            ? uint64(o.t0) + o.trainDuration + 2 * uint64(o.revealDuration)
            : uint64(o.t3) + o.validateDuration + 2 * uint64(o.revealDuration) + o.challengeDuration;
    }

    function _reclaimableAt(Stored storage o) internal view returns (uint64) {
        return _lastWindowEnd(o) + o.settlementGrace;
    }

    /// @dev Before a bound changes: an order placed so far is reclaimable at the latest at its
    ///      t0 + lifetime + grace under the bounds in force when it was placed (the windows of one
    ///      placed at t0 end by t0 + its lifetime, even with the test data released last), so by
    ///      now + these bounds. A lowered bound must not let the unbonding period drop below that.
    function _boundEarlierOrders() internal {
        _earlierReclaimBound = latestReclaimAt();
    }

    function _checkExposure(uint256 lifetime, uint256 grace, uint256 unbonding) internal pure {
        if (lifetime + grace >= unbonding) revert ExposureOutlivesUnbonding(lifetime, grace, unbonding);
    }

    uint256 internal constant SETTLED = 1;
    uint256 internal constant RECLAIMED = 2;

    function _status(uint256 orderId, Stored storage o) internal view returns (Status) {
        if (o.client == address(0)) return Status.None;
        uint256 bits = _closedBits(orderId);
        return bits == 0 ? Status.Open : bits == SETTLED ? Status.Settled : Status.Reclaimed;
    }

    function _closedBits(uint256 orderId) internal view returns (uint256) {
        return (_closed[orderId >> 7] >> ((orderId & 127) << 1)) & 3;
    }

    function _close(uint256 orderId, uint256 how) internal {
        _closed[orderId >> 7] |= how << ((orderId & 127) << 1);
    }

    function _requireOpen(uint256 orderId, Status status) internal pure {
        if (status == Status.None) revert UnknownOrder(orderId);
        if (status != Status.Open) revert NotOpen(orderId, status);
    }
}
