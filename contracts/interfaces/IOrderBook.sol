// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Settlement} from "./ISettlement.sol";

/// @title Training orders and their escrow.
interface IOrderBook {
    enum Status {
        None,
        Open,
        Settled,
        Reclaimed
    }

    /// @notice What a client passes to placeOrder.
    struct OrderParams {
        uint96 reward;
        uint32 trainDuration;
        uint32 validateDuration;
        uint32 challengeDuration;
        uint32 revealDuration;
        bytes32 modelType;
        bytes32 testCommitment;
        string specCid;
    }

    /// @notice An order's record (getOrder); modelType and specCid live in the OrderPlaced event.
    ///         `settlementGrace` is fixed when the order is placed.
    struct Order {
        address client;
        uint40 t0;
        uint40 t3;
        Status status;
        uint96 reward;
        uint32 trainDuration;
        uint32 validateDuration;
        uint32 challengeDuration;
        uint32 revealDuration;
        uint32 settlementGrace;
        bytes32 testCommitment;
    }

    /// @notice Why a settlement left an order as it was (the rest of the batch still applied).
    enum SkipReason {
        None,
        NotOpen,
        PayoutMismatch,
        WinnerNotPaid,
        BadRecipient
    }

    error ZeroReward();
    error ZeroDuration();
    error RevealDurationTooShort(uint32 revealDuration, uint32 minimum);
    error UnknownOrder(uint256 orderId);
    error NotOpen(uint256 orderId, Status status);
    error NotClient(uint256 orderId, address caller);
    error OutsideWindow(uint256 orderId, uint64 now_, uint64 start, uint64 end);
    error AlreadyReleased(uint256 orderId);
    error BadTestOpening(uint256 orderId);
    error TooEarly(uint256 orderId, uint64 now_, uint64 earliest);
    error OnlyMultisig(address caller);
    error ZeroAddress();
    error ZeroTestCommitment();
    error OrderTooLong(uint256 lifetime, uint256 maxOrderLifetime);
    error BadMembers(uint256 members, uint256 recipients);
    /// @notice maxOrderLifetime + settlementGrace must stay below the unbonding period, so stake
    ///         exposed to an order cannot be withdrawn before the settlement that may slash it.
    error ExposureOutlivesUnbonding(uint256 maxOrderLifetime, uint256 settlementGrace, uint256 unbondingPeriod);
    /// @notice An unbonding period that would end, for a staker asking to leave now, at or before
    ///         `latestReclaimAt`: an order placed under earlier (longer) bounds could still be
    ///         settled, and slash, after its validators' stake left.
    error OrdersOutliveUnbonding(uint64 latestReclaimAt, uint256 unbondingEnd);

    /// @notice A client placed an order and escrowed `reward`.
    /// @param orderId sequential id, from 1
    /// @param client the payer
    /// @param modelType validation function name (bytes32, zero-padded ASCII)
    /// @param reward escrowed tokens
    /// @param t0 block time of placement
    /// @param trainDuration seconds
    /// @param validateDuration seconds
    /// @param challengeDuration seconds
    /// @param revealDuration seconds
    /// @param testCommitment keccak256(abi.encode(client, keccak256(bytes(testCid)), salt))
    /// @param specCid task spec content id
    event OrderPlaced(
        uint256 indexed orderId,
        address indexed client,
        bytes32 indexed modelType,
        uint256 reward,
        uint64 t0,
        uint32 trainDuration,
        uint32 validateDuration,
        uint32 challengeDuration,
        uint32 revealDuration,
        bytes32 testCommitment,
        string specCid
    );
    /// @notice The client opened its test commitment; `t3` starts validation.
    /// @param orderId the order
    /// @param testCid test set content id
    /// @param t3 block time of the release
    event TestDataReleased(uint256 indexed orderId, string testCid, uint64 t3);
    /// @notice A committee settlement paid out the order's whole escrow.
    /// @param orderId the order
    /// @param winner the winning miner (zero: nobody won)
    /// @param winningMid sha256 of the winning model file (zero: none)
    /// @param total tokens paid (equals the escrow)
    event OrderSettled(uint256 indexed orderId, address indexed winner, bytes32 winningMid, uint256 total);
    /// @notice A settlement could not apply to this order and left it as it was.
    /// @param orderId the order
    /// @param reason why (already settled or reclaimed, payouts not equal to the escrow, ...)
    event OrderSkipped(uint256 indexed orderId, SkipReason reason);
    /// @notice The client took its escrow back because no settlement came in time.
    /// @param orderId the order
    /// @param client the client
    /// @param amount tokens returned
    event OrderReclaimed(uint256 indexed orderId, address indexed client, uint256 amount);
    /// @notice The committee changed the floor of revealDuration.
    /// @param minRevealDuration seconds
    event MinRevealDurationChanged(uint32 minRevealDuration);
    /// @notice The committee changed how long after the last window a client may reclaim
    ///         (orders placed from now on; open orders keep theirs).
    /// @param settlementGrace seconds
    event SettlementGraceChanged(uint32 settlementGrace);
    /// @notice The committee changed the bound on an order's summed windows.
    /// @param maxOrderLifetime seconds
    event MaxOrderLifetimeChanged(uint32 maxOrderLifetime);

