// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title PoT utility token
/// @notice Plain ERC-20 with EIP-2612 permit; the whole supply is minted once, at deployment.
contract PoTToken is ERC20, ERC20Permit {
    /// @param holder receives the whole supply
    /// @param supply total supply (fixed forever; must fit uint96, the width PoT stores amounts in)
    constructor(address holder, uint256 supply) ERC20("Proof of Training", "POT") ERC20Permit("Proof of Training") {
        require(supply <= type(uint96).max, "supply exceeds uint96");
        _mint(holder, supply);
    }
}
