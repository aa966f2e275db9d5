// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {PoTToken} from "../contracts/PoTToken.sol";
import {Test} from "./utils/Test.sol";

/// @notice The two ways a settlement could pay its recipients, measured on the real token:
///         a transfer per recipient inside the settlement (what OrderBook does), or a claimable
///         balance written by the settlement and a claim transaction per recipient later.
contract PayoutStylesPayer {
    IERC20 internal immutable token;
    mapping(address => uint256) public claimable;

    constructor(IERC20 token_) {
        token = token_;
    }

    function pay(address[] calldata to, uint256[] calldata amount) external {
        for (uint256 i; i < to.length; ++i) {
            token.transfer(to[i], amount[i]);
        }
    }

    function accrue(address[] calldata to, uint256[] calldata amount) external {
        for (uint256 i; i < to.length; ++i) {
            claimable[to[i]] += amount[i];
        }
    }

    function claim() external {
        uint256 amount = claimable[msg.sender];
        claimable[msg.sender] = 0;
        token.transfer(msg.sender, amount);
    }
}

/// @dev `forge test --match-contract PayoutStyles -vv` prints the figures docs/SETTLEMENT.md quotes.
///      Each test function is one transaction: every slot it touches starts cold, as in a real
///      settlement. A claim is its own transaction: 21,000 intrinsic gas plus 4 calldata bytes
///      (64 gas) on top of what the call executes, minus the 2,600 of a cold account access to
///      the payer (a transaction's own `to` is warm).
contract PayoutStylesTest is Test {
    event log_named_uint(string key, uint256 val);

    uint256 internal constant RECIPIENTS = 130; // 100 winners + 30 committee members
    uint256 internal constant CLAIM_TX_OVERHEAD = 21_000 + 4 * 16 - 2_600;

    PoTToken internal token;
    PayoutStylesPayer internal payer;
    PayoutStylesPayer internal standing; // every recipient still has an unclaimed balance here
    address[] internal to;
    uint256[] internal amount;

    function setUp() public {
        token = new PoTToken(address(this), 1_000_000 ether);
        payer = new PayoutStylesPayer(IERC20(address(token)));
        token.transfer(address(payer), 100_000 ether);
        standing = new PayoutStylesPayer(IERC20(address(token)));
        for (uint256 i; i < RECIPIENTS; ++i) {
            address r = makeAddr(string.concat("recipient", vm.toString(i)));
            to.push(r);
            amount.push(1 ether + i);
            token.transfer(r, 1); // holders: every recipient already has a balance slot
        }
        uint256[] memory dust = new uint256[](RECIPIENTS);
        for (uint256 i; i < RECIPIENTS; ++i) {
            dust[i] = 1;
        }
        standing.accrue(to, dust);
        // a claimable balance from an earlier settlement, for the claim test
        address[] memory one = new address[](1);
        uint256[] memory a = new uint256[](1);
        one[0] = to[0];
        a[0] = 5 ether;
        payer.accrue(one, a);
    }

    function test_transferPerRecipientVersusClaimableAccrual() public {
        uint256 g = gasleft();
        payer.pay(to, amount);
        uint256 paid = g - gasleft();
        assertEq(token.balanceOf(to[RECIPIENTS - 1]), 1 ether + RECIPIENTS);
        emit log_named_uint("transfer per recipient, gas per recipient", paid / RECIPIENTS);
    }

    /// After a claim the slot is zero again: the next settlement's accrual is a fresh write.
    function test_accrualWritesOneSlotPerRecipient() public {
        uint256 perRecipient = _accrue(payer);
        assertEq(payer.claimable(to[1]), 1 ether + 1);
        emit log_named_uint("accrual in the settlement, gas per recipient", perRecipient);
    }

    function test_accrualToUnclaimedBalances() public {
        uint256 perRecipient = _accrue(standing);
        assertEq(standing.claimable(to[1]), 1 ether + 2);
        emit log_named_uint("accrual onto an unclaimed balance, gas per recipient", perRecipient);
    }

    function _accrue(PayoutStylesPayer p) internal returns (uint256 perRecipient) {
        uint256 g = gasleft();
        p.accrue(to, amount);
        perRecipient = (g - gasleft()) / RECIPIENTS;
    }

    function test_claimIsItsOwnTransaction() public {
        vm.prank(to[0]);
        uint256 g = gasleft();
        payer.claim();
        uint256 claimed = g - gasleft() + CLAIM_TX_OVERHEAD;
        assertEq(payer.claimable(to[0]), 0);
        emit log_named_uint("claim transaction, gas", claimed);
    }
}
