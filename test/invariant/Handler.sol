// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {PoTToken} from "../../contracts/PoTToken.sol";
import {StakeRegistry} from "../../contracts/StakeRegistry.sol";
import {OrderBook} from "../../contracts/OrderBook.sol";
import {ChallengeManager} from "../../contracts/ChallengeManager.sol";
import {RewardMultisig} from "../../contracts/RewardMultisig.sol";
import {IOrderBook} from "../../contracts/interfaces/IOrderBook.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {IChallengeManager} from "../../contracts/interfaces/IChallengeManager.sol";
import {Settlement, OrderSettlement, Payout, Slash, ChallengeVerdict} from "../../contracts/interfaces/ISettlement.sol";
import {PoTSystem} from "../utils/PoTFixture.sol";
import {CheatCodes} from "../utils/Test.sol";

/// @notice Drives a whole PoT deployment with bounded random calls for the invariant campaign:
///         clients place, release and reclaim orders, stakers register, top up and leave,
///         verifiers commit, reveal and reclaim challenges, the committee settles with k
///         signatures, and attackers try to settle with k-1 signatures, settle twice, or call the
///         committee-only functions themselves. Every entry point first moves time forward to the
///         window its action needs (or returns when that window has passed), so with
///         `fail_on_revert` any revert is a disagreement between this model and the contracts.
///         Ghost counters record every attack that succeeded; the invariants require zero.
contract Handler is CheatCodes {
    uint8 internal constant VERIFIER = 4;
    uint256 internal constant FUNDS = 50_000_000 ether;
    uint256 internal constant RECENT = 4;

    PoTSystem public immutable sys;
    PoTToken public immutable token;
    StakeRegistry public immutable stakes;
    OrderBook public immutable orders;
    ChallengeManager public immutable challenges;
    RewardMultisig public immutable multisig;

    struct ChallengeRef {
        uint256 orderId;
        address challenger;
    }

    address[] internal _clients;
    address[] internal _stakers;
    /// @dev Every challenge committed, so reveals and reclaims find one instead of guessing
    ///      an (order, challenger) pair.
    ChallengeRef[] internal _challenged;

    /// @notice Next settlement nonce the committee uses.
    uint256 public nonce;
    /// @notice Attacks that went through (the invariants require 0 of each).
    uint256 public underThresholdSettlements;
    uint256 public doubleSettlements;
    uint256 public wrongTotalSettlements;
    uint256 public outsiderMoves;
    /// @notice Orders this handler settled or reclaimed: they must never be open again.
    mapping(uint256 => bool) public closed;
    /// @notice How often each action took effect, not just got called (early returns do not
    ///         count): test_handlerActionsTakeEffect checks every action can still happen.
    mapping(bytes32 => uint256) public done;

    constructor(PoTSystem sys_, address holder) {
        sys = sys_;
        token = sys_.token();
        stakes = sys_.stakes();
        orders = sys_.orders();
        challenges = sys_.challenges();
        multisig = sys_.multisig();
        for (uint256 i; i < 3; ++i) {
            _clients.push(makeAddr(string.concat("client", _digit(i))));
        }
        for (uint256 i; i < 5; ++i) {
            _stakers.push(makeAddr(string.concat("staker", _digit(i))));
        }
        vm.startPrank(holder);
        for (uint256 i; i < _clients.length; ++i) {
            token.transfer(_clients[i], FUNDS);
        }
        for (uint256 i; i < _stakers.length; ++i) {
            token.transfer(_stakers[i], FUNDS);
        }
        vm.stopPrank();
        for (uint256 i; i < _clients.length; ++i) {
            vm.prank(_clients[i]);
            token.approve(address(orders), type(uint256).max);
        }
        for (uint256 i; i < _stakers.length; ++i) {
            vm.startPrank(_stakers[i]);
            token.approve(address(stakes), type(uint256).max);
            token.approve(address(challenges), type(uint256).max);
            vm.stopPrank();
        }
    }

    // ---------------------------------------------------------------- views for the invariants

    function clients() external view returns (address[] memory) {
        return _clients;
    }

    function stakers() external view returns (address[] memory) {
        return _stakers;
    }

    // ---------------------------------------------------------------- time

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + bound(dt, 1, 2 days));
    }

    // ---------------------------------------------------------------- orders

    function placeOrder(
        uint256 clientSeed,
        uint256 reward,
        uint256 train,
        uint256 reveal,
        uint256 validate,
        uint256 window
    ) external {
        address client = _clients[clientSeed % _clients.length];
        uint256 id = orders.orderCount() + 1;
        IOrderBook.OrderParams memory p = IOrderBook.OrderParams({
            reward: uint96(bound(reward, 1, 10_000 ether)),
            trainDuration: uint32(bound(train, 1 hours, 3 days)),
            validateDuration: uint32(bound(validate, 1 hours, 1 days)),
            challengeDuration: uint32(bound(window, 1 hours, 1 days)),
            revealDuration: uint32(bound(reveal, sys.MIN_REVEAL(), 1 days)),
            modelType: bytes32("classification-accuracy-v1"),
            testCommitment: keccak256(abi.encode(client, keccak256(bytes(_testCid(id))), _testSalt(id))),
            specCid: "spec"
        });
        vm.prank(client);
        orders.placeOrder(p);
        ++done["placeOrder"];
    }

    function releaseTestData(uint256 orderSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed);
        if (id != 0 && o.t3 == 0) _release(id, o);
    }

    function reclaim(uint256 orderSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed);
        if (id == 0 || o.status != IOrderBook.Status.Open) return;
        uint64 due = orders.reclaimableAt(id);
        if (block.timestamp < due) vm.warp(due);
        vm.prank(o.client);
        orders.reclaim(id);
        ++done["reclaim"];
        closed[id] = true;
    }

    // ---------------------------------------------------------------- stakes

    function register(uint256 stakerSeed, uint256 roles, uint256 extra) external {
        address who = _stakers[stakerSeed % _stakers.length];
        IStakeRegistry.Staker memory s = stakes.stakerOf(who);
        if (s.unbondingEnd != 0) return;
        uint8 newRoles = uint8(bound(roles, 1, 15));
        uint256 required = stakes.requiredStake(s.roles | newRoles);
        uint256 missing = required > s.stake ? required - s.stake : 0;
        vm.prank(who);
        stakes.register(newRoles, missing + bound(extra, 0, 1_000 ether));
        ++done["register"];
    }

    function addStake(uint256 stakerSeed, uint256 amount) external {
        address who = _stakers[stakerSeed % _stakers.length];
        IStakeRegistry.Staker memory s = stakes.stakerOf(who);
        if (s.roles == 0 || s.unbondingEnd != 0) return;
        vm.prank(who);
        stakes.addStake(bound(amount, 1, 1_000 ether));
        ++done["addStake"];
    }

    function requestUnregister(uint256 stakerSeed) external {
        address who = _stakers[stakerSeed % _stakers.length];
        IStakeRegistry.Staker memory s = stakes.stakerOf(who);
        if (s.roles == 0 || s.unbondingEnd != 0) return;
        vm.prank(who);
        stakes.requestUnregister();
        ++done["requestUnregister"];
    }

    function withdraw(uint256 stakerSeed) external {
        address who = _stakers[stakerSeed % _stakers.length];
        IStakeRegistry.Staker memory s = stakes.stakerOf(who);
        if (s.unbondingEnd == 0 || s.locked != 0) return;
        if (block.timestamp < s.unbondingEnd) vm.warp(s.unbondingEnd);
        vm.prank(who);
        stakes.withdraw();
        ++done["withdraw"];
    }

    // ---------------------------------------------------------------- challenges

    /// @notice Releases the order's test data first when it is still due (a challenge window
    ///         opens only after a release, and a campaign rarely lands both in the short window
    ///         otherwise), then commits a challenge by a verifier.
    function commitChallenge(uint256 orderSeed, uint256 stakerSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed);
        if (id == 0) return;
        if (o.t3 == 0) {
            if (!_release(id, o)) return;
            o = orders.getOrder(id);
        }
        address who = _verifier(id, stakerSeed);
        if (who == address(0)) return;
        (uint64 start, uint64 end,) = _challengeWindows(o);
        if (block.timestamp >= end) return;
        if (block.timestamp < start) vm.warp(start);
        vm.prank(who);
        challenges.commitChallenge(id, keccak256(abi.encode(id, who, _vid(id), _challengeSalt(id, who))));
        _challenged.push(ChallengeRef(id, who));
        ++done["commitChallenge"];
    }

    function revealChallenge(uint256 seed) external {
        (uint256 id, address who) = _pickChallenge(seed);
        if (id == 0 || challenges.getChallenge(id, who).status != IChallengeManager.Status.Committed) return;
        (, uint64 start, uint64 end) = _challengeWindows(orders.getOrder(id));
        if (block.timestamp >= end) return;
        if (block.timestamp < start) vm.warp(start);
        vm.prank(who);
        challenges.revealChallenge(id, _vid(id), _challengeSalt(id, who));
        ++done["revealChallenge"];
    }

    function reclaimChallengeStake(uint256 seed) external {
        (uint256 id, address who) = _pickChallenge(seed);
        if (id == 0 || !_unresolved(id, who)) return;
        (,, uint64 end) = _challengeWindows(orders.getOrder(id));
        uint64 due = end + orders.settlementGrace();
        if (block.timestamp < due) vm.warp(due);
        vm.prank(who);
        challenges.reclaimStake(id);
        ++done["reclaimChallengeStake"];
    }

    // =================================================================================================
    // SETTLEMENT FORMAT: everything that builds, signs or executes a settlement batch, or calls the
    // committee-only entry points, is below this line. Adapt this section (and only this one) when
    // the batch format, nonces, epochs or deadlines change.
    // =================================================================================================

    /// @notice The committee settles one open order (winner, committee tax), slashes one staker
    ///         and resolves every open challenge on the order, signed by k members.
    function settle(uint256 orderSeed, uint256 winnerSeed, uint256 taxBps, uint256 slashSeed, uint256 slashAmount)
        external
    {
        // Every other call settles a challenged order, so that verdicts execute as well.
        (uint256 id, IOrderBook.Order memory o) =
            orderSeed % 2 == 0 ? _pickChallengedOrder(orderSeed >> 1) : _pickOrder(orderSeed);
        if (id == 0 || o.status != IOrderBook.Status.Open) return;
        _warpToSettlement(id, o);
        Settlement memory batch = _batch(id, o, winnerSeed, taxBps, slashSeed, slashAmount);
        _settle(batch, sys.THRESHOLD());
        ++done["settle"];
        done["slash"] += batch.slashes.length;
        done["verdict"] += batch.verdicts.length;
        closed[id] = true;
    }

    /// @notice Attack: a valid batch with one signature short of the threshold.
    function settleWithTooFewSignatures(uint256 orderSeed, uint256 winnerSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed);
        if (id == 0 || o.status != IOrderBook.Status.Open) return;
        _warpToSettlement(id, o);
        Settlement memory batch = _batch(id, o, winnerSeed, 0, 0, 0);
        try this.settleAs(batch, sys.THRESHOLD() - 1) {
            ++underThresholdSettlements;
            closed[id] = true;
        } catch {}
    }

    /// @notice Attack: k members sign a second settlement of an order that is already closed.
    function settleAgain(uint256 orderSeed, uint256 winnerSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed);
        if (id == 0 || o.status == IOrderBook.Status.Open) return;
        Settlement memory batch = _batch(id, o, winnerSeed, 0, 0, 0);
        try this.settleAs(batch, sys.THRESHOLD()) {
            ++doubleSettlements;
        } catch {}
    }

    /// @notice Attack: k members sign a batch whose payouts miss the escrow by `delta` (over or
    ///         under); the contract must take exactly the escrow or nothing.
    function settleWrongTotal(uint256 orderSeed, uint256 winnerSeed, uint256 delta, bool over) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed);
        if (id == 0 || o.status != IOrderBook.Status.Open) return;
        _warpToSettlement(id, o);
        Settlement memory batch = _batch(id, o, winnerSeed, 0, 0, 0);
        Payout memory first = batch.orders[0].payouts[0];
        delta = bound(delta, 1, over ? 1_000 ether : first.amount == 0 ? 1 : first.amount);
        if (!over && first.amount == 0) return;
        first.amount = over ? first.amount + delta : first.amount - delta;
        try this.settleAs(batch, sys.THRESHOLD()) {
            ++wrongTotalSettlements;
            closed[id] = true;
        } catch {}
    }

    /// @notice A staker calls the committee-only entry points directly.
    function outsiderMovesMoney(uint256 orderSeed, uint256 stakerSeed) external {
        (uint256 id,) = _pickOrder(orderSeed);
        address who = _stakers[stakerSeed % _stakers.length];
        Payout[] memory all = new Payout[](1);
        all[0] = Payout(who, id == 0 ? 0 : orders.getOrder(id).reward);
        vm.startPrank(who);
        try orders.settle(id, who, bytes32(0), all) {
            ++outsiderMoves;
        } catch {}
        try stakes.slash(_stakers[(stakerSeed % _stakers.length + 1) % _stakers.length], 1, who) {
            ++outsiderMoves;
        } catch {}
        try challenges.resolve(id, who, true, address(0), who) {
            ++outsiderMoves;
        } catch {}
        vm.stopPrank();
    }

    /// @dev External so an attack can catch its revert; only this handler may call it.
    function settleAs(Settlement memory batch, uint256 signers) external {
        require(msg.sender == address(this), "handler only");
        _settle(batch, signers);
    }

    function _settle(Settlement memory batch, uint256 signers) internal {
        bytes memory sigs = sys.signDigest(multisig.settlementDigest(batch), signers);
        multisig.executeSigned(batch, sigs);
        ++nonce;
    }

    function _warpToSettlement(uint256 id, IOrderBook.Order memory o) internal {
        (uint64 trainEnd,,,, uint64 challengeRevealEnd) = orders.windows(id);
        uint64 earliest = o.t3 == 0 ? trainEnd : challengeRevealEnd;
        if (block.timestamp < earliest) vm.warp(earliest);
    }

    function _batch(
        uint256 id,
        IOrderBook.Order memory o,
        uint256 winnerSeed,
        uint256 taxBps,
        uint256 slashSeed,
        uint256 slashAmount
    ) internal view returns (Settlement memory batch) {
        address winner = _stakers[winnerSeed % _stakers.length];
        batch.nonce = nonce;
        batch.orders = new OrderSettlement[](1);
        batch.orders[0] =
            OrderSettlement(id, winner, keccak256(abi.encode("model", id)), _payouts(o.reward, winner, taxBps));
        batch.slashes = _slashes(_stakers[slashSeed % _stakers.length], slashAmount);
        batch.verdicts = _verdicts(id, winner, winnerSeed);
    }

    /// @dev The winner gets the reward less the committee tax; the tax is split equally among the
    ///      members, the dust to the first.
    function _payouts(uint256 reward, address winner, uint256 taxBps) internal view returns (Payout[] memory p) {
        address[] memory committee = sys.members();
        uint256 n = committee.length;
        uint256 tax = reward * bound(taxBps, 0, 2_000) / 10_000;
        p = new Payout[](1 + n);
        p[0] = Payout(winner, reward - tax);
        for (uint256 i; i < n; ++i) {
            p[1 + i] = Payout(committee[i], tax / n + (i == 0 ? tax % n : 0));
        }
    }

    /// @dev At most one slash, of at most the staker's whole stake, to the treasury.
    function _slashes(address staker, uint256 amount) internal view returns (Slash[] memory s) {
        uint256 stake = stakes.stakerOf(staker).stake;
        amount = stake == 0 ? 0 : bound(amount, 0, stake);
        s = new Slash[](amount == 0 ? 0 : 1);
        if (amount != 0) s[0] = Slash(staker, amount, multisig.treasury());
    }

    /// @dev A verdict for every unresolved challenge on the order; `bits` decides which are upheld
    ///      (a rejected one names the winner as the validator, who gets half the cStake).
    function _verdicts(uint256 id, address validator, uint256 bits)
        internal
        view
        returns (ChallengeVerdict[] memory v)
    {
        uint256 open;
        for (uint256 i; i < _stakers.length; ++i) {
            if (_unresolved(id, _stakers[i])) ++open;
        }
        v = new ChallengeVerdict[](open);
        for (uint256 i; i < _stakers.length; ++i) {
            address c = _stakers[i];
            if (!_unresolved(id, c)) continue;
            bool upheld = (bits >> i) & 1 == 1;
            v[--open] = ChallengeVerdict(id, c, upheld, upheld ? address(0) : validator);
        }
    }

    // =================================================================================================
    // end of the settlement format section
    // =================================================================================================

    // ---------------------------------------------------------------- internals

    /// @dev One of the RECENT most recent orders: older ones are mostly closed or past every
    ///      window, and picking them would only make early returns.
    function _pickOrder(uint256 seed) internal view returns (uint256 id, IOrderBook.Order memory o) {
        uint256 count = orders.orderCount();
        if (count == 0) return (0, o);
        id = count - seed % (count < RECENT ? count : RECENT);
        o = orders.getOrder(id);
    }

    /// @dev The client opens its test commitment, at the start of the release window if that is
    ///      still ahead; false when the window has passed.
    function _release(uint256 id, IOrderBook.Order memory o) internal returns (bool) {
        if (o.status != IOrderBook.Status.Open) return false;
        (, uint64 revealEnd, uint64 releaseEnd,,) = orders.windows(id);
        if (block.timestamp >= releaseEnd) return false;
        if (block.timestamp < revealEnd) vm.warp(revealEnd);
        vm.prank(o.client);
        orders.releaseTestData(id, _testCid(id), _testSalt(id));
        ++done["releaseTestData"];
        return true;
    }

    /// @dev One of the RECENT most recent challenges.
    function _pickChallenge(uint256 seed) internal view returns (uint256 id, address who) {
        uint256 n = _challenged.length;
        if (n == 0) return (0, address(0));
        ChallengeRef memory c = _challenged[n - 1 - seed % (n < RECENT ? n : RECENT)];
        return (c.orderId, c.challenger);
    }

    /// @dev A staker holding the VERIFIER role with no challenge on the order yet, from `seed` on.
    function _verifier(uint256 id, uint256 seed) internal view returns (address) {
        for (uint256 i; i < _stakers.length; ++i) {
            address who = _stakers[(seed % _stakers.length + i) % _stakers.length];
            if (
                stakes.hasRoles(who, VERIFIER)
                    && challenges.getChallenge(id, who).status == IChallengeManager.Status.None
            ) return who;
        }
        return address(0);
    }

    function _pickChallengedOrder(uint256 seed) internal view returns (uint256 id, IOrderBook.Order memory o) {
        (id,) = _pickChallenge(seed);
        if (id != 0) o = orders.getOrder(id);
    }

    function _unresolved(uint256 id, address who) internal view returns (bool) {
        IChallengeManager.Status st = challenges.getChallenge(id, who).status;
        return st == IChallengeManager.Status.Committed || st == IChallengeManager.Status.Revealed;
    }

    /// @dev [start, commitEnd) commits, [commitEnd, revealEnd) reveals (ChallengeManager's windows).
    function _challengeWindows(IOrderBook.Order memory o)
        internal
        pure
        returns (uint64 start, uint64 commitEnd, uint64 revealEnd)
    {
        start = uint64(o.t3) + o.validateDuration + o.revealDuration;
        commitEnd = start + o.challengeDuration;
        revealEnd = commitEnd + o.revealDuration;
    }

    function _testCid(uint256 id) internal pure returns (string memory) {
        return string.concat("test-data-", _digit(id % 10));
    }

    function _testSalt(uint256 id) internal pure returns (bytes32) {
        return keccak256(abi.encode("test salt", id));
    }

    function _vid(uint256 id) internal pure returns (bytes32) {
        return keccak256(abi.encode("vid", id));
    }

    function _challengeSalt(uint256 id, address who) internal pure returns (bytes32) {
        return keccak256(abi.encode("challenge salt", id, who));
    }

    function _digit(uint256 i) internal pure returns (string memory) {
        return string(abi.encodePacked(bytes1(uint8(48 + i))));
    }
}
