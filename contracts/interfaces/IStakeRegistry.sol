// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Stakes of PoT participants, by role.
/// @notice Roles are a bitmask: MINER=1, VALIDATOR=2, VERIFIER=4, AGGREGATOR=8.
interface IStakeRegistry {
    /// @notice A staker's on-chain record.
    struct Staker {
        uint96 stake;
        uint96 locked;
        uint8 roles;
        uint48 unbondingEnd;
    }

    error ZeroAmount();
    error InvalidRoles(uint8 roles);
    error InsufficientStake(uint256 stake, uint256 required);
    error NotRegistered(address staker);
    error Unbonding(address staker, uint48 unbondingEnd);
    error NotUnbonding(address staker);
    error UnbondingNotOver(address staker, uint48 unbondingEnd, uint64 now_);
    error StakeLocked(address staker, uint96 locked);
    error LockExceedsStake(address staker, uint256 amount, uint96 free);
    error UnlockExceedsLocked(address staker, uint256 amount, uint96 locked);
    error UnbondingPeriodTooLong(uint256 period, uint256 max);
    error OnlyMultisig(address caller);
    error ZeroAddress();

    /// @notice `staker` registered or added roles, staking `amount` more (total `stake`).
    /// @param staker the account
    /// @param roles the account's role bitmask after the call
    /// @param amount tokens added by this call
    /// @param stake the account's total stake
    event Registered(address indexed staker, uint8 roles, uint256 amount, uint256 stake);
    /// @notice `staker` added `amount` to its stake.
    /// @param staker the account
    /// @param amount tokens added
    /// @param stake the account's total stake
    event StakeAdded(address indexed staker, uint256 amount, uint256 stake);
    /// @notice `staker` left its roles; its stake is withdrawable at `unbondingEnd`.
    /// @param staker the account
    /// @param unbondingEnd block time from which `withdraw` succeeds
    event UnregisterRequested(address indexed staker, uint48 unbondingEnd);
    /// @notice `staker` withdrew its whole stake.
    /// @param staker the account
    /// @param amount tokens returned
    event Withdrawn(address indexed staker, uint256 amount);
    /// @notice The committee locked `amount` of `staker`'s stake (it cannot be withdrawn).
    /// @param staker the account
    /// @param amount tokens locked by this call
    /// @param locked total locked
    event Locked(address indexed staker, uint256 amount, uint256 locked);
    /// @notice The committee unlocked `amount` of `staker`'s stake.
    /// @param staker the account
    /// @param amount tokens unlocked by this call
    /// @param locked total locked
    event Unlocked(address indexed staker, uint256 amount, uint256 locked);
    /// @notice A settlement slashed `amount` of `staker`'s stake to `to`.
    /// @param staker the slashed account
    /// @param to the receiver (challenger or treasury)
    /// @param amount tokens moved
    event Slashed(address indexed staker, address indexed to, uint256 amount);
    /// @notice A settlement's slash found nothing to take (the stake is gone, or no receiver).
    /// @param staker the account
    /// @param to the receiver named by the settlement
    /// @param amount what the settlement asked for
    event SlashSkipped(address indexed staker, address indexed to, uint256 amount);
    /// @notice The committee changed the minimum stake of `role`.
    /// @param role a single role bit
    /// @param amount the new minimum
    event MinStakeChanged(uint8 indexed role, uint256 amount);
    /// @notice The committee changed the unbonding period.
    /// @param period seconds between requestUnregister and withdraw
    event UnbondingPeriodChanged(uint256 period);

    /// @notice Register `roles` (bitmask) staking `amount` more; adds roles when already registered.
    /// @param roles role bitmask, nonzero, within MINER|VALIDATOR|VERIFIER|AGGREGATOR
    /// @param amount tokens to pull from the caller (needs an allowance)
    function register(uint8 roles, uint256 amount) external;
    /// @notice Add `amount` to the caller's stake.
    /// @param amount tokens to pull from the caller
    function addStake(uint256 amount) external;
    /// @notice Leave every role; the stake is withdrawable after the unbonding period.
    function requestUnregister() external;
    /// @notice Withdraw the whole stake once the unbonding period is over and nothing is locked.
    function withdraw() external;
    /// @notice Lock `amount` of `staker`'s stake (committee only).
    /// @param staker the account
    /// @param amount tokens to lock
    function lock(address staker, uint256 amount) external;
    /// @notice Unlock `amount` of `staker`'s stake (committee only).
    /// @param staker the account
    /// @param amount tokens to unlock
    function unlock(address staker, uint256 amount) external;
    /// @notice Move up to `amount` of `staker`'s stake to `to` (settlement only); never reverts
    ///         for a shrunken stake: it takes what is there.
    /// @param staker the slashed account
    /// @param amount tokens to move at most
    /// @param to the receiver (zero: nothing is taken)
    /// @return taken tokens moved
    function slash(address staker, uint256 amount, address to) external returns (uint256 taken);
    /// @notice Set the minimum stake of one role (committee only).
    /// @param role a single role bit
    /// @param amount the new minimum
    function setMinStake(uint8 role, uint256 amount) external;
    /// @notice Set the unbonding period (committee only).
    /// @param period seconds, at most MAX_UNBONDING_PERIOD, above OrderBook's
    ///        maxOrderLifetime + settlementGrace, and long enough that now + period is after
    ///        OrderBook's latestReclaimAt (orders placed under longer bounds)
    function setUnbondingPeriod(uint256 period) external;
    /// @notice Seconds between requestUnregister and withdraw.
    /// @return seconds
    function unbondingPeriod() external view returns (uint48);

    /// @notice The record of `staker`.
    /// @param staker the account
    /// @return the packed record
    function stakerOf(address staker) external view returns (Staker memory);
    /// @notice Whether `staker` holds every role in `roles` with enough stake and is not unbonding.
    /// @param staker the account
    /// @param roles role bitmask
    /// @return true when active in those roles
    function hasRoles(address staker, uint8 roles) external view returns (bool);
    /// @notice Stake required for the role bitmask `roles` (sum over its roles).
    /// @param roles role bitmask
    /// @return the minimum total stake
    function requiredStake(uint8 roles) external view returns (uint256);
}
