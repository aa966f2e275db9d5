// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IChallengeManager} from "./interfaces/IChallengeManager.sol";
import {IOrderBook} from "./interfaces/IOrderBook.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";

/// @title ChallengeManager
/// @notice Commit-reveal challenges against validations. Guarantees: the token balance of this
///         contract equals the sum of unresolved challenge stakes; a stake leaves once, through a
///         k-approved verdict after the order's challenge reveals ended or, if none came by the
///         order's reclaim time, back to its challenger. cStake is never zero: a challenge costs
///         something to lose. A verdict for a stake already gone is skipped, never reverted on.
contract ChallengeManager is IChallengeManager, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint8 internal constant VERIFIER = 4;

    IERC20 public immutable token;
    IOrderBook public immutable orderBook;
    IStakeRegistry public immutable stakeRegistry;
    /// @notice RewardMultisig: the only caller of resolve and setChallengeStake.
    address public immutable multisig;

    uint96 public challengeStake;
    mapping(uint256 => mapping(address => Challenge)) internal _challenges;

    modifier onlyMultisig() {
        if (msg.sender != multisig) revert OnlyMultisig(msg.sender);
        _;
    }

    /// @param token_ the staked token
    /// @param orderBook_ where order windows come from
    /// @param stakeRegistry_ where the VERIFIER role is checked
    /// @param multisig_ the RewardMultisig (predicted address at deployment)
    /// @param challengeStake_ cStake locked per challenge
    constructor(
        IERC20 token_,
        IOrderBook orderBook_,
        IStakeRegistry stakeRegistry_,
        address multisig_,
        uint96 challengeStake_
    ) {
        if (
            address(token_) == address(0) || address(orderBook_) == address(0)
                || address(stakeRegistry_) == address(0) || multisig_ == address(0)
        ) revert ZeroAddress();
        token = token_;
        orderBook = orderBook_;
        stakeRegistry = stakeRegistry_;
        multisig = multisig_;
        if (challengeStake_ == 0) revert ZeroChallengeStake();
        challengeStake = challengeStake_;
    }

    /// @inheritdoc IChallengeManager
    function commitChallenge(uint256 orderId, bytes32 commitment) external nonReentrant {
        if (!stakeRegistry.hasRoles(msg.sender, VERIFIER)) revert NotVerifier(msg.sender);
        (uint64 start, uint64 challengeEnd,) = _windows(orderId);
        if (block.timestamp < start || block.timestamp >= challengeEnd) {
            revert OutsideWindow(orderId, uint64(block.timestamp), start, challengeEnd);
        }
        Challenge storage c = _challenges[orderId][msg.sender];
        if (c.status != Status.None) revert AlreadyChallenged(orderId, msg.sender);
        uint96 stake = challengeStake;
        c.stake = stake;
        c.status = Status.Committed;
        c.commitment = commitment;
        emit ChallengeCommitted(orderId, msg.sender, commitment, stake);
        if (stake != 0) token.safeTransferFrom(msg.sender, address(this), stake);
    }

    /// @inheritdoc IChallengeManager
    function revealChallenge(uint256 orderId, bytes32 vid, bytes32 salt) external {
        Challenge storage c = _challenges[orderId][msg.sender];
        if (c.status == Status.None) revert NoChallenge(orderId, msg.sender);
        if (c.status != Status.Committed) revert NotCommitted(orderId, msg.sender);
        (, uint64 challengeEnd, uint64 end) = _windows(orderId);
        if (block.timestamp < challengeEnd || block.timestamp >= end) {
            revert OutsideWindow(orderId, uint64(block.timestamp), challengeEnd, end);
        }
        // Binding the challenger into the commitment stops a watcher from copying the reveal.
        if (keccak256(abi.encode(orderId, msg.sender, vid, salt)) != c.commitment) {
            revert BadOpening(orderId, msg.sender);
        }
        c.status = Status.Revealed;
        c.vid = vid;
        emit ChallengeRevealed(orderId, msg.sender, vid);
    }

    /// @inheritdoc IChallengeManager
    function reclaimStake(uint256 orderId) external nonReentrant {
        Challenge storage c = _challenges[orderId][msg.sender];
        if (c.status == Status.None || c.status == Status.Resolved) revert NoChallenge(orderId, msg.sender);
        // The order's own reclaim time: its grace was fixed when it was placed.
        uint64 reclaimAt = orderBook.reclaimableAt(orderId);
        if (block.timestamp < reclaimAt) revert TooEarly(orderId, uint64(block.timestamp), reclaimAt);
        uint96 stake = c.stake;
        c.status = Status.Resolved;
        c.stake = 0;
        emit ChallengeStakeReclaimed(orderId, msg.sender, stake);
        if (stake != 0) token.safeTransfer(msg.sender, stake);
    }

    /// @inheritdoc IChallengeManager
    function resolve(uint256 orderId, address challenger, bool upheld, address validator, address treasury)
        external
        onlyMultisig
        nonReentrant
        returns (bool resolved)
    {
        Challenge storage c = _challenges[orderId][challenger];
        // Reclaimed by its challenger before a late verdict (or never made): nothing to decide,
        // and the rest of the batch must still apply.
        if (c.status == Status.None || c.status == Status.Resolved) {
            emit VerdictSkipped(orderId, challenger);
            return false;
        }
        if (treasury == address(0)) revert ZeroAddress();
        // A verdict before the reveals end would decide a challenge its challenger may still open.
        (,, uint64 revealEnd) = _windows(orderId);
        if (block.timestamp < revealEnd) revert TooEarly(orderId, uint64(block.timestamp), revealEnd);
        resolved = true;
        uint96 stake = c.stake;
        c.status = Status.Resolved;
        c.stake = 0;
        emit ChallengeResolved(orderId, challenger, upheld, validator);
        if (stake == 0) return true;
        if (upheld) {
            token.safeTransfer(challenger, stake);
        } else {
            uint256 half = stake / 2;
            // An unrevealed challenge names no validator: all of it goes to the treasury.
            if (validator == address(0)) {
                token.safeTransfer(treasury, stake);
            } else {
                token.safeTransfer(validator, half);
                token.safeTransfer(treasury, stake - half);
            }
        }
    }

    /// @inheritdoc IChallengeManager
    function setChallengeStake(uint256 cStake) external onlyMultisig {
        if (cStake == 0) revert ZeroChallengeStake();
        challengeStake = SafeCast.toUint96(cStake);
        emit ChallengeStakeChanged(cStake);
    }

    /// @inheritdoc IChallengeManager
    function getChallenge(uint256 orderId, address challenger) external view returns (Challenge memory) {
        return _challenges[orderId][challenger];
    }

    /// @dev [start, challengeEnd) is the commit window, [challengeEnd, revealEnd) the reveal window.
    function _windows(uint256 orderId) internal view returns (uint64 start, uint64 challengeEnd, uint64 revealEnd) {
        IOrderBook.Order memory o = orderBook.getOrder(orderId);
        if (o.status == IOrderBook.Status.None) revert IOrderBook.UnknownOrder(orderId);
        if (o.t3 == 0) revert TestDataNotReleased(orderId);
        start = uint64(o.t3) + o.validateDuration + o.revealDuration;
        challengeEnd = start + o.challengeDuration;
        revealEnd = challengeEnd + o.revealDuration;
    }
}