    /// @notice Place an order, pulling `params.reward` from the caller into escrow.
    /// @param params reward, durations, modelType, testCommitment, specCid
    /// @return orderId the new order's id
    function placeOrder(OrderParams calldata params) external returns (uint256 orderId);
    /// @notice Open the test-set commitment inside [revealEnd, releaseEnd); records t3.
    /// @param orderId the order
    /// @param testCid test set content id
    /// @param salt the commitment's salt
    function releaseTestData(uint256 orderId, string calldata testCid, bytes32 salt) external;
    /// @notice Refund the whole escrow to the client when no settlement came `settlementGrace`
    ///         after the order's last window (committee dead or silent).
    /// @param orderId the order
    function reclaim(uint256 orderId) external;
    /// @notice Pay out the escrow of every order in a settlement batch (RewardMultisig only). An
    ///         order that cannot apply (not open, payouts not equal to its escrow, winner not paid,
    ///         bad recipient index) is skipped with OrderSkipped; the others apply. Each recipient
    ///         gets one transfer: the sum over the applied orders. Reverts TooEarly when an order's
    ///         windows are not over (a refund of a whole escrow to its client may come at trainEnd).
    ///         Slashes and verdicts of the batch are not this contract's: RewardMultisig applies them.
    /// @param batch the settlement (its recipients, members and orders are read here)
    /// @return applied how many orders settled
    function settle(Settlement calldata batch) external returns (uint256 applied);
    /// @notice Set the floor of revealDuration (committee only).
    /// @param minRevealDuration seconds
    function setMinRevealDuration(uint32 minRevealDuration) external;
    /// @notice Set the reclaim grace of orders placed from now on (committee only).
    /// @param settlementGrace seconds; maxOrderLifetime + settlementGrace < unbondingPeriod
    function setSettlementGrace(uint32 settlementGrace) external;
    /// @notice Set the bound on an order's summed windows (committee only).
    /// @param maxOrderLifetime seconds; maxOrderLifetime + settlementGrace < unbondingPeriod
    function setMaxOrderLifetime(uint32 maxOrderLifetime) external;

    /// @notice An order's stored record.
    /// @param orderId the order
    /// @return the record
    function getOrder(uint256 orderId) external view returns (Order memory);
    /// @notice Window boundaries of an order (CONVENTIONS.md timeline); zero where t3 is unknown.
    /// @param orderId the order
    /// @return trainEnd t0 + trainDuration
    /// @return revealEnd trainEnd + revealDuration
    /// @return releaseEnd revealEnd + revealDuration
    /// @return challengeEnd validationRevealEnd + challengeDuration (0 before t3)
    /// @return challengeRevealEnd challengeEnd + revealDuration (0 before t3)
    function windows(uint256 orderId)
        external
        view
        returns (uint64 trainEnd, uint64 revealEnd, uint64 releaseEnd, uint64 challengeEnd, uint64 challengeRevealEnd);
    /// @notice Seconds after an order's last window before its client may reclaim (new orders).
    /// @return seconds
    function settlementGrace() external view returns (uint32);
    /// @notice Bound on trainDuration + validateDuration + challengeDuration + 4 * revealDuration.
    /// @return seconds
    function maxOrderLifetime() external view returns (uint32);
    /// @notice Earliest block time at which a settlement may pay the order out, slash for it or
    ///         resolve its challenges: the end of its challenge reveals, or of the test release
    ///         window when the test data never came.
    /// @param orderId the order
    /// @return block time
    function finalizableAt(uint256 orderId) external view returns (uint64);
    /// @notice The latest time at which an order placed so far can become reclaimable (at most
    ///         now + maxOrderLifetime + settlementGrace, or later while orders placed under
    ///         longer bounds may still be open). StakeRegistry keeps the unbonding period of a
    ///         staker asking to leave now ending after it.
    /// @return block time
    function latestReclaimAt() external view returns (uint64);
    /// @notice Earliest block time at which the client may reclaim.
    /// @param orderId the order
    /// @return block time
    function reclaimableAt(uint256 orderId) external view returns (uint64);
}
