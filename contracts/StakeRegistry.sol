// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {IOrderBook} from "./interfaces/IOrderBook.sol";

/// @title StakeRegistry
/// @notice Holds every participant's stake. Guarantees: the token balance of this contract equals
///         the sum of all stakes; stake leaves only by its owner's `withdraw` after the unbonding
///         period (and with nothing locked) or by a `slash` inside a k-approved settlement. The
///         unbonding period stays above OrderBook's `maxOrderLifetime + settlementGrace` (and above
///         what is left of orders placed under longer bounds: `latestReclaimAt`), so a
///         staker who asks to leave right after misbehaving in an order is still here when the
///         settlement that slashes it is due. A slash takes what is there and never reverts.
contract StakeRegistry is IStakeRegistry, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint8 public constant MINER = 1;
    uint8 public constant VALIDATOR = 2;
    uint8 public constant VERIFIER = 4;
    uint8 public constant AGGREGATOR = 8;
    uint8 internal constant ALL_ROLES = 15;
    /// @notice Upper bound of the unbonding period (keeps block.timestamp + period in uint48).
    uint256 public constant MAX_UNBONDING_PERIOD = 365 days;

    IERC20 public immutable token;
    /// @notice RewardMultisig: the only caller of lock/unlock/slash and the parameter setters.
    address public immutable multisig;
    /// @notice The OrderBook whose order lifetime and grace the unbonding period must exceed.
    IOrderBook public immutable orderBook;

    uint96[4] internal _minStake;
    uint48 public unbondingPeriod;
    mapping(address => Staker) internal _stakers;

    modifier onlyMultisig() {
        if (msg.sender != multisig) revert OnlyMultisig(msg.sender);
        _;
    }

    /// @param token_ the staked token
    /// @param multisig_ the RewardMultisig (predicted address at deployment)
    /// @param orderBook_ the OrderBook (predicted address: it is deployed next and checks the
    ///        exposure bound against this contract's period in its constructor)
    /// @param minStakes minimum stake of MINER, VALIDATOR, VERIFIER, AGGREGATOR
    /// @param unbondingPeriod_ seconds between requestUnregister and withdraw
    constructor(
        IERC20 token_,
        address multisig_,
        IOrderBook orderBook_,
        uint96[4] memory minStakes,
        uint48 unbondingPeriod_
    ) {
        if (address(token_) == address(0) || multisig_ == address(0) || address(orderBook_) == address(0)) {
            revert ZeroAddress();
        }
        if (unbondingPeriod_ > MAX_UNBONDING_PERIOD) revert UnbondingPeriodTooLong(unbondingPeriod_, MAX_UNBONDING_PERIOD);
        token = token_;
        multisig = multisig_;
        orderBook = orderBook_;
        _minStake = minStakes;
        unbondingPeriod = unbondingPeriod_;
    }

    /// @inheritdoc IStakeRegistry
    function register(uint8 roles, uint256 amount) external nonReentrant {
        if (roles == 0 || roles & ~ALL_ROLES != 0) revert InvalidRoles(roles);
        Staker memory s = _stakers[msg.sender];
        if (s.unbondingEnd != 0) revert Unbonding(msg.sender, s.unbondingEnd);
        uint8 newRoles = s.roles | roles;
        uint96 newStake = s.stake + SafeCast.toUint96(amount);
        uint256 required = requiredStake(newRoles);
        if (newStake < required) revert InsufficientStake(newStake, required);
        s.roles = newRoles;
        s.stake = newStake;
        _stakers[msg.sender] = s;
        emit Registered(msg.sender, newRoles, amount, newStake);
        if (amount != 0) token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStakeRegistry
    function addStake(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Staker storage s = _stakers[msg.sender];
        if (s.roles == 0) revert NotRegistered(msg.sender);
        if (s.unbondingEnd != 0) revert Unbonding(msg.sender, s.unbondingEnd);
        uint96 newStake = s.stake + SafeCast.toUint96(amount);
        s.stake = newStake;
        emit StakeAdded(msg.sender, amount, newStake);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStakeRegistry
    function requestUnregister() external {
        Staker storage s = _stakers[msg.sender];
        if (s.roles == 0) revert NotRegistered(msg.sender);
        if (s.unbondingEnd != 0) revert Unbonding(msg.sender, s.unbondingEnd);
        uint48 end = uint48(block.timestamp) + unbondingPeriod;
        s.unbondingEnd = end;
        emit UnregisterRequested(msg.sender, end);
    }

    /// @inheritdoc IStakeRegistry
    function withdraw() external nonReentrant {
        Staker memory s = _stakers[msg.sender];
        if (s.roles == 0) revert NotRegistered(msg.sender);
        if (s.unbondingEnd == 0) revert NotUnbonding(msg.sender);
        // The unbonding period is what lets a settlement still slash a staker who misbehaved
        // just before leaving.
        if (block.timestamp < s.unbondingEnd) {
            revert UnbondingNotOver(msg.sender, s.unbondingEnd, uint64(block.timestamp));
        }
        if (s.locked != 0) revert StakeLocked(msg.sender, s.locked);
        delete _stakers[msg.sender];
        emit Withdrawn(msg.sender, s.stake);
        if (s.stake != 0) token.safeTransfer(msg.sender, s.stake);
    }

    /// @inheritdoc IStakeRegistry
    function lock(address staker, uint256 amount) external onlyMultisig {
        Staker storage s = _stakers[staker];
        uint96 free = s.stake - s.locked;
        if (amount == 0) revert ZeroAmount();
        if (amount > free) revert LockExceedsStake(staker, amount, free);
        uint96 locked = s.locked + uint96(amount);
        s.locked = locked;
        emit Locked(staker, amount, locked);
    }

    /// @inheritdoc IStakeRegistry
    function unlock(address staker, uint256 amount) external onlyMultisig {
        Staker storage s = _stakers[staker];
        if (amount == 0) revert ZeroAmount();
        if (amount > s.locked) revert UnlockExceedsLocked(staker, amount, s.locked);
        uint96 locked = s.locked - uint96(amount);
        s.locked = locked;
        emit Unlocked(staker, amount, locked);
    }

    /// @inheritdoc IStakeRegistry
    function slash(address staker, uint256 amount, address to) external onlyMultisig nonReentrant returns (uint256 taken) {
        Staker storage s = _stakers[staker];
        uint96 stake = s.stake;
        // Take what is there: a batch never reverts because a stake shrank (another slash came
        // first), and a zero receiver would burn, so it takes nothing.
        taken = to == address(0) ? 0 : (amount < stake ? amount : stake);
        if (taken == 0) {
            emit SlashSkipped(staker, to, amount);
            return 0;
        }
        uint96 left = stake - uint96(taken);
        s.stake = left;
        // Locked stake is part of the stake: what is left stays locked up to what is left.
        if (s.locked > left) s.locked = left;
        emit Slashed(staker, to, taken);
        token.safeTransfer(to, taken);
    }

    /// @inheritdoc IStakeRegistry
    function setMinStake(uint8 role, uint256 amount) external onlyMultisig {
        uint256 i = _roleIndex(role);
        _minStake[i] = SafeCast.toUint96(amount);
        emit MinStakeChanged(role, amount);
    }

    /// @inheritdoc IStakeRegistry
    function setUnbondingPeriod(uint256 period) external onlyMultisig {
        if (period > MAX_UNBONDING_PERIOD) revert UnbondingPeriodTooLong(period, MAX_UNBONDING_PERIOD);
        uint256 lifetime = orderBook.maxOrderLifetime();
        uint256 grace = orderBook.settlementGrace();
        if (lifetime + grace >= period) revert IOrderBook.ExposureOutlivesUnbonding(lifetime, grace, period);
        // The bounds may have been lowered while orders placed under the old ones are open.
        uint64 latest = orderBook.latestReclaimAt();
        if (block.timestamp + period <= latest) revert IOrderBook.OrdersOutliveUnbonding(latest, block.timestamp + period);
        unbondingPeriod = uint48(period);
        emit UnbondingPeriodChanged(period);
    }

    /// @inheritdoc IStakeRegistry
    function stakerOf(address staker) external view returns (Staker memory) {
        return _stakers[staker];
    }

    /// @inheritdoc IStakeRegistry
    function hasRoles(address staker, uint8 roles) external view returns (bool) {
        Staker memory s = _stakers[staker];
        return roles != 0 && s.unbondingEnd == 0 && s.roles & roles == roles && s.stake >= requiredStake(s.roles);
    }

    /// @inheritdoc IStakeRegistry
    function requiredStake(uint8 roles) public view returns (uint256 total) {
        for (uint256 i; i < 4; ++i) {
            if (roles & (1 << i) != 0) total += _minStake[i];
        }
    }

    /// @notice Minimum stake of a single role.
    /// @param role a single role bit
    /// @return the minimum
    function minStake(uint8 role) external view returns (uint256) {
        return _minStake[_roleIndex(role)];
    }

    function _roleIndex(uint8 role) internal pure returns (uint256) {
        if (role == MINER) return 0;
        if (role == VALIDATOR) return 1;
        if (role == VERIFIER) return 2;
        if (role == AGGREGATOR) return 3;
        revert InvalidRoles(role);
    }
}
