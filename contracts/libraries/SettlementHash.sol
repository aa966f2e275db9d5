// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Settlement, OrderSettlement, Slash, ChallengeVerdict, Action} from "../interfaces/ISettlement.sol";

/// @title EIP-712 struct hashes of the settlement batch and governance actions.
/// @dev Must equal offchain/pot/protocol/settlement.py (SETTLEMENT_TYPES); a test checks it.
///      encodeType lists referenced types sorted by name after the primary type (EIP-712).
library SettlementHash {
    bytes32 internal constant ORDER_TYPEHASH = keccak256(
        "OrderSettlement(uint256 orderId,address winner,bytes32 winningMid,uint256 perMember,uint256[] payouts)"
    );
    bytes32 internal constant SLASH_TYPEHASH =
        keccak256("Slash(uint256 orderId,address staker,uint256 amount,address to)");
    bytes32 internal constant VERDICT_TYPEHASH =
        keccak256("ChallengeVerdict(uint256 orderId,address challenger,bool upheld,address validator)");
    bytes32 internal constant SETTLEMENT_TYPEHASH = keccak256(
        "Settlement(uint256 nonce,uint256 epoch,uint256 deadline,address[] recipients,uint256 members,"
        "OrderSettlement[] orders,Slash[] slashes,ChallengeVerdict[] verdicts)"
        "ChallengeVerdict(uint256 orderId,address challenger,bool upheld,address validator)"
        "OrderSettlement(uint256 orderId,address winner,bytes32 winningMid,uint256 perMember,uint256[] payouts)"
        "Slash(uint256 orderId,address staker,uint256 amount,address to)"
    );
    bytes32 internal constant ACTION_TYPEHASH =
        keccak256("Action(uint256 nonce,uint256 epoch,uint256 deadline,address target,bytes data)");

    function hash(Settlement calldata b) internal pure returns (bytes32) {
        uint256 n = b.orders.length;
        bytes32[] memory orders = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            OrderSettlement calldata o = b.orders[i];
            orders[i] = keccak256(
                abi.encode(ORDER_TYPEHASH, o.orderId, o.winner, o.winningMid, o.perMember, _hashWords(o.payouts))
            );
        }
        n = b.slashes.length;
        bytes32[] memory slashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            Slash calldata s = b.slashes[i];
            slashes[i] = keccak256(abi.encode(SLASH_TYPEHASH, s.orderId, s.staker, s.amount, s.to));
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
                b.epoch,
                b.deadline,
                _hashAddresses(b.recipients),
                b.members,
                keccak256(abi.encodePacked(orders)),
                keccak256(abi.encodePacked(slashes)),
                keccak256(abi.encodePacked(verdicts))
            )
        );
    }

    function hashAction(Action calldata a) internal pure returns (bytes32) {
        return keccak256(abi.encode(ACTION_TYPEHASH, a.nonce, a.epoch, a.deadline, a.target, keccak256(a.data)));
    }

    /// @dev EIP-712 hashes an array of atomic values as keccak256 of their 32-byte words, which is
    ///      the calldata array's body: copy it once and hash it, without an element loop.
    function _hashWords(uint256[] calldata ws) private pure returns (bytes32) {
        uint256 offset;
        assembly ("memory-safe") {
            offset := ws.offset
        }
        return _hashCalldata(offset, ws.length);
    }

    /// @dev As _hashWords. A dirty address word (upper bits set) hashes differently from the clean
    ///      address the members signed, so it cannot pass the signature check; reading it later as
    ///      an address would revert anyway.
    function _hashAddresses(address[] calldata xs) private pure returns (bytes32) {
        uint256 offset;
        assembly ("memory-safe") {
            offset := xs.offset
        }
        return _hashCalldata(offset, xs.length);
    }

    function _hashCalldata(uint256 offset, uint256 words) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let buf := mload(0x40)
            let len := shl(5, words)
            calldatacopy(buf, offset, len)
            h := keccak256(buf, len)
        }
    }
}
