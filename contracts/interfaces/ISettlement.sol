// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// The settlement batch the committee signs and RewardMultisig executes. Field order and names
// ARE the wire format shared with offchain/pot/protocol/settlement.py (EIP-712 types there).

/// @notice One transfer out of an order's escrow.
struct Payout {
    address to;
    uint256 amount;
}

/// @notice Settles one order: its payouts sum exactly to the order's escrow.
struct OrderSettlement {
    uint256 orderId;
    address winner;
    bytes32 winningMid;
    Payout[] payouts;
}

/// @notice Moves `amount` of `staker`'s stake to `to` (a challenger or the treasury).
struct Slash {
    address staker;
    uint256 amount;
    address to;
}

/// @notice Resolves `challenger`'s locked cStake on `orderId`.
struct ChallengeVerdict {
    uint256 orderId;
    address challenger;
    bool upheld;
    address validator;
}

/// @notice A settlement batch; `nonce` is unique per RewardMultisig.
struct Settlement {
    uint256 nonce;
    OrderSettlement[] orders;
    Slash[] slashes;
    ChallengeVerdict[] verdicts;
}

/// @notice A governance call (parameters, membership, stake locks) under the committee threshold.
struct Action {
    uint256 nonce;
    address target;
    bytes data;
}
