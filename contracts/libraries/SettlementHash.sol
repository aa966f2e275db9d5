// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Settlement, OrderSettlement, Payout, Slash, ChallengeVerdict, Action} from "../interfaces/ISettlement.sol";

/// @title EIP-712 struct hashes of the settlement batch and governance actions.
/// @dev Must equal offchain/pot/protocol/settlement.py (SETTLEMENT_TYPES); a test checks it.
///      encodeType lists referenced types sorted by name after the primary type (EIP-712).
library SettlementHash {
    bytes32 internal constant PAYOUT_TYPEHASH = keccak256("Payout(address to,uint256 amount)");
    bytes32 internal constant ORDER_TYPEHASH = keccak256(
        "OrderSettlement(uint256 orderId,address winner,bytes32 winningMid,Payout[] payouts)Payout(address to,uint256 amount)"
    );
    bytes32 internal constant SLASH_TYPEHASH = keccak256("Slash(address staker,uint256 amount,address to)");
    bytes32 internal constant VERDICT_TYPEHASH =
        keccak256("ChallengeVerdict(uint256 orderId,address challenger,bool upheld,address validator)");
    bytes32 internal constant SETTLEMENT_TYPEHASH = keccak256(
        "Settlement(uint256 nonce,OrderSettlement[] orders,Slash[] slashes,ChallengeVerdict[] verdicts)"
        "ChallengeVerdict(uint256 orderId,address challenger,bool upheld,address validator)"
        "OrderSettlement(uint256 orderId,address winner,bytes32 winningMid,Payout[] payouts)"
        "Payout(address to,uint256 amount)" "Slash(address staker,uint256 amount,address to)"
    );
    bytes32 internal constant ACTION_TYPEHASH = keccak256("Action(uint256 nonce,address target,bytes data)");

    function hash(Settlement calldata b) internal pure returns (bytes32) {
        uint256 n = b.orders.length;
        bytes32[] memory orders = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            orders[i] = _hashOrder(b.orders[i]);
        }
        n = b.slashes.length;
        bytes32[] memory slashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            Slash calldata s = b.slashes[i];
            slashes[i] = keccak256(abi.encode(SLASH_TYPEHASH, s.staker, s.amount, s.to));
        }
        n = b.verdicts.length;
        bytes32[] memory verdicts = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            ChallengeVerdict calldata v = b.verdicts[i];
            verdicts[i] = keccak256(abi.encode(VERDICT_TYPEHASH, v.orderId, v.challenger, v.upheld, v.validator));
        }
        return keccak256(
            abi.encode(
                SETTLEMENT_TYPEHASH,
                b.nonce,
                keccak256(abi.encodePacked(orders)),
                keccak256(abi.encodePacked(slashes)),
                keccak256(abi.encodePacked(verdicts))
            )
        );
    }

    function hashAction(Action calldata a) internal pure returns (bytes32) {
        return keccak256(abi.encode(ACTION_TYPEHASH, a.nonce, a.target, keccak256(a.data)));
    }

    function _hashOrder(OrderSettlement calldata o) private pure returns (bytes32) {
        return keccak256(abi.encode(ORDER_TYPEHASH, o.orderId, o.winner, o.winningMid, _hashPayouts(o.payouts)));
    }

    /// @dev The per-payout hashing is the hot loop of a large batch: hash each (typehash, to,
    ///      amount) in scratch memory and write the results into one array, without the
    ///      allocation abi.encode makes per element.
    function _hashPayouts(Payout[] calldata ps) private pure returns (bytes32 h) {
        bytes32 typehash = PAYOUT_TYPEHASH;
        assembly ("memory-safe") {
            let n := ps.length
            let buf := mload(0x40)
            let out := add(buf, 0x60)
            mstore(buf, typehash)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let src := add(ps.offset, mul(i, 0x40))
                let to := calldataload(src)
                // Same check the ABI decoder makes: a dirty address must not hash as a clean one.
                if shr(160, to) { revert(0, 0) }
                mstore(add(buf, 0x20), to)
                mstore(add(buf, 0x40), calldataload(add(src, 0x20)))
                mstore(add(out, mul(i, 0x20)), keccak256(buf, 0x60))
            }
            h := keccak256(out, mul(n, 0x20))
        }
    }
}
