// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOrderBook} from "../../contracts/interfaces/IOrderBook.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {IChallengeManager} from "../../contracts/interfaces/IChallengeManager.sol";
import {PoTSystem} from "../utils/PoTFixture.sol";
import {Test} from "../utils/Test.sol";
import {Handler} from "./Handler.sol";

/// @notice The money guarantees the contracts state at their tops, checked after every call of
///         a random sequence of orders, stakes, challenges, settlements and attacks (Handler).
///         Runs and depth: foundry.toml ([invariant]; `FOUNDRY_PROFILE=deep` for long runs).
contract PoTInvariants is Test {
    PoTSystem internal sys;
    Handler internal handler;

    function setUp() public {
        sys = new PoTSystem(address(this));
        handler = new Handler(sys, address(this));
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](16);
        selectors[0] = Handler.warp.selector;
        selectors[1] = Handler.placeOrder.selector;
        selectors[2] = Handler.releaseTestData.selector;
        selectors[3] = Handler.reclaim.selector;
        selectors[4] = Handler.register.selector;
        selectors[5] = Handler.addStake.selector;
        selectors[6] = Handler.requestUnregister.selector;
        selectors[7] = Handler.withdraw.selector;
        selectors[8] = Handler.commitChallenge.selector;
        selectors[9] = Handler.revealChallenge.selector;
        selectors[10] = Handler.reclaimChallengeStake.selector;
        selectors[11] = Handler.outsiderMovesMoney.selector;
        selectors[12] = Handler.settle.selector;
        selectors[13] = Handler.settleWithTooFewSignatures.selector;
        selectors[14] = Handler.settleAgain.selector;
        selectors[15] = Handler.settleWrongTotal.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    /// @notice The handler's actions take effect on a scripted path (not only early returns), so
    ///         a contract change that makes one of them skip silently cannot leave the campaign
    ///         passing vacuously.
    function test_handlerActionsTakeEffect() public {
        handler.register(0, 15, 0); // staker0: every role
        handler.register(1, 4, 0); // staker1: verifier
        handler.placeOrder(0, 100 ether, 1 hours, 600, 1 hours, 1 hours); // order 1
        handler.commitChallenge(0, 0); // releases order 1's test data, staker0 challenges
        handler.commitChallenge(0, 1); // staker1 challenges
        handler.revealChallenge(0); // staker1 reveals
        handler.settle(0, 2, 1_000, 0, 10 ether); // staker2 wins, staker0 slashed, both verdicts
        handler.settleAgain(0, 0);
        handler.placeOrder(1, 50 ether, 1 hours, 600, 1 hours, 1 hours); // order 2
        handler.settleWithTooFewSignatures(0, 0);
        handler.settleWrongTotal(0, 0, 1, true);
        handler.settleWrongTotal(0, 0, 1, false);
        handler.outsiderMovesMoney(0, 3);
        handler.reclaim(0); // order 2 back to its client
        handler.placeOrder(2, 70 ether, 1 hours, 600, 1 hours, 1 hours); // order 3
        handler.commitChallenge(0, 1);
        handler.reclaimChallengeStake(0); // no verdict came: staker1 takes its cStake back
        handler.addStake(1, 5 ether);
        handler.requestUnregister(1);
        handler.withdraw(1);

        string[13] memory actions = [
            "placeOrder",
            "releaseTestData",
            "commitChallenge",
            "revealChallenge",
            "settle",
            "slash",
            "verdict",
            "reclaim",
            "reclaimChallengeStake",
            "register",
            "addStake",
            "requestUnregister",
            "withdraw"
        ];
        uint256[13] memory expected = [uint256(3), 2, 3, 1, 1, 1, 2, 1, 1, 2, 1, 1, 1];
        for (uint256 i; i < actions.length; ++i) {
            assertEq(handler.done(bytes32(bytes(actions[i]))), expected[i], actions[i]);
        }
        invariant_orderBookHoldsExactlyTheOpenEscrow();
        invariant_stakeRegistryHoldsExactlyTheStakes();
        invariant_challengeManagerHoldsExactlyTheUnresolvedStakes();
        invariant_supplyStaysWithKnownAccounts();
        invariant_noMoneyMovesWithoutTheCommittee();
        invariant_escrowLeavesOnceAndExactly();
    }

    /// @notice OrderBook: token balance == sum of the rewards of open orders.
    function invariant_orderBookHoldsExactlyTheOpenEscrow() public view {
        uint256 open;
        uint256 count = sys.orders().orderCount();
        for (uint256 id = 1; id <= count; ++id) {
            IOrderBook.Order memory o = sys.orders().getOrder(id);
            if (o.status == IOrderBook.Status.Open) open += o.reward;
        }
        assertEq(sys.token().balanceOf(address(sys.orders())), open, "OrderBook balance != open escrow");
    }

    /// @notice StakeRegistry: token balance == sum of all stakes, and no lock exceeds its stake.
    function invariant_stakeRegistryHoldsExactlyTheStakes() public view {
        address[] memory stakers = handler.stakers();
        uint256 total;
        for (uint256 i; i < stakers.length; ++i) {
            IStakeRegistry.Staker memory s = sys.stakes().stakerOf(stakers[i]);
            assertLe(s.locked, s.stake, "locked above stake");
            total += s.stake;
        }
        assertEq(sys.token().balanceOf(address(sys.stakes())), total, "StakeRegistry balance != sum of stakes");
    }

    /// @notice ChallengeManager: token balance == sum of unresolved challenge stakes.
    function invariant_challengeManagerHoldsExactlyTheUnresolvedStakes() public view {
        address[] memory stakers = handler.stakers();
        uint256 count = sys.orders().orderCount();
        uint256 total;
        for (uint256 id = 1; id <= count; ++id) {
            for (uint256 i; i < stakers.length; ++i) {
                IChallengeManager.Challenge memory c = sys.challenges().getChallenge(id, stakers[i]);
                if (c.status == IChallengeManager.Status.Committed || c.status == IChallengeManager.Status.Revealed) {
                    total += c.stake;
                } else {
                    assertEq(c.stake, 0, "resolved challenge still holds stake");
                }
            }
        }
        assertEq(
            sys.token().balanceOf(address(sys.challenges())), total, "ChallengeManager balance != unresolved stakes"
        );
    }

    /// @notice No token is created or lost, and none reaches an address outside the system.
    function invariant_supplyStaysWithKnownAccounts() public view {
        address[] memory known = _knownAccounts();
        uint256 total;
        for (uint256 i; i < known.length; ++i) {
            total += sys.token().balanceOf(known[i]);
        }
        assertEq(total, sys.SUPPLY(), "tokens outside the known accounts");
        assertEq(sys.token().totalSupply(), sys.SUPPLY(), "supply changed");
        assertEq(sys.token().balanceOf(address(sys.multisig())), 0, "RewardMultisig holds tokens");
    }

    /// @notice No money moved without k approvals or by a non-multisig caller.
    function invariant_noMoneyMovesWithoutTheCommittee() public view {
        assertEq(handler.underThresholdSettlements(), 0, "a batch with k-1 signatures executed");
        assertEq(handler.outsiderMoves(), 0, "an outsider called a committee-only function");
    }

    /// @notice An order's escrow leaves once and whole: settled or reclaimed orders never settle
    ///         again, and a batch paying more or less than the escrow moves nothing.
    function invariant_escrowLeavesOnceAndExactly() public view {
        assertEq(handler.doubleSettlements(), 0, "a closed order settled again");
        assertEq(handler.wrongTotalSettlements(), 0, "a batch paying other than the escrow executed");
        uint256 count = sys.orders().orderCount();
        for (uint256 id = 1; id <= count; ++id) {
            if (handler.closed(id)) {
                assertTrue(sys.orders().getOrder(id).status != IOrderBook.Status.Open, "closed order open again");
            }
        }
    }

    function _knownAccounts() internal view returns (address[] memory all) {
        address[] memory clients = handler.clients();
        address[] memory stakers = handler.stakers();
        address[] memory members = sys.members();
        all = new address[](clients.length + stakers.length + members.length + 6);
        uint256 n;
        all[n++] = address(this);
        all[n++] = sys.treasury();
        all[n++] = address(sys.orders());
        all[n++] = address(sys.stakes());
        all[n++] = address(sys.challenges());
        all[n++] = address(sys.multisig());
        for (uint256 i; i < clients.length; ++i) {
            all[n++] = clients[i];
        }
        for (uint256 i; i < stakers.length; ++i) {
            all[n++] = stakers[i];
        }
        for (uint256 i; i < members.length; ++i) {
            all[n++] = members[i];
        }
    }
}
