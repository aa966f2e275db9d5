// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {PoTToken} from "../contracts/PoTToken.sol";
import {StakeRegistry} from "../contracts/StakeRegistry.sol";
import {IStakeRegistry} from "../contracts/interfaces/IStakeRegistry.sol";
import {IOrderBook} from "../contracts/interfaces/IOrderBook.sol";
import {IRewardMultisig} from "../contracts/interfaces/IRewardMultisig.sol";
import {OrderBook} from "../contracts/OrderBook.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {PoTSystem} from "./utils/PoTFixture.sol";
import {Test} from "./utils/Test.sol";

contract StakeRegistryTest is Test {
    uint8 internal constant MINER = 1;
    uint8 internal constant VALIDATOR = 2;
    uint8 internal constant VERIFIER = 4;
    uint8 internal constant AGGREGATOR = 8;

    PoTSystem internal sys;
    PoTToken internal token;
    StakeRegistry internal stakes;
    address internal holder = makeAddr("holder");
    address internal alice = makeAddr("alice");
    uint96 internal min;

    event Registered(address indexed staker, uint8 roles, uint256 amount, uint256 stake);
    event Withdrawn(address indexed staker, uint256 amount);

    function setUp() public {
        sys = new PoTSystem(holder);
        token = sys.token();
        stakes = sys.stakes();
        min = sys.MIN_STAKE();
        vm.prank(holder);
        token.transfer(alice, 1_000_000 ether);
        vm.prank(alice);
        token.approve(address(stakes), type(uint256).max);
    }

    function _register(uint8 roles, uint256 amount) internal {
        vm.prank(alice);
        stakes.register(roles, amount);
    }

    // ---------------------------------------------------------------- register

    function test_registerEscrowsStakeAndGrantsRole() public {
        vm.expectEmit(address(stakes));
        emit Registered(alice, MINER, min, min);
        _register(MINER, min);
        IStakeRegistry.Staker memory s = stakes.stakerOf(alice);
        assertEq(s.stake, min);
        assertEq(s.roles, MINER);
        assertEq(s.unbondingEnd, 0);
        assertTrue(stakes.hasRoles(alice, MINER));
        assertFalse(stakes.hasRoles(alice, VALIDATOR));
        assertEq(token.balanceOf(address(stakes)), min);
    }

    function test_registerMoreRolesNeedsTheSumOfTheirMinimums() public {
        _register(MINER, min);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.InsufficientStake.selector, min, 2 * min));
        _register(VALIDATOR, 0);
        _register(VALIDATOR | VERIFIER, 2 * min);
        assertEq(stakes.stakerOf(alice).roles, MINER | VALIDATOR | VERIFIER);
        assertTrue(stakes.hasRoles(alice, MINER | VALIDATOR | VERIFIER));
        assertEq(stakes.requiredStake(AGGREGATOR), sys.MIN_AGGREGATOR_STAKE());
    }

    function test_registerRefusesNoRoleAndUnknownRoles() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.InvalidRoles.selector, uint8(0)));
        _register(0, min);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.InvalidRoles.selector, uint8(16)));
        _register(16, min);
    }

    function test_registerRefusesStakeBelowMinimum() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.InsufficientStake.selector, min - 1, min));
        _register(MINER, min - 1);
    }

    // ---------------------------------------------------------------- addStake

    function test_addStake() public {
        _register(MINER, min);
        vm.prank(alice);
        stakes.addStake(5 ether);
        assertEq(stakes.stakerOf(alice).stake, min + 5 ether);
        assertEq(token.balanceOf(address(stakes)), min + 5 ether);
    }

    function test_addStakeRefusesZeroAndStrangers() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.NotRegistered.selector, alice));
        vm.prank(alice);
        stakes.addStake(1 ether);
        _register(MINER, min);
        vm.expectRevert(IStakeRegistry.ZeroAmount.selector);
        vm.prank(alice);
        stakes.addStake(0);
    }

    // ---------------------------------------------------------------- leaving

    function test_requestUnregisterStartsUnbondingAndDropsRoles() public {
        _register(MINER, min);
        uint48 end = uint48(block.timestamp) + sys.UNBONDING();
        vm.prank(alice);
        stakes.requestUnregister();
        assertEq(stakes.stakerOf(alice).unbondingEnd, end);
        // An unbonding staker no longer counts for any role, and cannot top up or re-register.
        assertFalse(stakes.hasRoles(alice, MINER));
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.Unbonding.selector, alice, end));
        vm.prank(alice);
        stakes.addStake(1 ether);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.Unbonding.selector, alice, end));
        _register(VALIDATOR, min);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.Unbonding.selector, alice, end));
        vm.prank(alice);
        stakes.requestUnregister();
    }

    function test_withdrawOnlyAfterUnbonding() public {
        _register(MINER, min);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.NotUnbonding.selector, alice));
        vm.prank(alice);
        stakes.withdraw();

        vm.prank(alice);
        stakes.requestUnregister();
        uint48 end = stakes.stakerOf(alice).unbondingEnd;
        vm.warp(end - 1);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.UnbondingNotOver.selector, alice, end, uint64(end - 1)));
        vm.prank(alice);
        stakes.withdraw();

        vm.warp(end);
        uint256 before = token.balanceOf(alice);
        vm.expectEmit(address(stakes));
        emit Withdrawn(alice, min);
        vm.prank(alice);
        stakes.withdraw();
        assertEq(token.balanceOf(alice), before + min);
        assertEq(token.balanceOf(address(stakes)), 0);
        assertEq(stakes.stakerOf(alice).roles, 0);
        // The record is gone: a second withdraw finds no staker.
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.NotRegistered.selector, alice));
        vm.prank(alice);
        stakes.withdraw();
    }

    function test_requestUnregisterRefusesStrangers() public {
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.NotRegistered.selector, alice));
        vm.prank(alice);
        stakes.requestUnregister();
    }

    // ---------------------------------------------------------------- committee-only

    function test_onlyTheMultisigMovesOrLocksStake() public {
        _register(MINER, min);
        bytes[5] memory calls = [
            abi.encodeCall(StakeRegistry.lock, (alice, 1 ether)),
            abi.encodeCall(StakeRegistry.unlock, (alice, 1 ether)),
            abi.encodeCall(StakeRegistry.slash, (alice, 1 ether, alice)),
            abi.encodeCall(StakeRegistry.setMinStake, (MINER, 0)),
            abi.encodeCall(StakeRegistry.setUnbondingPeriod, (0))
        ];
        for (uint256 i; i < calls.length; ++i) {
            vm.prank(alice);
            (bool ok, bytes memory ret) = address(stakes).call(calls[i]);
            assertFalse(ok);
            assertEq(keccak256(ret), keccak256(abi.encodeWithSelector(IStakeRegistry.OnlyMultisig.selector, alice)));
        }
        assertEq(stakes.stakerOf(alice).stake, min);
    }

    // ---------------------------------------------------------------- the exposure bound

    /// @notice maxOrderLifetime + settlementGrace < unbondingPeriod (DeployParams: 10 + 2 < 14
    ///         days) is kept by every setter, whichever contract it is on, and by the constructors.
    function test_exposureBoundRefusesEveryWayToBreakIt() public {
        OrderBook orders = sys.orders();
        uint256 l = sys.MAX_LIFETIME();
        uint256 g = sys.GRACE();
        uint256 u = sys.UNBONDING();
        _expectActionFailed(
            address(stakes),
            abi.encodeCall(IStakeRegistry.setUnbondingPeriod, (l + g)),
            abi.encodeWithSelector(IOrderBook.ExposureOutlivesUnbonding.selector, l, g, l + g)
        );
        _expectActionFailed(
            address(orders),
            abi.encodeCall(IOrderBook.setMaxOrderLifetime, (uint32(u - g))),
            abi.encodeWithSelector(IOrderBook.ExposureOutlivesUnbonding.selector, u - g, g, u)
        );
        _expectActionFailed(
            address(orders),
            abi.encodeCall(IOrderBook.setSettlementGrace, (uint32(u - l))),
            abi.encodeWithSelector(IOrderBook.ExposureOutlivesUnbonding.selector, l, u - l, u)
        );
        _expectActionFailed(
            address(stakes),
            abi.encodeCall(IStakeRegistry.setUnbondingPeriod, (365 days + 1)),
            abi.encodeWithSelector(IStakeRegistry.UnbondingPeriodTooLong.selector, 365 days + 1, 365 days)
        );
        sys.act(address(stakes), abi.encodeCall(IStakeRegistry.setUnbondingPeriod, (l + g + 1)));
        sys.act(address(orders), abi.encodeCall(IOrderBook.setSettlementGrace, (uint32(g - 1))));
        sys.act(address(orders), abi.encodeCall(IOrderBook.setMaxOrderLifetime, (uint32(l + 1))));
        assertEq(uint256(orders.maxOrderLifetime()) + orders.settlementGrace() + 1, stakes.unbondingPeriod());

        u = stakes.unbondingPeriod();
        vm.expectRevert(abi.encodeWithSelector(IOrderBook.ExposureOutlivesUnbonding.selector, u, 0, u));
        new OrderBook(IERC20(address(token)), address(1), stakes, 600, 0, uint32(u));
        uint96[4] memory mins;
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.UnbondingPeriodTooLong.selector, 366 days, 365 days));
        new StakeRegistry(IERC20(address(token)), address(1), orders, mins, 366 days);
    }

    /// @notice Random parameter changes through executeAction, days apart: each executes exactly
    ///         when the bound holds after it and (for the unbonding period) a staker asking to
    ///         leave now stays past the latest reclaim time of the orders placed under earlier
    ///         bounds; the bound always holds.
    function testFuzz_exposureBoundSurvivesEveryChange(uint256[6] memory changes) public {
        OrderBook orders = sys.orders();
        uint256 earlier; // orders placed before the last lifetime or grace change are due by then
        for (uint256 i; i < changes.length; ++i) {
            vm.warp(block.timestamp + (changes[i] >> 128) % 15 days);
            uint256 l = orders.maxOrderLifetime();
            uint256 g = orders.settlementGrace();
            uint256 u = stakes.unbondingPeriod();
            uint256 value = uint64(changes[i] >> 2);
            bool ok;
            if (changes[i] % 3 == 0) {
                value = bound(value, 0, 30 days);
                ok = sys.tryAct(address(orders), abi.encodeCall(IOrderBook.setMaxOrderLifetime, (uint32(value))));
                assertEq(ok, value + g < u, "setMaxOrderLifetime");
            } else if (changes[i] % 3 == 1) {
                value = bound(value, 0, 30 days);
                ok = sys.tryAct(address(orders), abi.encodeCall(IOrderBook.setSettlementGrace, (uint32(value))));
                assertEq(ok, l + value < u, "setSettlementGrace");
            } else {
                value = bound(value, 0, 400 days);
                ok = sys.tryAct(address(stakes), abi.encodeCall(IStakeRegistry.setUnbondingPeriod, (value)));
                assertEq(
                    ok, l + g < value && value <= 365 days && block.timestamp + value > earlier, "setUnbondingPeriod"
                );
            }
            if (ok && changes[i] % 3 != 2 && block.timestamp + l + g > earlier) earlier = block.timestamp + l + g;
            uint256 current = block.timestamp + orders.maxOrderLifetime() + orders.settlementGrace();
            assertEq(orders.latestReclaimAt(), earlier > current ? earlier : current, "latestReclaimAt");
            assertLt(uint256(orders.maxOrderLifetime()) + orders.settlementGrace(), stakes.unbondingPeriod(), "bound");
        }
    }

    /// @notice A validator who reveals for an order using the whole lifetime allowed and asks to
    ///         leave at once can withdraw only after the order's reclaim time (the last moment
    ///         its settlement, and the slash in it, is due).
    function test_exposedValidatorStaysUntilItsOrderIsDue() public {
        OrderBook orders = sys.orders();
        address client = makeAddr("client");
        vm.prank(holder);
        token.transfer(client, 100 ether);
        vm.prank(client);
        token.approve(address(orders), type(uint256).max);
        uint32 reveal = 600;
        uint32 challenge = uint32(sys.MAX_LIFETIME() - 2 hours - 4 * reveal);
        vm.prank(client);
        uint256 id = orders.placeOrder(
            IOrderBook.OrderParams({
                reward: 100 ether,
                trainDuration: 1 hours,
                validateDuration: 1 hours,
                challengeDuration: challenge,
                revealDuration: reveal,
                modelType: bytes32("m"),
                testCommitment: keccak256(abi.encode(client, keccak256(bytes("t")), bytes32(0))),
                specCid: "spec"
            })
        );
        (, uint64 revealEnd,,,) = orders.windows(id);
        vm.warp(revealEnd);
        vm.prank(client);
        orders.releaseTestData(id, "t", bytes32(0));
        _register(VALIDATOR, min); // reveals a validation now, then leaves
        vm.prank(alice);
        stakes.requestUnregister();
        assertEq(orders.reclaimableAt(id), block.timestamp + sys.MAX_LIFETIME() - 1 hours - 2 * reveal + sys.GRACE());
        assertLt(orders.reclaimableAt(id), stakes.stakerOf(alice).unbondingEnd, "stake leaves before the order is due");
    }

    /// @notice A validator exposed to an order placed under a long lifetime must not get its
    ///         stake out before that order's reclaim time, whatever the committee does to the
    ///         parameters meanwhile. Lowering maxOrderLifetime and then the unbonding period
    ///         while an order placed under the old bound is open used to be accepted (the bound
    ///         was checked against the current parameters only), and its validator walked away a
    ///         week before the order's settlement was due. Now the period change is refused.
    function test_lowerUnbondingLeavesOpenExposureCovered() public {
        OrderBook orders = sys.orders();
        address client = makeAddr("client");
        vm.prank(holder);
        token.transfer(client, 100 ether);
        vm.prank(client);
        token.approve(address(orders), type(uint256).max);
        // 10 days of windows, most of them after the test data (exposure from t3 on)
        uint32 validate = 5 days;
        uint32 challenge = uint32(sys.MAX_LIFETIME() - 1 hours - 4 * 600 - validate);
        vm.prank(client);
        uint256 id = orders.placeOrder(
            IOrderBook.OrderParams({
                reward: 100 ether,
                trainDuration: 1 hours,
                validateDuration: validate,
                challengeDuration: challenge,
                revealDuration: 600,
                modelType: bytes32("m"),
                testCommitment: keccak256(abi.encode(client, keccak256(bytes("t")), bytes32(0))),
                specCid: "spec"
            })
        );
        (, uint64 revealEnd,,,) = orders.windows(id);
        vm.warp(revealEnd);
        vm.prank(client);
        orders.releaseTestData(id, "t", bytes32(0));

        _register(VALIDATOR, min); // alice reveals a (wrong) validation now, off-chain
        sys.tryAct(address(orders), abi.encodeCall(IOrderBook.setMaxOrderLifetime, (uint32(2 days))));
        sys.tryAct(address(stakes), abi.encodeCall(IStakeRegistry.setUnbondingPeriod, (5 days)));
        vm.prank(alice);
        stakes.requestUnregister();
        vm.warp(stakes.stakerOf(alice).unbondingEnd);
        vm.prank(alice);
        (bool withdrew,) = address(stakes).call(abi.encodeCall(IStakeRegistry.withdraw, ()));
        assertFalse(
            withdrew && block.timestamp < orders.reclaimableAt(id),
            "exposed stake left before the settlement that may slash it was due"
        );
    }

    /// @notice After the bounds go down, the unbonding period follows only once every order
    ///         placed under the old bounds is past its latest reclaim time; the refusal says when.
    function test_unbondingFollowsLoweredBoundsOnceEarlierOrdersAreDue() public {
        OrderBook orders = sys.orders();
        uint64 changedAt = uint64(block.timestamp);
        sys.act(address(orders), abi.encodeCall(IOrderBook.setMaxOrderLifetime, (uint32(2 days))));
        uint64 latest = changedAt + sys.MAX_LIFETIME() + sys.GRACE();
        assertEq(orders.latestReclaimAt(), latest, "orders placed under 10 days may be due that late");
        vm.warp(block.timestamp + 1 days);
        _expectActionFailed(
            address(stakes),
            abi.encodeCall(IStakeRegistry.setUnbondingPeriod, (5 days)),
            abi.encodeWithSelector(IOrderBook.OrdersOutliveUnbonding.selector, latest, block.timestamp + 5 days)
        );
        vm.warp(latest - 5 days + 1);
        sys.act(address(stakes), abi.encodeCall(IStakeRegistry.setUnbondingPeriod, (5 days)));
        assertEq(stakes.unbondingPeriod(), 5 days);
        vm.warp(latest);
        assertEq(orders.latestReclaimAt(), block.timestamp + 2 days + sys.GRACE(), "the current bounds again");
    }

    function _expectActionFailed(address target, bytes memory data, bytes memory reason) internal {
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.ActionFailed.selector, reason));
        sys.act(target, data);
    }

    // ---------------------------------------------------------------- fuzz

    function testFuzz_stakeRoundTrip(uint8 roles, uint256 first, uint256 more, uint256 waited) public {
        roles = uint8(bound(roles, 1, 15));
        uint256 required = stakes.requiredStake(roles);
        first = bound(first, required, 100_000 ether);
        more = bound(more, 1, 100_000 ether);
        waited = bound(waited, sys.UNBONDING(), 10 * 365 days);
        uint256 start = token.balanceOf(alice);

        _register(roles, first);
        vm.prank(alice);
        stakes.addStake(more);
        assertEq(stakes.stakerOf(alice).stake, first + more);
        assertEq(token.balanceOf(address(stakes)), first + more);
        assertTrue(stakes.hasRoles(alice, roles));

        vm.prank(alice);
        stakes.requestUnregister();
        vm.warp(block.timestamp + waited);
        vm.prank(alice);
        stakes.withdraw();
        assertEq(token.balanceOf(alice), start);
        assertEq(token.balanceOf(address(stakes)), 0);
    }

    function testFuzz_noWithdrawBeforeUnbondingEnds(uint256 waited) public {
        waited = bound(waited, 0, sys.UNBONDING() - 1);
        _register(MINER, min);
        vm.prank(alice);
        stakes.requestUnregister();
        vm.warp(block.timestamp + waited);
        vm.expectRevert();
        vm.prank(alice);
        stakes.withdraw();
        assertEq(token.balanceOf(address(stakes)), min);
    }

    function testFuzz_registerBelowRequiredRefused(uint8 roles, uint256 amount) public {
        roles = uint8(bound(roles, 1, 15));
        uint256 required = stakes.requiredStake(roles);
        amount = bound(amount, 0, required - 1);
        vm.expectRevert(abi.encodeWithSelector(IStakeRegistry.InsufficientStake.selector, amount, required));
        _register(roles, amount);
    }
}
