// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {PoTToken} from "../contracts/PoTToken.sol";
import {Test} from "./utils/Test.sol";

contract PoTTokenTest is Test {
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    uint256 internal constant SUPPLY = 1_000_000_000 ether;

    PoTToken internal token;
    address internal holder;
    uint256 internal holderKey;
    address internal alice = makeAddr("alice");
    address internal spender = makeAddr("spender");

    event Transfer(address indexed from, address indexed to, uint256 value);

    function setUp() public {
        (holder, holderKey) = makeAddrAndKey("holder");
        token = new PoTToken(holder, SUPPLY);
    }

    function _permitDigest(address owner, address to, uint256 value, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, to, value, nonce, deadline));
        return keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
    }

    function _permit(uint256 key, address to, uint256 value, uint256 deadline) internal {
        address owner = vm.addr(key);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, _permitDigest(owner, to, value, token.nonces(owner), deadline));
        token.permit(owner, to, value, deadline, v, r, s);
    }

    // ---------------------------------------------------------------- supply

    function test_wholeSupplyMintedOnceToHolder() public view {
        assertEq(token.name(), "Proof of Training");
        assertEq(token.symbol(), "POT");
        assertEq(token.decimals(), 18);
        assertEq(token.totalSupply(), SUPPLY);
        assertEq(token.balanceOf(holder), SUPPLY);
    }

    function test_supplyAboveUint96Refused() public {
        // PoT stores amounts as uint96: a larger supply could overflow escrow and stake sums.
        vm.expectRevert(bytes("supply exceeds uint96"));
        new PoTToken(holder, uint256(type(uint96).max) + 1);
    }

    // ---------------------------------------------------------------- transfers

    function test_transfer() public {
        vm.expectEmit(address(token));
        emit Transfer(holder, alice, 7 ether);
        vm.prank(holder);
        assertTrue(token.transfer(alice, 7 ether));
        assertEq(token.balanceOf(alice), 7 ether);
        assertEq(token.balanceOf(holder), SUPPLY - 7 ether);
    }

    function test_transferAboveBalanceRefused() public {
        vm.prank(holder);
        token.transfer(alice, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, 1 ether, 2 ether));
        vm.prank(alice);
        token.transfer(spender, 2 ether);
    }

    function test_transferToZeroRefused() public {
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, address(0)));
        vm.prank(holder);
        token.transfer(address(0), 1);
    }

    function test_transferFromSpendsAllowance() public {
        vm.prank(holder);
        token.approve(spender, 10 ether);
        vm.prank(spender);
        token.transferFrom(holder, alice, 4 ether);
        assertEq(token.allowance(holder, spender), 6 ether);
        assertEq(token.balanceOf(alice), 4 ether);

        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, spender, 6 ether, 7 ether)
        );
        vm.prank(spender);
        token.transferFrom(holder, alice, 7 ether);
    }

    // ---------------------------------------------------------------- permit (EIP-2612)

    function test_permitSetsAllowanceAndBumpsNonce() public {
        _permit(holderKey, spender, 5 ether, block.timestamp + 1 hours);
        assertEq(token.allowance(holder, spender), 5 ether);
        assertEq(token.nonces(holder), 1);
        vm.prank(spender);
        token.transferFrom(holder, alice, 5 ether);
        assertEq(token.balanceOf(alice), 5 ether);
    }

    function test_permitReplayRefused() public {
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 digest = _permitDigest(holder, spender, 5 ether, 0, deadline);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(holderKey, digest);
        token.permit(holder, spender, 5 ether, deadline, v, r, s);
        // The nonce moved on: the same signature now recovers to some other address.
        vm.expectRevert();
        token.permit(holder, spender, 5 ether, deadline, v, r, s);
        assertEq(token.nonces(holder), 1);
    }

    function test_permitAfterDeadlineRefused() public {
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 digest = _permitDigest(holder, spender, 5 ether, 0, deadline);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(holderKey, digest);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, deadline));
        token.permit(holder, spender, 5 ether, deadline, v, r, s);
    }

    function test_permitBySomeoneElseRefused() public {
        (address mallory, uint256 malloryKey) = makeAddrAndKey("mallory");
        uint256 deadline = block.timestamp + 1 hours;
        // Mallory signs a permit over the holder's tokens.
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(malloryKey, _permitDigest(holder, spender, 5 ether, 0, deadline));
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612InvalidSigner.selector, mallory, holder));
        token.permit(holder, spender, 5 ether, deadline, v, r, s);
        assertEq(token.allowance(holder, spender), 0);
    }

    // ---------------------------------------------------------------- fuzz

    function testFuzz_transferMovesExactlyAndConservesSupply(address to, uint256 amount, uint256 back) public {
        vm.assume(to != address(0) && to != holder);
        amount = bound(amount, 0, SUPPLY);
        back = bound(back, 0, amount);
        vm.prank(holder);
        token.transfer(to, amount);
        vm.prank(to);
        token.transfer(holder, back);
        assertEq(token.balanceOf(to), amount - back);
        assertEq(token.balanceOf(holder), SUPPLY - amount + back);
        assertEq(token.totalSupply(), SUPPLY);
    }

    function testFuzz_permitByAnyKey(uint256 key, uint256 value, uint256 validFor) public {
        // Any valid secp256k1 key (the curve order bounds it).
        key = bound(key, 1, 115792089237316195423570985008687907852837564279074904382605163141518161494336);
        validFor = bound(validFor, 0, 365 days);
        address owner = vm.addr(key);
        vm.assume(owner != spender);
        uint256 deadline = block.timestamp + validFor;
        _permit(key, spender, value, deadline);
        assertEq(token.allowance(owner, spender), value);
        assertEq(token.nonces(owner), 1);
    }
}
