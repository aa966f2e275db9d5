// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOrderBook} from "../../contracts/interfaces/IOrderBook.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {IChallengeManager} from "../../contracts/interfaces/IChallengeManager.sol";
import {PoTSystem} from "../utils/PoTFixture.sol";
import {Test} from "../utils/Test.sol";
import {Handler} from "./Handler.sol";

/// @notice The money guarantees the contracts state at their tops, checked after every call of
///         a random sequence of orders, stakes, validations, challenges, settlements (signed and
///         on the paper path), governance and attacks (Handler). Each honest settlement is also
///         checked inside the handler against the rules' prediction, to the wei per account.
///         One invariant function, so one campaign drives every check (forge runs a campaign per
///         invariant function). Runs and depth: foundry.toml ([invariant]; `FOUNDRY_PROFILE=deep`
///         for long runs).
contract PoTInvariants is Test {
    PoTSystem internal sys;
    Handler internal handler;

    function setUp() public {
        sys = new PoTSystem(address(this));
        handler = new Handler(sys, address(this));
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](31);
        selectors[0] = Handler.warp.selector;
        selectors[1] = Handler.placeOrder.selector;
        selectors[2] = Handler.placeBadOrder.selector;
        selectors[3] = Handler.releaseTestData.selector;
        selectors[4] = Handler.reclaim.selector;
        selectors[5] = Handler.reclaimEarly.selector;
        selectors[6] = Handler.register.selector;
        selectors[7] = Handler.addStake.selector;
        selectors[8] = Handler.requestUnregister.selector;
        selectors[9] = Handler.withdraw.selector;
        selectors[10] = Handler.revealValidation.selector;
        selectors[11] = Handler.commitChallenge.selector;
        selectors[12] = Handler.revealChallenge.selector;
        selectors[13] = Handler.reclaimChallengeStake.selector;
        selectors[14] = Handler.settle.selector;
        selectors[15] = Handler.settleWithBadSignatures.selector;
        selectors[16] = Handler.settleStale.selector;
        selectors[17] = Handler.replayNonce.selector;
        selectors[18] = Handler.settleTooEarly.selector;
        selectors[19] = Handler.proposeReward.selector;
        selectors[20] = Handler.confirmReward.selector;
        selectors[21] = Handler.executeReward.selector;
        selectors[22] = Handler.paperPath.selector;
        selectors[23] = Handler.memberCapture.selector;
        selectors[24] = Handler.changeMembership.selector;
        selectors[25] = Handler.changeParams.selector;
        selectors[26] = Handler.lockStake.selector;
        selectors[27] = Handler.attackAction.selector;
        selectors[28] = Handler.outsiderMovesMoney.selector;
        // Twice: a proposal needs k confirmations before the other calls make it stale.
        selectors[29] = Handler.confirmReward.selector;
        // Twice: the exposure checks need a validation before its staker leaves.
        selectors[30] = Handler.revealValidation.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    /// @notice Every handler action takes effect on a scripted path, and every attack is tried
    ///         (not only early returns), so a contract change that makes one of them return early
    ///         cannot leave the campaign passing vacuously.
    function test_handlerActionsTakeEffect() public {
        handler.register(0, 15, 0); // staker0: every role
        handler.register(1, 4, 0); // staker1: verifier
        handler.register(2, 2, 0); // staker2: validator
        handler.placeOrder(0, 100 ether, 3601, 600, 1 hours, 1 hours); // order 1
        handler.revealValidation(0, 2, 50 ether, false); // releases order 1's test data; staker2 exposes 50
        handler.commitChallenge(0, 0); // staker0 challenges
        handler.commitChallenge(0, 1); // staker1 challenges
        handler.revealChallenge(0);
        handler.settleTooEarly(0, 0, 0);
        handler.settleTooEarly(0, 1, 2); // a slash of staker2
        handler.settleTooEarly(0, 2, 1); // a verdict on staker1's challenge
        handler.reclaimEarly(0, 0);
        handler.lockStake(2, 7, false);
        handler.lockStake(2, 8, false); // above the free stake
        handler.lockStake(2, 7, true);
        // order 1: one item, valid, time moved to its end; staker2 slashed to the treasury;
        // verdicts on both challenges (one listed twice)
        handler.settle((2 << 8) | (6 << 24), 1_000, (512 << 8) | 2, 10 ether);
        handler.placeOrder(1, 50 ether, 3601, 600, 1 hours, 1 hours); // order 2
        handler.placeBadOrder(0, 1, false);
        handler.placeBadOrder(0, 1, true);
        handler.settleWithBadSignatures(0, 0);
        handler.settleWithBadSignatures(0, 1);
        handler.settleWithBadSignatures(0, 2);
        handler.settleStale(0, 0);
        handler.settleStale(0, 1);
        handler.replayNonce(0);
        handler.outsiderMovesMoney(0, 3);
        for (uint256 v; v < 8; ++v) {
            handler.attackAction(v, v);
        }
        handler.reclaim(0); // order 2 back to its client
        handler.placeOrder(2, 70 ether, 3601, 600, 1 hours, 1 hours); // order 3
        handler.commitChallenge(0, 1);
        handler.reclaimChallengeStake(0); // no verdict came: staker1 takes its cStake back
        handler.placeOrder(0, 80 ether, 3601, 600, 1 hours, 1 hours); // order 4
        handler.proposeReward((2 << 8) | (6 << 24), 0);
        handler.confirmReward(0);
        handler.confirmReward(1);
        handler.executeReward(0); // 2 confirmations: refused
        handler.confirmReward(2);
        handler.executeReward(0);
        handler.paperPath(0, 1);
        handler.paperPath(0, 3);
        handler.placeOrder(1, 90 ether, 3601, 600, 1 hours, 1 hours);
        handler.memberCapture((2 << 8) | (6 << 24), 0);
        handler.changeMembership(1, 0); // add a member
        handler.settleStale(0, 2); // signed before the change
        handler.changeMembership(0, 1); // remove a member
        handler.changeMembership(4, 2); // threshold
        handler.changeParams(1, 6 days); // 10 + 6 days of exposure > 14 days of unbonding: refused
        handler.changeParams(0, 5 days);
        handler.changeParams(2, 8 days + 1); // above 5 + grace, but orders placed under 10 days are open
        handler.changeParams(2, 20 days + 1);
        handler.addStake(1, 5 ether);
        handler.placeOrder(2, 10 ether, 3601, 600, 1 hours, 1 hours);
        handler.revealValidation(0, 3, 1 ether, true); // staker0 (a validator) validates and leaves
        handler.requestUnregister(2);
        handler.withdraw(2); // staker2, exposed to order 1, which is settled long ago
        handler.placeOrder(1, 60 ether, 3601, 600, 1 hours, 1 hours);
        handler.warp(3601);
        handler.settle((2 << 8) | (22 << 24), 0, 0, 0); // a whole refund at trainEnd, no test data

        string[49] memory actions = [
            "placeOrder",
            "attack:placeBadOrder",
            "releaseTestData",
            "reclaim",
            "attack:reclaimEarly",
            "register",
            "addStake",
            "requestUnregister",
            "requestUnregister while exposed",
            "withdraw",
            "revealValidation",
            "commitChallenge",
            "revealChallenge",
            "reclaimChallengeStake",
            "settle",
            "order applied",
            "order refunded",
            "order skipped",
            "slash",
            "verdict resolved",
            "verdict skipped",
            "attack:k-1 signatures",
            "attack:duplicate signer",
            "attack:non-member signer",
            "attack:wrong epoch",
            "attack:expired",
            "attack:stale signatures",
            "attack:replay nonce",
            "attack:early order",
            "attack:early slash",
            "attack:early verdict",
            "proposeReward",
            "confirmReward",
            "executeReward",
            "attack:executeReward refused",
            "paperPath",
            "attack:paper k-1",
            "attack:member capture",
            "addMember",
            "removeMember",
            "setThreshold",
            "changeParams",
            "attack:bad params",
            "attack:unbonding < open orders",
            "lock",
            "unlock",
            "attack:bad lock",
            "attack:action",
            "attack:outsider"
        ];
        string memory missing;
        for (uint256 i; i < actions.length; ++i) {
            if (handler.done(bytes32(bytes(actions[i]))) == 0) missing = string.concat(missing, " ", actions[i]);
        }
        assertEq(missing, "", "never took effect");
        invariant_potGuarantees();
    }

    /// @notice Every guarantee, after every call.
    function invariant_potGuarantees() public view {
        _orderBookHoldsExactlyTheOpenEscrow();
        _stakeRegistryHoldsExactlyTheStakes();
        _challengeManagerHoldsExactlyTheUnresolvedStakes();
        _supplyStaysWithKnownAccounts();
        _closedOrdersStayClosed();
        _exposedStakeStays();
        _noAttackWentThrough();
    }

    // ---------------------------------------------------------------- token conservation

    /// @notice OrderBook: token balance == sum of the rewards of open orders.
    function _orderBookHoldsExactlyTheOpenEscrow() internal view {
        uint256 open;
        uint256 count = sys.orders().orderCount();
        for (uint256 id = 1; id <= count; ++id) {
            IOrderBook.Order memory o = sys.orders().getOrder(id);
            if (o.status == IOrderBook.Status.Open) open += o.reward;
        }
        assertEq(sys.token().balanceOf(address(sys.orders())), open, "OrderBook balance != open escrow");
    }

    /// @notice StakeRegistry: token balance == sum of all stakes, and no lock exceeds its stake.
    function _stakeRegistryHoldsExactlyTheStakes() internal view {
        address[] memory accounts = handler.accounts();
        uint256 total;
        for (uint256 i; i < accounts.length; ++i) {
            IStakeRegistry.Staker memory s = sys.stakes().stakerOf(accounts[i]);
            assertLe(s.locked, s.stake, "locked above stake");
            total += s.stake;
        }
        assertEq(sys.token().balanceOf(address(sys.stakes())), total, "StakeRegistry balance != sum of stakes");
    }

    /// @notice ChallengeManager: token balance == sum of unresolved challenge stakes.
    function _challengeManagerHoldsExactlyTheUnresolvedStakes() internal view {
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

    /// @notice No token is created or lost, none reaches an address outside the system, and the
    ///         multisig never holds any.
    function _supplyStaysWithKnownAccounts() internal view {
        address[] memory known = handler.accounts();
        uint256 total;
        for (uint256 i; i < known.length; ++i) {
            total += sys.token().balanceOf(known[i]);
        }
        assertEq(total, sys.SUPPLY(), "tokens outside the known accounts");
        assertEq(sys.token().totalSupply(), sys.SUPPLY(), "supply changed");
        assertEq(sys.token().balanceOf(address(sys.multisig())), 0, "RewardMultisig holds tokens");
    }

    // ---------------------------------------------------------------- no double settlement

    /// @notice A settled or reclaimed order is never open again (and, checked per batch in the
    ///         handler, never paid again: a closed order in a batch is skipped).
    function _closedOrdersStayClosed() internal view {
        uint256 count = sys.orders().orderCount();
        for (uint256 id = 1; id <= count; ++id) {
            if (handler.closed(id)) {
                assertTrue(sys.orders().getOrder(id).status != IOrderBook.Status.Open, "closed order open again");
            }
        }
    }

    // ---------------------------------------------------------------- stake never below what is exposed

    /// @notice While an order a validator revealed for can still be settled in time, the stake
    ///         it exposed is still there (or was taken by a slash); locked <= stake is checked with
    ///         the StakeRegistry balance. (A withdrawal is also checked when it happens: Handler.withdraw.)
    function _exposedStakeStays() internal view {
        assertEq(handler.uncoveredExposure(), "", "exposed stake left");
    }

    // ---------------------------------------------------------------- attacks

    /// @notice No batch or action executed without k valid, fresh approvals; no nonce, order or
    ///         proposal executed twice; nothing settled, slashed or reclaimed early; no staker
    ///         left while an order it validated could still slash it.
    function _noAttackWentThrough() internal view {
        assertEq(handler.breaches(), 0, handler.firstBreach());
    }
}
