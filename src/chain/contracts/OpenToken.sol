// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title OPEN for local chains and tests. On a real network the token address comes from config.
/// @notice Permit (EIP-2612) lets a client approve and deposit in one transaction.
contract OpenToken is ERC20, ERC20Permit, Ownable {
    constructor(address initialOwner) ERC20("OpenLedger", "OPEN") ERC20Permit("OpenLedger") Ownable(initialOwner) {}

    /// @notice Only the owner mints: local chains fund their test accounts this way.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
