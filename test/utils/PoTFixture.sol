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
import {Action} from "../../contracts/interfaces/ISettlement.sol";
import {CheatCodes} from "./Test.sol";

/// @notice A whole PoT deployment as `pot contracts deploy` makes it (same order, the addresses
///         of the contracts deployed later predicted from the deployer's nonce, the same default
///         parameters), with a committee whose keys the tests know: a pool of POOL candidate
///         members, the first MEMBERS of them in the committee at deployment.
contract PoTSystem is CheatCodes {
    uint256 public constant SUPPLY = 1_000_000_000 ether;
    uint96 public constant MIN_STAKE = 100 ether;
    uint96 public constant MIN_AGGREGATOR_STAKE = 1_000 ether;
    // DeployParams' defaults (offchain/pot/chain/deployment.py): lifetime + grace < unbonding.
    uint48 public constant UNBONDING = 14 days;
    uint32 public constant MIN_REVEAL = 600;
    uint32 public constant GRACE = 2 days;
    uint32 public constant MAX_LIFETIME = 10 days;
    uint96 public constant CHALLENGE_STAKE = 50 ether;
    uint256 public constant MEMBERS = 4;
    uint256 public constant THRESHOLD = 3;
    uint256 public constant POOL = 7;

    PoTToken public immutable token;
    StakeRegistry public immutable stakes;
    OrderBook public immutable orders;
    ChallengeManager public immutable challenges;
    RewardMultisig public immutable multisig;
    address public immutable treasury;

    /// @notice The next governance action nonce `act` uses (actions have their own nonce space).
    uint256 public actionNonce;

    address[] internal _pool;
    mapping(address => uint256) internal _keyOf;

    /// @param holder receives the whole token supply
    constructor(address holder) {
        treasury = makeAddr("treasury");
        address[] memory initial = new address[](MEMBERS);
        for (uint256 i; i < POOL; ++i) {
            (address m, uint256 key) = makeAddrAndKey(string.concat("member", _digit(i)));
            _pool.push(m);
            _keyOf[m] = key;
            if (i < MEMBERS) initial[i] = m;
        }
        // The token first, then the four that reference each other by predicted address.
        uint256 nonce = vm.getNonce(address(this));
        address stakesAt = vm.computeCreateAddress(address(this), nonce + 1);
        address ordersAt = vm.computeCreateAddress(address(this), nonce + 2);
        address multisigAt = vm.computeCreateAddress(address(this), nonce + 4);
        token = new PoTToken(holder, SUPPLY);
        uint96[4] memory mins = [MIN_STAKE, MIN_STAKE, MIN_STAKE, MIN_AGGREGATOR_STAKE];
        stakes = new StakeRegistry(IERC20(address(token)), multisigAt, IOrderBook(ordersAt), mins, UNBONDING);
        orders = new OrderBook(
            IERC20(address(token)), multisigAt, IStakeRegistry(address(stakes)), MIN_REVEAL, GRACE, MAX_LIFETIME
        );
        challenges = new ChallengeManager(
            IERC20(address(token)),
            IOrderBook(address(orders)),
            IStakeRegistry(address(stakes)),
            multisigAt,
            CHALLENGE_STAKE
        );
        multisig = new RewardMultisig(
            IOrderBook(address(orders)),
            IStakeRegistry(address(stakes)),
            IChallengeManager(address(challenges)),
            initial,
            THRESHOLD,
            treasury
        );
        require(
            address(stakes) == stakesAt && address(orders) == ordersAt && address(multisig) == multisigAt,
            "address prediction"
        );
        vm.label(address(token), "PoTToken");
        vm.label(address(stakes), "StakeRegistry");
        vm.label(address(orders), "OrderBook");
        vm.label(address(challenges), "ChallengeManager");
        vm.label(address(multisig), "RewardMultisig");
    }

    /// @notice Every candidate member (whose key this fixture knows), in or out of the committee.
    function pool() external view returns (address[] memory) {
        return _pool;
    }

    /// @notice The current committee (RewardMultisig's order: a member's position is its bit).
    function members() external view returns (address[] memory) {
        return multisig.members();
    }

    /// @notice Concatenated r||s||v signatures of `digest` by `signers` (pool accounts), in order.
    function sign(bytes32 digest, address[] memory signers) public view returns (bytes memory sigs) {
        for (uint256 i; i < signers.length; ++i) {
            uint256 key = _keyOf[signers[i]];
            require(key != 0, "no key for signer");
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
            sigs = bytes.concat(sigs, r, s, bytes1(v));
        }
    }

    /// @notice Signatures of `digest` by the first `count` current members.
    function signDigest(bytes32 digest, uint256 count) public view returns (bytes memory) {
        address[] memory committee = multisig.members();
        require(count <= committee.length, "more signers than members");
        address[] memory signers = new address[](count);
        for (uint256 i; i < count; ++i) {
            signers[i] = committee[i];
        }
        return sign(digest, signers);
    }

    /// @notice A governance action in the current epoch under the next action nonce, valid for an
    ///         hour, with `count` signatures of current members.
    function action(address target, bytes memory data, uint256 count)
        public
        view
        returns (Action memory a, bytes memory sigs)
    {
        a = Action({
            nonce: actionNonce, epoch: multisig.epoch(), deadline: block.timestamp + 1 hours, target: target, data: data
        });
        sigs = signDigest(multisig.actionDigest(a), count);
    }

    /// @notice Executes `target.call(data)` through executeAction with k signatures; reverts as
    ///         the action does.
    function act(address target, bytes memory data) external {
        (Action memory a, bytes memory sigs) = action(target, data, multisig.threshold());
        multisig.executeAction(a, sigs);
        ++actionNonce;
    }

    /// @notice As `act`, returning whether the action executed instead of reverting.
    function tryAct(address target, bytes memory data) external returns (bool ok) {
        (Action memory a, bytes memory sigs) = action(target, data, multisig.threshold());
        try multisig.executeAction(a, sigs) {
            ++actionNonce;
            return true;
        } catch {
            return false;
        }
    }

    function _digit(uint256 i) private pure returns (string memory) {
        return string(abi.encodePacked(bytes1(uint8(48 + i))));
    }
}
