// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {PoTToken} from "../../contracts/PoTToken.sol";
import {StakeRegistry} from "../../contracts/StakeRegistry.sol";
import {OrderBook} from "../../contracts/OrderBook.sol";
import {ChallengeManager} from "../../contracts/ChallengeManager.sol";
import {RewardMultisig} from "../../contracts/RewardMultisig.sol";
import {IOrderBook} from "../../contracts/interfaces/IOrderBook.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {IChallengeManager} from "../../contracts/interfaces/IChallengeManager.sol";
import {CheatCodes} from "./Test.sol";

/// @notice A whole PoT deployment as `pot contracts deploy` makes it (same order, the multisig's
///         address predicted from the deployer's nonce, the same default parameters), with a
///         committee whose keys the tests know.
contract PoTSystem is CheatCodes {
    uint256 public constant SUPPLY = 1_000_000_000 ether;
    uint96 public constant MIN_STAKE = 100 ether;
    uint96 public constant MIN_AGGREGATOR_STAKE = 1_000 ether;
    uint48 public constant UNBONDING = 7 days;
    uint32 public constant MIN_REVEAL = 600;
    uint32 public constant GRACE = 7 days;
    uint96 public constant CHALLENGE_STAKE = 50 ether;
    uint256 public constant MEMBERS = 4;
    uint256 public constant THRESHOLD = 3;

    PoTToken public immutable token;
    StakeRegistry public immutable stakes;
    OrderBook public immutable orders;
    ChallengeManager public immutable challenges;
    RewardMultisig public immutable multisig;
    address public immutable treasury;

    address[] internal _members;
    uint256[] internal _memberKeys;

    /// @param holder receives the whole token supply
    constructor(address holder) {
        treasury = makeAddr("treasury");
        for (uint256 i; i < MEMBERS; ++i) {
            (address m, uint256 key) = makeAddrAndKey(string.concat("member", _digit(i)));
            _members.push(m);
            _memberKeys.push(key);
        }
        // Contracts deploy with nonce 1; the four after the token follow it.
        uint256 nonce = vm.getNonce(address(this));
        address predicted = vm.computeCreateAddress(address(this), nonce + 4);
        token = new PoTToken(holder, SUPPLY);
        uint96[4] memory mins = [MIN_STAKE, MIN_STAKE, MIN_STAKE, MIN_AGGREGATOR_STAKE];
        stakes = new StakeRegistry(IERC20(address(token)), predicted, mins, UNBONDING);
        orders = new OrderBook(IERC20(address(token)), predicted, MIN_REVEAL, GRACE);
        challenges = new ChallengeManager(
            IERC20(address(token)),
            IOrderBook(address(orders)),
            IStakeRegistry(address(stakes)),
            predicted,
            CHALLENGE_STAKE
        );
        multisig = new RewardMultisig(
            IOrderBook(address(orders)),
            IStakeRegistry(address(stakes)),
            IChallengeManager(address(challenges)),
            _members,
            THRESHOLD,
            treasury
        );
        require(address(multisig) == predicted, "multisig address prediction");
        vm.label(address(token), "PoTToken");
        vm.label(address(stakes), "StakeRegistry");
        vm.label(address(orders), "OrderBook");
        vm.label(address(challenges), "ChallengeManager");
        vm.label(address(multisig), "RewardMultisig");
    }

    function members() external view returns (address[] memory) {
        return _members;
    }

    /// @notice Concatenated r||s||v signatures of `digest` by the first `count` members.
    function signDigest(bytes32 digest, uint256 count) external view returns (bytes memory sigs) {
        for (uint256 i; i < count; ++i) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(_memberKeys[i], digest);
            sigs = bytes.concat(sigs, r, s, bytes1(v));
        }
    }

    function _digit(uint256 i) private pure returns (string memory) {
        return string(abi.encodePacked(bytes1(uint8(48 + i))));
    }
}
