// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Commit-reveal challenges against validations, with a locked cStake.
interface IChallengeManager {
    enum Status {
        None,
        Committed,
        Revealed,
        Resolved
    }

    /// @notice One challenger's challenge on one order.
    struct Challenge {
        uint96 stake;
        Status status;
        bytes32 commitment;
        bytes32 vid;
    }

    error NotVerifier(address caller);
    error AlreadyChallenged(uint256 orderId, address challenger);
    error NoChallenge(uint256 orderId, address challenger);
    error NotCommitted(uint256 orderId, address challenger);
    error BadOpening(uint256 orderId, address challenger);
    error OutsideWindow(uint256 orderId, uint64 now_, uint64 start, uint64 end);
    error TestDataNotReleased(uint256 orderId);
    error TooEarly(uint256 orderId, uint64 now_, uint64 earliest);
    error OnlyMultisig(address caller);
    error ZeroAddress();
    error ZeroChallengeStake();

    /// @notice `challenger` committed a challenge on `orderId`, locking `stake`.
    /// @param orderId the order
    /// @param challenger the verifier
    /// @param commitment keccak256(abi.encode(orderId, challenger, vid, salt))
    /// @param stake locked cStake
    event ChallengeCommitted(uint256 indexed orderId, address indexed challenger, bytes32 commitment, uint256 stake);
    /// @notice `challenger` revealed which validation it challenges.
    /// @param orderId the order
    /// @param challenger the verifier
    /// @param vid keccak256(abi.encode(orderId, validator, mid))
    event ChallengeRevealed(uint256 indexed orderId, address indexed challenger, bytes32 indexed vid);
    /// @notice A settlement resolved the challenge.
    /// @param orderId the order
    /// @param challenger the verifier
    /// @param upheld true: stake returned; false: half to `validator`, half to the treasury
    /// @param validator the challenged validator
    event ChallengeResolved(uint256 indexed orderId, address indexed challenger, bool upheld, address validator);
    /// @notice A settlement's verdict found no pending challenge (reclaimed or never made).
    /// @param orderId the order
    /// @param challenger the verifier
    event VerdictSkipped(uint256 indexed orderId, address indexed challenger);
    /// @notice No verdict came in time; the challenger took its stake back.
    /// @param orderId the order
    /// @param challenger the verifier
    /// @param amount tokens returned
    event ChallengeStakeReclaimed(uint256 indexed orderId, address indexed challenger, uint256 amount);
    /// @notice The committee changed cStake.
    /// @param cStake tokens locked per challenge
    event ChallengeStakeChanged(uint256 cStake);

    /// @notice Commit a challenge in [validationRevealEnd, challengeEnd), locking cStake (allowance needed).
    /// @param orderId the order
    /// @param commitment keccak256(abi.encode(orderId, msg.sender, vid, salt))
    function commitChallenge(uint256 orderId, bytes32 commitment) external;
    /// @notice Reveal the challenged validation in [challengeEnd, challengeRevealEnd).
    /// @param orderId the order
    /// @param vid the challenged validation id
    /// @param salt the commitment's salt
    function revealChallenge(uint256 orderId, bytes32 vid, bytes32 salt) external;
    /// @notice Take the cStake back when no verdict came by the order's reclaim time
    ///         (challengeRevealEnd + the order's settlementGrace).
    /// @param orderId the order
    function reclaimStake(uint256 orderId) external;
    /// @notice Resolve a challenge (settlement only), at or after the order's challenge reveals
    ///         ended; a challenge no longer pending is skipped (VerdictSkipped), not reverted on.
    /// @param orderId the order
    /// @param challenger the verifier
    /// @param upheld the verdict
    /// @param validator receives half the stake when rejected
    /// @param treasury receives the other half when rejected
    /// @return resolved false when skipped
    function resolve(uint256 orderId, address challenger, bool upheld, address validator, address treasury)
        external
        returns (bool resolved);
    /// @notice Set cStake (committee only).
    /// @param cStake tokens locked per challenge, nonzero
    function setChallengeStake(uint256 cStake) external;

    /// @notice A challenge's record.
    /// @param orderId the order
    /// @param challenger the verifier
    /// @return the record
    function getChallenge(uint256 orderId, address challenger) external view returns (Challenge memory);
}
