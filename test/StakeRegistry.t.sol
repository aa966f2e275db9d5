// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {PoTToken} from "../contracts/PoTToken.sol";
import {StakeRegistry} from "../contracts/StakeRegistry.sol";
import {IStakeRegistry} from "../contracts/interfaces/IStakeRegistry.sol";
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
