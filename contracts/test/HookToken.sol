// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Test-only: the callback any receiver of this token gets (ERC-777-like hook).
interface ITokenReceiverHook {
    function onTokenReceived(address from, uint256 amount) external;
}

/// @title HookToken (tests only, never deployed by `pot contracts deploy`)
/// @notice An ERC-20 that calls `onTokenReceived` on a contract receiver after every transfer, so
///         tests can try to re-enter PoT contracts in the middle of a token move.
contract HookToken is ERC20 {
    /// @notice Receivers that asked for the hook (like an ERC-1820 registration for ERC-777).
    mapping(address => bool) public wantsHook;

    constructor(address holder, uint256 supply) ERC20("Hook Token", "HOOK") {
        _mint(holder, supply);
    }

    function registerHook() external {
        wantsHook[msg.sender] = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (wantsHook[to] && from != address(0)) {
            ITokenReceiverHook(to).onTokenReceived(from, value);
        }
    }
}

/// @title Reenterer (tests only)
/// @notice A receiver that, on the first token it receives, calls `target` with `data` and records
///         whether that re-entrant call succeeded. It never reverts itself, so a guarded contract's
///         refusal shows up as `lastOk == false` instead of failing the outer transfer.
contract Reenterer is ITokenReceiverHook {
    address public target;
    bytes public data;
    bool public armed;
    bool public attempted;
    bool public lastOk;
    bytes public lastReturn;

    function arm(address target_, bytes calldata data_) external {
        target = target_;
        data = data_;
        armed = true;
    }

    /// @notice Forward any call (register, placeOrder, approve...) so the contract acts as a user.
    function exec(address to, bytes calldata callData) external returns (bytes memory) {
        (bool ok, bytes memory ret) = to.call(callData);
        if (!ok) {
            assembly {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        return ret;
    }

    function onTokenReceived(address, uint256) external {
        if (!armed) return;
        armed = false;
        attempted = true;
        (bool ok, bytes memory ret) = target.call(data);
        lastOk = ok;
        lastReturn = ret;
    }
}
