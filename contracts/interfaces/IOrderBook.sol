// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Payout} from "./ISettlement.sol";

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

    /// @notice What the chain stores of an order (3 slots); modelType and specCid live in the event.
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
        bytes32 testCommitment;
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
    error PayoutMismatch(uint256 orderId, uint256 total, uint256 escrow);
    error TooEarly(uint256 orderId, uint64 now_, uint64 earliest);
    error OnlyMultisig(address caller);
    error ZeroAddress();

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
    /// @notice The client took its escrow back because no settlement came in time.
    /// @param orderId the order
    /// @param client the client
    /// @param amount tokens returned
    event OrderReclaimed(uint256 indexed orderId, address indexed client, uint256 amount);
    /// @notice The committee changed the floor of revealDuration.
    /// @param minRevealDuration seconds
    event MinRevealDurationChanged(uint32 minRevealDuration);
    /// @notice The committee changed how long after the last window a client may reclaim.
    /// @param settlementGrace seconds
    event SettlementGraceChanged(uint32 settlementGrace);

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
    /// @notice Pay the order's escrow out (RewardMultisig only; payouts sum exactly to the escrow).
    /// @param orderId the order
    /// @param winner winning miner or zero
    /// @param winningMid winning model id or zero
    /// @param payouts transfers out of the escrow
    function settle(uint256 orderId, address winner, bytes32 winningMid, Payout[] calldata payouts) external;
    /// @notice Set the floor of revealDuration (committee only).
    /// @param minRevealDuration seconds
    function setMinRevealDuration(uint32 minRevealDuration) external;
    /// @notice Set the reclaim grace (committee only).
    /// @param settlementGrace seconds
    function setSettlementGrace(uint32 settlementGrace) external;

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
    /// @notice Seconds after an order's last window before its client may reclaim.
    /// @return seconds
    function settlementGrace() external view returns (uint32);
    /// @notice Earliest block time at which the client may reclaim.
    /// @param orderId the order
    /// @return block time
    function reclaimableAt(uint256 orderId) external view returns (uint64);
}
