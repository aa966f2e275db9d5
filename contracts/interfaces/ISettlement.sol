// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// The settlement batch the committee signs and RewardMultisig executes. Field order and names
// ARE the wire format shared with offchain/pot/protocol/settlement.py (EIP-712 types there).
//
// Payouts are merged per recipient across the orders of one batch: every address paid by the
// batch appears once in `recipients`, each order lists its payouts as indices into that list,
// and the contract pays each recipient once, the sum over the orders that applied. The committee
// tax, the same amount to every member in every order, is one number per order (`perMember`)
// paid to each of the first `members` recipients.

/// @notice Settles one order: `perMember * members + sum(payouts)` equals the order's escrow.
/// @dev payouts[i] = (recipientIndex << 240) | amount. When `winner` is not zero, payouts[0]
///      pays the winner (the contract checks it), so a batch cannot name a winner it does not pay.
struct OrderSettlement {
    uint256 orderId;
    address winner;
    bytes32 winningMid;
    uint256 perMember;
    uint256[] payouts;
}

/// @notice Moves up to `amount` of `staker`'s stake to `to` (a challenger or the treasury), for a
///         wrong validation in `orderId`; a stake that shrank is taken as it is, never reverted on.
struct Slash {
    uint256 orderId;
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

/// @notice A settlement batch. `nonce` is unique per RewardMultisig among settlements (the ledger
///         re-issues an expired batch under the same nonce, so at most one version executes);
///         `epoch` must be the multisig's membership epoch and `deadline` not passed.
struct Settlement {
    uint256 nonce;
    uint256 epoch;
    uint256 deadline;
    address[] recipients;
    uint256 members;
    OrderSettlement[] orders;
    Slash[] slashes;
    ChallengeVerdict[] verdicts;
}

/// @notice A governance call (parameters, membership) under the committee threshold, bound to
///         the membership epoch and a deadline like a settlement; action nonces are their own space.
struct Action {
    uint256 nonce;
    uint256 epoch;
    uint256 deadline;
    address target;
    bytes data;
}
