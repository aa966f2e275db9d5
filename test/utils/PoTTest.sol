// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {PoTToken} from "../../contracts/PoTToken.sol";
import {StakeRegistry} from "../../contracts/StakeRegistry.sol";
import {OrderBook} from "../../contracts/OrderBook.sol";
import {ChallengeManager} from "../../contracts/ChallengeManager.sol";
import {RewardMultisig} from "../../contracts/RewardMultisig.sol";
import {IOrderBook} from "../../contracts/interfaces/IOrderBook.sol";
import {Settlement, OrderSettlement, Slash, ChallengeVerdict} from "../../contracts/interfaces/ISettlement.sol";
import {PoTSystem} from "./PoTFixture.sol";
import {Test} from "./Test.sol";

/// @notice A deployed system and the steps most tests take: funded accounts, orders with short
///         windows, settlement batches in the wire format signed by the committee.
abstract contract PoTTest is Test {
    uint32 internal constant TRAIN = 1 hours;
    uint32 internal constant VALIDATE = 1 hours;
    uint32 internal constant CHALLENGE = 1 hours;
    uint32 internal constant REVEAL = 600;

    PoTSystem internal sys;
    PoTToken internal token;
    StakeRegistry internal stakes;
    OrderBook internal orders;
    ChallengeManager internal challenges;
    RewardMultisig internal multisig;
    address internal holder = makeAddr("holder");

    function _deploy() internal {
        sys = new PoTSystem(holder);
        token = sys.token();
        stakes = sys.stakes();
        orders = sys.orders();
        challenges = sys.challenges();
        multisig = sys.multisig();
    }

    /// @dev Tokens for `who`, approved to every PoT contract that pulls them.
    function _fund(address who, uint256 amount) internal {
        vm.prank(holder);
        token.transfer(who, amount);
        vm.startPrank(who);
        token.approve(address(orders), type(uint256).max);
        token.approve(address(stakes), type(uint256).max);
        token.approve(address(challenges), type(uint256).max);
        vm.stopPrank();
    }

    function _placeOrder(address client, uint96 reward) internal returns (uint256 id) {
        id = orders.orderCount() + 1;
        vm.prank(client);
        orders.placeOrder(
            IOrderBook.OrderParams({
                reward: reward,
                trainDuration: TRAIN,
                validateDuration: VALIDATE,
                challengeDuration: CHALLENGE,
                revealDuration: REVEAL,
                modelType: bytes32("classification-accuracy-v1"),
                testCommitment: keccak256(abi.encode(client, keccak256(bytes("test")), bytes32(id))),
                specCid: "spec"
            })
        );
    }

    /// @dev The client opens its test commitment at the start of the release window.
    function _release(uint256 id) internal {
        (, uint64 revealEnd,,,) = orders.windows(id);
        if (block.timestamp < revealEnd) vm.warp(revealEnd);
        vm.prank(orders.getOrder(id).client);
        orders.releaseTestData(id, "test", bytes32(id));
    }

    /// @dev An empty batch in the current epoch, valid for an hour, the committee first among
    ///      the recipients followed by `others`.
    function _batch(uint256 nonce, address[] memory others) internal view returns (Settlement memory b) {
        address[] memory committee = multisig.members();
        b.nonce = nonce;
        b.epoch = multisig.epoch();
        b.deadline = block.timestamp + 1 hours;
        b.members = committee.length;
        b.recipients = new address[](committee.length + others.length);
        for (uint256 i; i < committee.length; ++i) {
            b.recipients[i] = committee[i];
        }
        for (uint256 i; i < others.length; ++i) {
            b.recipients[committee.length + i] = others[i];
        }
    }

    /// @dev An order item paying its whole escrow as `amounts` to the recipients at `indices`.
    function _item(
        uint256 orderId,
        address winner,
        uint256 perMember,
        uint256[] memory indices,
        uint256[] memory amounts
    ) internal pure returns (OrderSettlement memory os) {
        os.orderId = orderId;
        os.winner = winner;
        os.winningMid = winner == address(0) ? bytes32(0) : keccak256(abi.encode("model", orderId));
        os.perMember = perMember;
        os.payouts = new uint256[](indices.length);
        for (uint256 i; i < indices.length; ++i) {
            os.payouts[i] = indices[i] << 240 | amounts[i];
        }
    }

    /// @dev The batch with k signatures of current members.
    function _execute(Settlement memory b) internal {
        multisig.executeSigned(b, _sigs(b, multisig.threshold()));
    }

    function _sigs(Settlement memory b, uint256 count) internal view returns (bytes memory) {
        return sys.signDigest(multisig.settlementDigest(b), count);
    }

    function _one(uint256 x) internal pure returns (uint256[] memory a) {
        a = new uint256[](1);
        a[0] = x;
    }

    function _two(uint256 x, uint256 y) internal pure returns (uint256[] memory a) {
        a = new uint256[](2);
        (a[0], a[1]) = (x, y);
    }

    function _addrs(address x) internal pure returns (address[] memory a) {
        a = new address[](1);
        a[0] = x;
    }

    function _addrs(address x, address y) internal pure returns (address[] memory a) {
        a = new address[](2);
        (a[0], a[1]) = (x, y);
    }

    function _orders(OrderSettlement memory x) internal pure returns (OrderSettlement[] memory a) {
        a = new OrderSettlement[](1);
        a[0] = x;
    }

    function _slashes(Slash memory x) internal pure returns (Slash[] memory a) {
        a = new Slash[](1);
        a[0] = x;
    }
}
