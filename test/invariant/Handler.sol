// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOrderBook} from "../../contracts/interfaces/IOrderBook.sol";
import {IStakeRegistry} from "../../contracts/interfaces/IStakeRegistry.sol";
import {IChallengeManager} from "../../contracts/interfaces/IChallengeManager.sol";
import {IRewardMultisig} from "../../contracts/interfaces/IRewardMultisig.sol";
import {Settlement, OrderSettlement, Slash, ChallengeVerdict, Action} from "../../contracts/interfaces/ISettlement.sol";
import {PoTSystem} from "../utils/PoTFixture.sol";
import {SettlementModel} from "./SettlementModel.sol";

/// @notice Drives a whole PoT deployment with bounded random calls for the invariant campaign.
///         Honest actors: clients place, release and reclaim orders; stakers register, top up,
///         reveal validations (the exposure a later slash may take) and leave; verifiers commit,
///         reveal and reclaim challenges; the committee settles batches of several orders (some
///         of which cannot apply, for every reason a batch item is skipped), slashes and verdicts,
///         with k signatures or on the paper path (propose, confirm, execute), and changes its
///         membership, threshold and the protocol parameters through executeAction. Every honest
///         settlement is checked against SettlementModel's prediction: each known account's
///         balance moves by exactly what the rules say. Attackers: batches and actions with
///         k-1 signatures, a duplicated signer or a non-member, in the wrong epoch, past their
///         deadline, signed before a membership change, under a used nonce, before the order's
///         windows end; paper-path proposals with fewer than k confirmations, stale, or a
///         member's own batch racing the honest one; early reclaims, over-long orders, parameter
///         changes that would let exposed stake leave, and outsiders calling committee-only
///         functions. An attack that goes through is recorded as a breach (the invariants
///         require none). Entry points move time forward to the window their action needs (or
///         return when it passed), so with `fail_on_revert` any revert of an honest action is a
///         disagreement between the rules and the contracts.
contract Handler is SettlementModel {
    uint8 internal constant VALIDATOR = 2;
    uint8 internal constant VERIFIER = 4;
    uint256 internal constant FUNDS = 50_000_000 ether;
    /// @dev Recent orders, challenges and proposals are what actions pick from: older ones are
    ///      mostly closed or past every window, and picking them would only make early returns.
    uint256 internal constant RECENT = 6;
    /// @dev Item kinds of a batch's order: below SKIP_KINDS an order is made to fail one check.
    uint256 internal constant OVERPAY = 0;
    uint256 internal constant UNDERPAY = 1;
    uint256 internal constant TAX_ABOVE_ESCROW = 2;
    uint256 internal constant WINNER_NOT_FIRST = 3;
    uint256 internal constant WINNER_PAID_ZERO = 4;
    uint256 internal constant BAD_INDEX = 5;
    uint256 internal constant SKIP_KINDS = 6;
    /// @dev What an action needs of the order it picks (_pickOrder).
    uint256 internal constant ANY = 0;
    uint256 internal constant OPEN = 1;
    uint256 internal constant RELEASABLE = 2;
    uint256 internal constant VALIDATING = 3;
    uint256 internal constant CHALLENGEABLE = 4;
    uint256 internal constant EARLY = 5;

    struct ChallengeRef {
        uint256 orderId;
        address challenger;
    }

    /// @notice A validation a staker revealed for an order: if wrong, the order's settlement may
    ///         slash `amount`, so that much must stay staked (less what slashes took since,
    ///         `slashedBefore` being the staker's slashed total at the reveal) until the order's
    ///         last window plus its grace.
    struct Exposure {
        address staker;
        uint256 orderId;
        uint256 amount;
        uint256 slashedBefore;
    }

    /// @notice A paper-path proposal: the batch, and the approvals by member position.
    struct Proposal {
        uint256 id;
        uint256 epoch;
        uint256 approvals;
        bool executed;
        bytes batch;
    }

    address public immutable holder;
    address[] internal _clients;
    address[] internal _stakers;
    address[] internal _pool;
    ChallengeRef[] internal _challenged;
    Exposure[] internal _exposures;
    Proposal[] internal _proposals;
    /// @dev abi-encoded batches that executed (replay attacks reuse their nonces)
    bytes[] internal _executed;
    /// @dev A batch signed by k members before the latest membership change, never executed.
    bytes internal _staleBatch;
    bytes internal _staleSigs;

    /// @notice Next settlement nonce (reserved when a batch is built, executed or not).
    uint256 public nonce;
    /// @notice settlementGrace of each order when it was placed (the order keeps it).
    mapping(uint256 => uint256) public graceOf;
    /// @notice The latest reclaim time any order placed under earlier lifetime and grace bounds
    ///         may have: placed before the change, at t0 <= then, its windows end by then + the
    ///         old lifetime. The unbonding period may not be lowered to end before it.
    uint256 public earlierReclaimBound;
    /// @notice Stake each account lost to slashes, ever.
    mapping(address => uint256) public slashedFrom;
    /// @notice Orders settled or reclaimed: never open again.
    mapping(uint256 => bool) public closed;
    /// @notice How often each action took effect (early returns do not count), and each attack
    ///         was tried: test_handlerActionsTakeEffect checks every one can still happen.
    mapping(bytes32 => uint256) public done;
    /// @notice Attacks that went through; the invariants require none. `firstBreach` names one.
    uint256 public breaches;
    string public firstBreach;

    constructor(PoTSystem sys_, address holder_) SettlementModel(sys_) {
        holder = holder_;
        for (uint256 i; i < 3; ++i) {
            _clients.push(makeAddr(string.concat("client", _digit(i))));
        }
        for (uint256 i; i < 5; ++i) {
            _stakers.push(makeAddr(string.concat("staker", _digit(i))));
        }
        _pool = sys_.pool();
        _accounts.push(holder_);
        _accounts.push(sys_.treasury());
        _accounts.push(address(orders));
        _accounts.push(address(stakes));
        _accounts.push(address(challenges));
        _accounts.push(address(multisig));
        for (uint256 i; i < _clients.length; ++i) {
            _accounts.push(_clients[i]);
        }
        for (uint256 i; i < _stakers.length; ++i) {
            _accounts.push(_stakers[i]);
        }
        for (uint256 i; i < _pool.length; ++i) {
            _accounts.push(_pool[i]);
        }
        vm.startPrank(holder_);
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

    function accounts() external view returns (address[] memory) {
        return _accounts;
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
        IOrderBook.OrderParams memory p = _orderParams(client, id, reward, reveal, validate, window);
        uint256 rest = uint256(p.validateDuration) + p.challengeDuration + 4 * uint256(p.revealDuration);
        uint256 room = orders.maxOrderLifetime() - rest;
        // Every fifth order uses the whole lifetime allowed: the exposure bound's edge.
        p.trainDuration = uint32(train % 5 == 0 ? room : bound(train, 1 hours, room < 3 days ? room : 3 days));
        vm.prank(client);
        orders.placeOrder(p);
        graceOf[id] = orders.settlementGrace();
        ++done["placeOrder"];
    }

    /// @notice Attack: an order longer than maxOrderLifetime, or with no test commitment.
    function placeBadOrder(uint256 clientSeed, uint256 excess, bool noCommitment) external {
        address client = _clients[clientSeed % _clients.length];
        uint256 id = orders.orderCount() + 1;
        IOrderBook.OrderParams memory p = _orderParams(client, id, 1 ether, 0, 0, 0);
        uint256 rest = uint256(p.validateDuration) + p.challengeDuration + 4 * uint256(p.revealDuration);
        if (noCommitment) {
            p.trainDuration = 1 hours;
            p.testCommitment = bytes32(0);
        } else {
            p.trainDuration = uint32(orders.maxOrderLifetime() - rest + bound(excess, 1, 1 days));
        }
        vm.prank(client);
        try orders.placeOrder(p) {
            _breach(
                noCommitment ? "an order without a test commitment was placed" : "an order outlives maxOrderLifetime"
            );
            graceOf[id] = orders.settlementGrace();
        } catch {}
        ++done["attack:placeBadOrder"];
    }

    function releaseTestData(uint256 orderSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed, RELEASABLE);
        if (id != 0 && o.t3 == 0) _release(id, o);
    }

    /// @notice The client reclaims at the order's reclaim time as the rules give it (last window
    ///         + the grace the order was placed with), not as the contract reports it.
    function reclaim(uint256 orderSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed, OPEN);
        if (id == 0 || o.status != IOrderBook.Status.Open) return;
        uint256 due = _finalizable(o) + graceOf[id];
        if (block.timestamp < due) vm.warp(due);
        vm.prank(o.client);
        orders.reclaim(id);
        ++done["reclaim"];
        closed[id] = true;
    }

    /// @notice Attack: the client reclaims, or a challenger takes its cStake back, before the
    ///         order's reclaim time.
    function reclaimEarly(uint256 orderSeed, uint256 challengeSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed, OPEN);
        if (id == 0 || o.status != IOrderBook.Status.Open) return;
        if (block.timestamp >= _finalizable(o) + graceOf[id]) return;
        vm.prank(o.client);
        try orders.reclaim(id) {
            _breach("a client reclaimed before the order's grace ended");
            closed[id] = true;
        } catch {}
        (uint256 cid, address who) = _pickChallenge(challengeSeed, false);
        if (cid != 0 && _unresolved(cid, who)) {
            IOrderBook.Order memory co = orders.getOrder(cid);
            if (block.timestamp < _finalizable(co) + graceOf[cid]) {
                vm.prank(who);
                try challenges.reclaimStake(cid) {
                    _breach("a challenger reclaimed its cStake before the order's grace ended");
                } catch {}
            }
        }
        ++done["attack:reclaimEarly"];
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

    /// @notice A staker asks to leave; half the time the one that revealed a validation last
    ///         (the exposure the unbonding period must outlast).
    function requestUnregister(uint256 stakerSeed) external {
        address who = _stakers[stakerSeed % _stakers.length];
        if (stakerSeed % 2 == 0 && _exposures.length != 0) who = _exposures[_exposures.length - 1].staker;
        IStakeRegistry.Staker memory s = stakes.stakerOf(who);
        if (s.roles == 0 || s.unbondingEnd != 0) return;
        _requestUnregister(who);
    }

    /// @dev Asks to leave; the unbonding must outlast every order the staker validated (the
    ///      withdrawal is checked too, when it comes: this catches a short period even if no
    ///      withdrawal follows in time).
    function _requestUnregister(address who) internal {
        vm.prank(who);
        stakes.requestUnregister();
        ++done["requestUnregister"];
        uint256 end = stakes.stakerOf(who).unbondingEnd;
        for (uint256 i; i < _exposures.length; ++i) {
            Exposure memory e = _exposures[i];
            if (e.staker != who || !_exposed(e)) continue;
            ++done["requestUnregister while exposed"];
            if (end <= _finalizable(orders.getOrder(e.orderId)) + graceOf[e.orderId]) {
                _breach("an exposed staker's unbonding ends before its order is due");
            }
        }
    }

    /// @notice The staker withdraws as early as the contract lets it; then no order it revealed
    ///         a validation for may still be settled by the rules: its last window plus its
    ///         grace must lie before now (maxOrderLifetime + settlementGrace < unbondingPeriod).
    function withdraw(uint256 stakerSeed) external {
        address who;
        IStakeRegistry.Staker memory s;
        for (uint256 i; i < _stakers.length; ++i) {
            who = _stakers[(stakerSeed % _stakers.length + i) % _stakers.length];
            s = stakes.stakerOf(who);
            if (s.unbondingEnd != 0 && s.locked == 0) break;
        }
        if (s.unbondingEnd == 0 || s.locked != 0) return;
        if (block.timestamp < s.unbondingEnd) vm.warp(s.unbondingEnd);
        vm.prank(who);
        stakes.withdraw();
        ++done["withdraw"];
        for (uint256 i = _exposures.length; i > 0; --i) {
            Exposure memory e = _exposures[i - 1];
            if (e.staker != who) continue;
            if (_finalizable(orders.getOrder(e.orderId)) + graceOf[e.orderId] >= block.timestamp) {
                _breach("a staker withdrew while an order it validated could still be settled");
            }
            _exposures[i - 1] = _exposures[_exposures.length - 1];
            _exposures.pop();
        }
    }

    /// @notice A validator reveals a validation for an open order (off-chain; the ledger accepts
    ///         it only from an account holding VALIDATOR and not unbonding), inside the
    ///         validation windows; the test data is released first when still due. With `andLeave`
    ///         it asks to leave at once (issue 9, attack 2: reveal a wrong validation, then
    ///         withdraw before the settlement that slashes it).
    function revealValidation(uint256 orderSeed, uint256 stakerSeed, uint256 amount, bool andLeave) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed, VALIDATING);
        if (id == 0) return;
        address who = _validator(stakerSeed);
        if (who == address(0)) return;
        if (o.t3 == 0) {
            if (!_release(id, o)) return;
            o = orders.getOrder(id);
        }
        if (block.timestamp >= uint256(o.t3) + o.validateDuration + o.revealDuration) return;
        _pruneExposures();
        amount = bound(amount, 1, stakes.stakerOf(who).stake);
        _exposures.push(Exposure(who, id, amount, slashedFrom[who]));
        ++done["revealValidation"];
        if (andLeave) _requestUnregister(who);
    }

    /// @dev A staker holding VALIDATOR, from `seed` on; when none does, the seeded staker joins
    ///      as one if it can (not unbonding).
    function _validator(uint256 seed) internal returns (address) {
        for (uint256 i; i < _stakers.length; ++i) {
            address who = _stakers[(seed % _stakers.length + i) % _stakers.length];
            if (stakes.hasRoles(who, VALIDATOR)) return who;
        }
        address joining = _stakers[seed % _stakers.length];
        IStakeRegistry.Staker memory s = stakes.stakerOf(joining);
        if (s.unbondingEnd != 0) return address(0);
        uint256 required = stakes.requiredStake(s.roles | VALIDATOR);
        vm.prank(joining);
        stakes.register(VALIDATOR, required > s.stake ? required - s.stake : 0);
        ++done["register"];
        return joining;
    }

    /// @notice The first exposure not covered while its order can still be settled in time
    ///         (open, before its last window plus its grace): the staker's stake plus what slashes
    ///         took since the reveal is below the exposed amount. Empty when there is none.
    function uncoveredExposure() external view returns (string memory) {
        for (uint256 i; i < _exposures.length; ++i) {
            Exposure memory e = _exposures[i];
            if (!_exposed(e)) continue;
            uint256 covered = stakes.stakerOf(e.staker).stake + slashedFrom[e.staker] - e.slashedBefore;
            if (covered < e.amount) {
                return string.concat(
                    "stake of ", vm.toString(e.staker), " below its exposure to order ", vm.toString(e.orderId)
                );
            }
        }
        return "";
    }

    function _exposed(Exposure memory e) internal view returns (bool) {
        IOrderBook.Order memory o = orders.getOrder(e.orderId);
        return o.status == IOrderBook.Status.Open && block.timestamp <= _finalizable(o) + graceOf[e.orderId];
    }

    /// @dev Drops exposures whose order's last window plus grace has passed (the withdrawal
    ///         check would pass them anyway).
    function _pruneExposures() internal {
        for (uint256 i = _exposures.length; i > 0; --i) {
            uint256 id = _exposures[i - 1].orderId;
            if (block.timestamp <= _finalizable(orders.getOrder(id)) + graceOf[id]) continue;
            _exposures[i - 1] = _exposures[_exposures.length - 1];
            _exposures.pop();
        }
    }

    // ---------------------------------------------------------------- challenges

    /// @notice Releases the order's test data first when it is still due (a challenge window
    ///         opens only after a release, and a campaign rarely lands both in the short window
    ///         otherwise), then commits a challenge by a verifier.
    function commitChallenge(uint256 orderSeed, uint256 stakerSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed, CHALLENGEABLE);
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
        (uint256 id, address who) = _pickChallenge(seed, true);
        if (id == 0) return;
        (, uint64 start, uint64 end) = _challengeWindows(orders.getOrder(id));
        if (block.timestamp >= end) return;
        if (block.timestamp < start) vm.warp(start);
        vm.prank(who);
        challenges.revealChallenge(id, _vid(id), _challengeSalt(id, who));
        ++done["revealChallenge"];
    }

    function reclaimChallengeStake(uint256 seed) external {
        (uint256 id, address who) = _pickChallenge(seed, false);
        if (id == 0) return;
        uint256 due = _finalizable(orders.getOrder(id)) + graceOf[id];
        if (block.timestamp < due) vm.warp(due);
        vm.prank(who);
        challenges.reclaimStake(id);
        ++done["reclaimChallengeStake"];
    }

    // ---------------------------------------------------------------- settlement, k signatures

    /// @notice The committee executes a batch of 1-4 orders (some made to fail a check, some
    ///         closed, unknown or listed twice), slashes and verdicts with k signatures; the
    ///         chain must do exactly what the model predicts.
    function settle(uint256 seed, uint256 taxBps, uint256 slashSeed, uint256 slashAmount) external {
        Settlement memory b = _honestBatch(nonce++, seed, taxBps, slashSeed, slashAmount);
        Plan memory p = _predict(b);
        vm.assertFalse(p.reverts, "model: an honest batch would revert");
        multisig.executeSigned(b, _sign(multisig.settlementDigest(b), multisig.threshold(), seed, 0));
        _check(p, b, "executeSigned");
        _executedBatch(b, p);
        ++done["settle"];
    }

    /// @notice Attack: a valid batch signed by k-1 members, by k with one signer twice, or by k
    ///         with one non-member.
    function settleWithBadSignatures(uint256 seed, uint256 variant) external {
        Settlement memory b = _honestBatch(nonce++, seed, 1_000, seed >> 128, seed >> 64);
        uint256 k = multisig.threshold();
        variant %= 3;
        bytes memory sigs = _sign(multisig.settlementDigest(b), variant == 0 ? k - 1 : k, seed, variant);
        try multisig.executeSigned(b, sigs) {
            _breach(
                variant == 0
                    ? "a batch with k-1 signatures executed"
                    : variant == 1 ? "a batch with a duplicated signer executed" : "a non-member's signature counted"
            );
        } catch {}
        ++done[
            variant == 0
                ? bytes32("attack:k-1 signatures")
                : variant == 1 ? bytes32("attack:duplicate signer") : bytes32("attack:non-member signer")
        ];
    }

    /// @notice Attack: a batch signed by k members for another epoch, past its deadline, or
    ///         signed before the latest membership change.
    function settleStale(uint256 seed, uint256 variant) external {
        variant %= 3;
        Settlement memory b;
        bytes memory sigs;
        if (variant == 2) {
            if (_staleBatch.length == 0) return;
            b = abi.decode(_staleBatch, (Settlement));
            if (b.epoch == multisig.epoch()) return;
            sigs = _staleSigs;
        } else {
            b = _honestBatch(nonce++, seed, 500, seed >> 128, seed >> 64);
            if (variant == 0) {
                b.epoch = seed & 1 == 0 || b.epoch == 1 ? b.epoch + 1 : b.epoch - 1;
            } else {
                b.deadline = block.timestamp - bound(seed >> 8, 1, block.timestamp);
            }
            sigs = _sign(multisig.settlementDigest(b), multisig.threshold(), seed, 0);
        }
        try multisig.executeSigned(b, sigs) {
            _breach(
                variant == 0
                    ? "a batch for another epoch executed"
                    : variant == 1
                        ? "a batch past its deadline executed"
                        : "signatures from before a membership change counted"
            );
        } catch {}
        ++done[
            variant == 0
                ? bytes32("attack:wrong epoch")
                : variant == 1 ? bytes32("attack:expired") : bytes32("attack:stale signatures")
        ];
    }

    /// @notice Attack: k members sign another batch under a nonce that already executed, with a
    ///         new deadline and the current epoch (the ledger's re-issue of an expired batch).
    function replayNonce(uint256 seed) external {
        uint256 n = _executed.length;
        if (n == 0) return;
        Settlement memory old = abi.decode(_executed[n - 1 - seed % (n < RECENT ? n : RECENT)], (Settlement));
        Settlement memory b = _honestBatch(old.nonce, seed, 300, seed >> 128, seed >> 64);
        try multisig.executeSigned(b, _sign(multisig.settlementDigest(b), multisig.threshold(), seed, 0)) {
            _breach("a settlement nonce executed twice");
        } catch {}
        ++done["attack:replay nonce"];
    }

    /// @notice Attack: a batch (k signatures) paying an order, slashing for it, or resolving a
    ///         challenge on it before the order's last window ended.
    function settleTooEarly(uint256 orderSeed, uint256 which, uint256 seed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed, EARLY);
        if (id == 0 || o.status != IOrderBook.Status.Open || block.timestamp >= _finalizable(o)) return;
        Builder memory bld = _builder(nonce++, block.timestamp + 1 hours);
        which %= 3;
        if (which == 0) {
            // A whole refund to the client is allowed from trainEnd when no test data came.
            if (o.t3 == 0 && block.timestamp >= uint256(o.t0) + o.trainDuration) return;
            if (seed & 16 == 0) {
                _addOrder(bld, id, SKIP_KINDS, 1_000, seed);
            } else {
                // a refund before trainEnd, or after the test data came
                OrderSettlement memory os;
                os.orderId = id;
                os.payouts = new uint256[](1);
                os.payouts[0] = _word(_recipient(bld, o.client, false), o.reward);
                bld.s.orders[bld.no++] = os;
            }
        } else if (which == 1) {
            address who = _stakers[seed % _stakers.length];
            if (stakes.stakerOf(who).stake == 0) return;
            bld.s.slashes[bld.ns++] = Slash(id, who, 1, multisig.treasury());
        } else {
            address who = _stakers[seed % _stakers.length];
            if (!_unresolved(id, who)) return;
            bld.s.verdicts[bld.nv++] = ChallengeVerdict(id, who, seed & 1 == 1, address(0));
        }
        Settlement memory b = _finish(bld);
        try multisig.executeSigned(b, _sign(multisig.settlementDigest(b), multisig.threshold(), seed, 0)) {
            _breach(
                which == 0
                    ? "an order settled before its windows ended"
                    : which == 1
                        ? "a slash before its order's windows ended"
                        : "a verdict before the challenge reveals ended"
            );
        } catch {}
        ++done[
            which == 0
                ? bytes32("attack:early order")
                : which == 1 ? bytes32("attack:early slash") : bytes32("attack:early verdict")
        ];
    }

    // ---------------------------------------------------------------- settlement, the paper's path

    /// @notice A member proposes a batch; members confirm it and anyone executes it later
    ///         (confirmReward, executeReward), possibly across membership changes.
    function proposeReward(uint256 seed, uint256 memberSeed) external {
        Settlement memory b = _honestBatch(nonce++, seed, 800, seed >> 128, seed >> 64);
        // Longer than a signed batch's: confirmations come one call at a time.
        b.deadline = block.timestamp + bound(seed >> 200, 1 days, 30 days);
        address[] memory committee = multisig.members();
        vm.prank(committee[memberSeed % committee.length]);
        uint256 id = multisig.proposeReward(b);
        vm.assertEq(id, uint256(multisig.settlementDigest(b)) >> 160, "proposal id is not the batch digest's");
        _proposals.push(Proposal(id, b.epoch, 0, false, abi.encode(b)));
        ++done["proposeReward"];
    }

    /// @notice A member confirms the latest live proposal (current epoch, not executed) that is
    ///         short of k, the most confirmed first, so that some reach k between the other calls.
    function confirmReward(uint256 memberSeed) external {
        uint256 n = _proposals.length;
        uint256 k = multisig.threshold();
        uint256 best = type(uint256).max;
        uint256 most;
        for (uint256 j = n; j > 0 && j + 3 > n; --j) {
            Proposal storage cand = _proposals[j - 1];
            uint256 count = _popcount(cand.approvals);
            if (cand.executed || cand.epoch != multisig.epoch() || count >= k) continue;
            if (best == type(uint256).max || count > most) (best, most) = (j - 1, count);
        }
        if (best == type(uint256).max) return;
        Proposal storage prop = _proposals[best];
        address[] memory committee = multisig.members();
        for (uint256 i; i < committee.length; ++i) {
            uint256 pos = (memberSeed % committee.length + i) % committee.length;
            if (prop.approvals & (1 << pos) != 0) continue;
            vm.prank(committee[pos]);
            multisig.confirmReward(prop.id);
            prop.approvals |= 1 << pos;
            (uint256 approvals,) = multisig.proposalState(prop.id);
            vm.assertEq(approvals, _popcount(prop.approvals), "approvals of a proposal");
            ++done["confirmReward"];
            return;
        }
    }

    /// @notice Executes a recent proposal: it must execute exactly when it exists, has k
    ///         confirmations in the current epoch and its batch is still valid (deadline, nonce);
    ///         otherwise an execution is a breach.
    function executeReward(uint256 seed) external {
        uint256 n = _proposals.length;
        if (n == 0) return;
        Proposal storage prop = _proposals[n - 1 - seed % (n < 3 ? n : 3)];
        Settlement memory b = abi.decode(prop.batch, (Settlement));
        Plan memory p = _predict(b);
        bool approved = _popcount(prop.approvals) >= multisig.threshold();
        bool current = prop.epoch == multisig.epoch();
        if (!prop.executed && approved && current && !p.reverts) {
            multisig.executeReward(prop.id, b);
            _check(p, b, "executeReward");
            prop.executed = true;
            _executedBatch(b, p);
            ++done["executeReward"];
            return;
        }
        try multisig.executeReward(prop.id, b) {
            _breach(
                prop.executed
                    ? "a proposal executed twice"
                    : !current
                        ? "a proposal from an older epoch executed"
                        : !approved
                            ? "a proposal with fewer than k confirmations executed"
                            : "an invalid proposal executed"
            );
        } catch {}
        ++done["attack:executeReward refused"];
    }

    /// @notice The whole paper path in one call: propose, `confirms` members confirm, execute.
    ///         With fewer than k confirmations the execution is an attack.
    function paperPath(uint256 seed, uint256 confirms) external {
        Settlement memory b = _honestBatch(nonce++, seed, 1_200, seed >> 128, seed >> 64);
        address[] memory committee = multisig.members();
        uint256 n = committee.length;
        vm.prank(committee[seed % n]);
        uint256 id = multisig.proposeReward(b);
        uint256 approvals;
        confirms = bound(confirms, 0, n);
        for (uint256 i; i < confirms; ++i) {
            uint256 pos = (seed % n + i) % n;
            vm.prank(committee[pos]);
            multisig.confirmReward(id);
            approvals |= 1 << pos;
        }
        Plan memory p = _predict(b);
        bool executed;
        if (confirms >= multisig.threshold()) {
            multisig.executeReward(id, b);
            _check(p, b, "paperPath");
            _executedBatch(b, p);
            executed = true;
            ++done["paperPath"];
        } else {
            try multisig.executeReward(id, b) {
                _breach("a proposal with fewer than k confirmations executed");
            } catch {}
            ++done["attack:paper k-1"];
        }
        _proposals.push(Proposal(id, b.epoch, approvals, executed, abi.encode(b)));
    }

    /// @notice Attack (issue 9, 1): a member proposes its own batch under the next nonce (every
    ///         applying order's escrow and an innocent staker's whole stake to itself) before the
    ///         honest proposal. The honest members confirm the batch they computed: its id differs
    ///         from the attacker's, the attacker's proposal never reaches k, and the honest
    ///         approvals execute only the honest batch.
    function memberCapture(uint256 seed, uint256 memberSeed) external {
        Settlement memory h = _honestBatch(nonce++, seed, 700, seed >> 128, seed >> 64);
        address[] memory committee = multisig.members();
        uint256 n = committee.length;
        uint256 attackerPos = memberSeed % n;
        Settlement memory a = _stealingBatch(h, committee[attackerPos]);
        if (a.orders.length == 0 && a.slashes.length == 0) return;
        vm.prank(committee[attackerPos]);
        uint256 idA = multisig.proposeReward(a);
        vm.prank(committee[attackerPos]);
        multisig.confirmReward(idA);
        uint256 idH = multisig.proposalId(h);
        if (idH == idA) {
            _breach("a member's proposal took the honest batch's id");
            return;
        }
        vm.prank(committee[(attackerPos + 1) % n]);
        multisig.proposeReward(h);
        uint256 honest;
        for (uint256 i = 1; i < n && honest < multisig.threshold(); ++i) {
            vm.prank(committee[(attackerPos + i) % n]);
            multisig.confirmReward(idH);
            ++honest;
        }
        try multisig.executeReward(idA, a) {
            _breach("a member's own proposal executed on its own confirmation");
        } catch {}
        try multisig.executeReward(idH, a) {
            _breach("the honest confirmations executed another batch");
        } catch {}
        if (honest >= multisig.threshold()) {
            Plan memory p = _predict(h);
            multisig.executeReward(idH, h);
            _check(p, h, "memberCapture: honest batch");
            _executedBatch(h, p);
            try multisig.executeReward(idA, a) {
                _breach("a member's proposal executed under a used nonce");
            } catch {}
        }
        ++done["attack:member capture"];
    }

    // ---------------------------------------------------------------- governance

    /// @notice Adds a member, removes one, or changes the threshold, through executeAction (the
    ///         threshold raised or lowered first where the change needs it). A batch signed
    ///         just before becomes stale (settleStale tries it); pending proposals too.
    function changeMembership(uint256 seed, uint256 op) external {
        address[] memory committee = multisig.members();
        uint256 n = committee.length;
        uint256 k = multisig.threshold();
        uint256 e = multisig.epoch();
        op %= 3;
        if (op == 0) {
            // One pool account always stays out, to sign as a non-member.
            if (n + 1 >= _pool.length) return;
            address newcomer = _nonMember(seed);
            _stashSignedBatch(seed);
            if (2 * k <= n + 1) sys.act(address(multisig), abi.encodeCall(IRewardMultisig.setThreshold, (k + 1)));
            sys.act(address(multisig), abi.encodeCall(IRewardMultisig.addMember, (newcomer)));
        } else if (op == 1) {
            if (n <= 3) return;
            _stashSignedBatch(seed);
            if (k > n - 1) sys.act(address(multisig), abi.encodeCall(IRewardMultisig.setThreshold, (k - 1)));
            sys.act(address(multisig), abi.encodeCall(IRewardMultisig.removeMember, (committee[seed % n])));
        } else {
            uint256 newK = bound(seed, n / 2 + 1, n);
            if (newK == k) return;
            sys.act(address(multisig), abi.encodeCall(IRewardMultisig.setThreshold, (newK)));
            vm.assertEq(multisig.epoch(), e, "a threshold change moved the epoch");
            ++done["setThreshold"];
            return;
        }
        vm.assertEq(multisig.epoch(), e + 1, "a membership change did not move the epoch");
        ++done[op == 0 ? bytes32("addMember") : bytes32("removeMember")];
    }

    /// @notice Changes maxOrderLifetime, settlementGrace or unbondingPeriod through executeAction.
    ///         A change must go through exactly when maxOrderLifetime + settlementGrace stays below
    ///         the unbonding period (and the period within 365 days) and a staker asking to leave
    ///         now would stay past the reclaim time of every order placed under earlier (longer)
    ///         bounds; one that breaks either executing is a breach, and so is a period that
    ///         executes and ends before an open order's own reclaim time.
    function changeParams(uint256 which, uint256 value) external {
        uint256 lifetime = orders.maxOrderLifetime();
        uint256 grace = orders.settlementGrace();
        uint256 unbonding = stakes.unbondingPeriod();
        which %= 3;
        address target;
        bytes memory data;
        bool ok;
        if (which == 0) {
            value = bound(value, 1 days, 20 days);
            (target, data, ok) =
            (
                address(orders),
                abi.encodeCall(IOrderBook.setMaxOrderLifetime, (uint32(value))),
                value + grace < unbonding
            );
        } else if (which == 1) {
            value = bound(value, 0, 6 days);
            (target, data, ok) =
            (
                address(orders),
                abi.encodeCall(IOrderBook.setSettlementGrace, (uint32(value))),
                lifetime + value < unbonding
            );
        } else {
            value = value % 16 == 0 ? 365 days + (value >> 4) % 2 : bound(value, lifetime + grace - 1 days, 30 days);
            ok = lifetime + grace < value && value <= 365 days;
            if (ok && block.timestamp + value <= earlierReclaimBound) {
                ok = false;
                ++done["attack:unbonding < open orders"];
            }
            (target, data) = (address(stakes), abi.encodeCall(IStakeRegistry.setUnbondingPeriod, (value)));
        }
        if (ok) {
            sys.act(target, data);
            ++done["changeParams"];
            if (which != 2) {
                uint256 end = block.timestamp + lifetime + grace;
                if (end > earlierReclaimBound) earlierReclaimBound = end;
            } else if (block.timestamp + value <= _latestOpenReclaim()) {
                _breach("the unbonding period ends before an open order's reclaim time");
            }
        } else {
            if (sys.tryAct(target, data)) {
                _breach("a parameter change let exposed stake leave before its order is due");
            }
            ++done["attack:bad params"];
        }
    }

    /// @notice The committee locks or unlocks part of a stake (executeAction); a lock above the
    ///         free stake or an unlock above the locked part must fail.
    function lockStake(uint256 stakerSeed, uint256 amount, bool unlock) external {
        address who = _stakers[stakerSeed % _stakers.length];
        IStakeRegistry.Staker memory s = stakes.stakerOf(who);
        uint256 room = unlock ? s.locked : s.stake - s.locked;
        bool valid = amount % 8 != 0 && room != 0;
        amount = valid ? bound(amount, 1, room) : room + 1;
        bytes memory data = unlock
            ? abi.encodeCall(IStakeRegistry.unlock, (who, amount))
            : abi.encodeCall(IStakeRegistry.lock, (who, amount));
        if (valid) {
            sys.act(address(stakes), data);
            ++done[unlock ? bytes32("unlock") : bytes32("lock")];
        } else {
            if (sys.tryAct(address(stakes), data)) _breach("a lock or unlock beyond the stake executed");
            ++done["attack:bad lock"];
        }
    }

    /// @notice Attack: a governance action with k-1 signatures, a duplicated or non-member
    ///         signer, for another epoch, past its deadline, under a used action nonce, adding a
    ///         PoT contract as a member, or calling a contract outside PoT.
    function attackAction(uint256 seed, uint256 variant) external {
        variant %= 8;
        uint256 k = multisig.threshold();
        Action memory a = Action({
            nonce: sys.actionNonce(),
            epoch: multisig.epoch(),
            deadline: block.timestamp + 1 hours,
            target: address(multisig),
            data: abi.encodeCall(IRewardMultisig.setParam, (keccak256("attack"), seed))
        });
        if (variant == 3) a.epoch += 1;
        if (variant == 4) a.deadline = block.timestamp - 1;
        if (variant == 5) {
            if (a.nonce == 0) return;
            a.nonce = bound(seed, 0, a.nonce - 1);
        }
        if (variant == 6) a.data = abi.encodeCall(IRewardMultisig.addMember, (_pocket(seed)));
        if (variant == 7) a.target = address(token);
        uint256 flaw = variant == 1 ? 1 : variant == 2 ? 2 : 0;
        bytes memory sigs = _sign(multisig.actionDigest(a), variant == 0 ? k - 1 : k, seed, flaw);
        try multisig.executeAction(a, sigs) {
            _breach("an invalid governance action executed");
        } catch {}
        ++done["attack:action"];
    }

    /// @notice Attack: a staker calls the committee-only entry points directly.
    function outsiderMovesMoney(uint256 orderSeed, uint256 stakerSeed) external {
        (uint256 id, IOrderBook.Order memory o) = _pickOrder(orderSeed, ANY);
        address who = _stakers[stakerSeed % _stakers.length];
        address other = _stakers[(stakerSeed % _stakers.length + 1) % _stakers.length];
        Builder memory bld = _builder(nonce, block.timestamp + 1 hours);
        OrderSettlement memory os;
        os.orderId = id;
        os.payouts = new uint256[](1);
        os.payouts[0] = _word(_recipient(bld, who, false), o.reward);
        bld.s.orders[bld.no++] = os;
        Settlement memory b = _finish(bld);
        vm.startPrank(who);
        try orders.settle(b) {
            _breach("an outsider called OrderBook.settle");
        } catch {}
        try stakes.slash(other, 1, who) {
            _breach("an outsider slashed");
        } catch {}
        try stakes.lock(other, 1) {
            _breach("an outsider locked stake");
        } catch {}
        try challenges.resolve(id, who, true, address(0), who) {
            _breach("an outsider resolved a challenge");
        } catch {}
        try multisig.addMember(who) {
            _breach("an outsider added a member");
        } catch {}
        try orders.setSettlementGrace(0) {
            _breach("an outsider set the settlement grace");
        } catch {}
        try stakes.setUnbondingPeriod(0) {
            _breach("an outsider set the unbonding period");
        } catch {}
        try multisig.proposeReward(b) {
            _breach("an outsider proposed a batch");
        } catch {}
        try multisig.executeSigned(b, "") {
            _breach("a batch without signatures executed");
        } catch {}
        vm.stopPrank();
        ++done["attack:outsider"];
    }

    // ---------------------------------------------------------------- building batches

    /// @dev An honest batch: 1-4 order items drawn from the recent orders (a sixteenth of them an
    ///      unknown order, another sixteenth the previous item again), each made to fail one check
    ///      half the time; time moved to the last window of every item that should apply (a
    ///      refund needs only trainEnd); then slashes for one finalizable order and verdicts for
    ///      recent challenges whose order is finalizable (pending, reclaimed or resolved).
    function _honestBatch(uint256 nonce_, uint256 seed, uint256 taxBps, uint256 slashSeed, uint256 slashAmount)
        internal
        returns (Settlement memory)
    {
        uint256 count = 1 + seed % 4;
        uint256[] memory ids = new uint256[](count);
        uint256[] memory kinds = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            (ids[i], kinds[i]) = _pickItem(seed >> (8 * i + 8), ids, i);
        }
        _warpToFinalizable(ids, kinds, (seed >> 250) % 4 == 0);
        Builder memory bld = _builder(nonce_, block.timestamp + bound(seed >> 200, 1 hours, 3 days));
        for (uint256 i; i < count; ++i) {
            _addOrder(bld, ids[i], kinds[i], taxBps, seed >> (8 * i + 40));
        }
        _addSlashes(bld, ids, slashSeed, slashAmount);
        _addVerdicts(bld, slashSeed >> 64);
        return _finish(bld);
    }

    /// @dev An item from seed bits: [0, 4) 1 in 16 an unknown order, 1 in 16 the previous item's
    ///      order again; [4, 12) which recent order; [16, 24) the kind, half of the failing kinds
    ///      turned valid by bit 12 (a quarter of the items fail a check).
    function _pickItem(uint256 r, uint256[] memory ids, uint256 i) internal view returns (uint256 id, uint256 kind) {
        uint256 count = orders.orderCount();
        kind = (r >> 16) & 0xff;
        if (count == 0 || r % 16 == 0) return (count + 1000, SKIP_KINDS);
        if (r % 16 == 1 && i > 0) return (ids[i - 1], SKIP_KINDS);
        id = count - ((r >> 4) & 0xff) % (count < RECENT ? count : RECENT);
        if (kind % 12 < SKIP_KINDS && (r >> 12) & 1 == 0) kind = SKIP_KINDS | (kind & 16);
    }

    /// @dev Moves time to the last window of every item that should apply, when `wait`; else
    ///      such an item that is not due yet is made to overpay (skipped, which needs no time).
    ///      Waiting is the exception: a jump of days closes every window the other actions need.
    function _warpToFinalizable(uint256[] memory ids, uint256[] memory kinds, bool wait) internal {
        uint256 target = block.timestamp;
        for (uint256 i; i < ids.length; ++i) {
            if (kinds[i] % 12 < SKIP_KINDS) continue;
            IOrderBook.Order memory o = orders.getOrder(ids[i]);
            if (o.status != IOrderBook.Status.Open || _refund(o, kinds[i])) continue;
            uint256 due = _finalizable(o);
            if (due <= target) continue;
            if (wait) target = due;
            else kinds[i] = OVERPAY | (kinds[i] & 16);
        }
        if (target > block.timestamp) vm.warp(target);
    }

    /// @dev Kinds with bit 4 set refund the whole escrow to the client when the cancel rule
    ///      allows it (no test data, at/after trainEnd).
    function _refund(IOrderBook.Order memory o, uint256 kind) internal view returns (bool) {
        return kind & 16 != 0 && o.status != IOrderBook.Status.None && o.t3 == 0
            && block.timestamp >= uint256(o.t0) + o.trainDuration;
    }

    /// @dev One order item: a refund, the escrow less tax back to the client (no winner), or a
    ///      winner paid first (its share sometimes in two words) and two validators (one
    ///      sometimes as a second recipient entry of an address already listed); winners and
    ///      validators are stakers or pool accounts, members included, so the tax and payouts
    ///      of one account merge. Then made to fail a check when the kind says so.
    function _addOrder(Builder memory bld, uint256 id, uint256 kind, uint256 taxBps, uint256 seed) internal view {
        IOrderBook.Order memory o = orders.getOrder(id);
        uint256 reward = o.status == IOrderBook.Status.None ? 1 ether : o.reward;
        OrderSettlement memory os;
        os.orderId = id;
        os.payouts = new uint256[](5);
        uint256 np;
        if (o.status == IOrderBook.Status.None) {
            os.payouts[np++] = _word(_recipient(bld, _stakers[seed % _stakers.length], false), reward);
        } else if (_refund(o, kind)) {
            os.payouts[np++] = _word(_recipient(bld, o.client, false), reward);
        } else {
            uint256 style = (seed >> 8) % 3;
            if (style != 2) os.perMember = reward * bound(taxBps, 0, 2_000) / 10_000 / bld.s.members;
            uint256 rest = reward - os.perMember * bld.s.members;
            if (style == 1) {
                os.payouts[np++] = _word(_recipient(bld, o.client, false), rest);
            } else {
                np = _winnerPayouts(bld, os, rest, seed);
                os.winningMid = keccak256(abi.encode("model", id));
            }
        }
        os.payouts = _trim(os.payouts, np);
        if (kind % 12 < SKIP_KINDS) _breakItem(bld, os, kind % 12, reward, seed);
        bld.s.orders[bld.no++] = os;
    }

    function _winnerPayouts(Builder memory bld, OrderSettlement memory os, uint256 rest, uint256 seed)
        internal
        view
        returns (uint256 np)
    {
        os.winner = _actor(seed >> 16);
        uint256 v1 = rest * ((seed >> 24) % 1_500) / 10_000;
        uint256 v2 = rest * ((seed >> 40) % 1_500) / 10_000;
        uint256 w = rest - v1 - v2; // >= 1: rest >= 1 and v1 + v2 <= 30% of it
        bool split = (seed >> 56) & 1 == 1 && w > 1;
        uint256 wi = _recipient(bld, os.winner, false);
        os.payouts[np++] = _word(wi, split ? w / 2 : w);
        os.payouts[np++] = _word(_recipient(bld, _actor(seed >> 64), false), v1);
        os.payouts[np++] = _word(_recipient(bld, _actor(seed >> 72), (seed >> 80) & 1 == 1), v2);
        if (split) os.payouts[np++] = _word(wi, w - w / 2);
    }

    /// @dev Makes an item fail one of the checks an order must pass (the contract skips it).
    function _breakItem(Builder memory bld, OrderSettlement memory os, uint256 how, uint256 reward, uint256 seed)
        internal
        view
    {
        uint256[] memory ps = os.payouts;
        uint256 amount0 = ps[0] & AMOUNT_MASK;
        if (how == OVERPAY) {
            ps[0] += bound(seed >> 88, 1, 1_000 ether);
        } else if (how == UNDERPAY && amount0 != 0) {
            ps[0] -= bound(seed >> 88, 1, amount0);
        } else if (how == TAX_ABOVE_ESCROW) {
            os.perMember = reward + 1 + bound(seed >> 88, 0, 1 ether);
        } else if (how == WINNER_PAID_ZERO && os.winner != address(0) && ps.length > 1) {
            ps[0] -= amount0;
            ps[1] += amount0;
        } else if (how == BAD_INDEX) {
            ps[ps.length - 1] = _word(0xffff, ps[ps.length - 1] & AMOUNT_MASK);
        } else {
            // WINNER_NOT_FIRST (and the cases above that do not fit the item): name a winner
            // the first payout does not pay.
            address first = bld.s.recipients[ps[0] >> INDEX_SHIFT];
            os.winner = _actor(seed >> 96);
            if (os.winner == first) os.winner = first == _clients[0] ? _clients[1] : _clients[0];
        }
    }

    /// @dev 0-2 slashes for one order whose windows ended (one of the batch's, else a recent
    ///      one): of a staker (a sixth of them the one with the most stake locked, a sixth an
    ///      account with no stake), up to twice its stake, to the treasury, a hunter, or (rarely) 0.
    function _addSlashes(Builder memory bld, uint256[] memory ids, uint256 seed, uint256 amount) internal view {
        if (seed % 3 == 0) return;
        uint256 orderId;
        for (uint256 i; i < ids.length && orderId == 0; ++i) {
            IOrderBook.Order memory o = orders.getOrder(ids[i]);
            if (o.status != IOrderBook.Status.None && block.timestamp >= _finalizable(o)) orderId = ids[i];
        }
        uint256 count = orders.orderCount();
        for (uint256 id = count; id > 0 && id + RECENT > count && orderId == 0; --id) {
            if (block.timestamp >= _finalizable(orders.getOrder(id))) orderId = id;
        }
        if (orderId == 0) return;
        uint256 n = 1 + (seed >> 2) % 2;
        for (uint256 j; j < n; ++j) {
            uint256 r = seed >> (8 + 16 * j);
            address staker = r % 6 == 5 ? _clients[r % 3] : r % 6 == 4 ? _mostLocked() : _stakers[r % 5];
            uint256 stake = stakes.stakerOf(staker).stake;
            address to = (r >> 8) % 8 == 0
                ? address(0)
                : (r >> 8) % 2 == 0 ? multisig.treasury() : _stakers[(r >> 11) % _stakers.length];
            bld.s.slashes[bld.ns++] = Slash(orderId, staker, bound(amount >> (64 * j), 0, 2 * stake + 1), to);
        }
    }

    /// @dev Verdicts for up to 4 of the latest challenges whose order's windows ended (pending
    ///      ones resolve; reclaimed or already resolved ones are skipped), one sometimes twice.
    function _addVerdicts(Builder memory bld, uint256 seed) internal view {
        uint256 m = _challenged.length;
        uint256 stop = m > 12 ? m - 12 : 0;
        for (uint256 i = m; i > stop && bld.nv < 4; --i) {
            ChallengeRef memory c = _challenged[i - 1];
            if (block.timestamp < _finalizable(orders.getOrder(c.orderId))) continue;
            uint256 r = seed >> (4 * bld.nv);
            address validator = r & 2 == 0 ? address(0) : _stakers[(r >> 2) % _stakers.length];
            ChallengeVerdict memory v = ChallengeVerdict(c.orderId, c.challenger, r & 1 == 1, validator);
            bld.s.verdicts[bld.nv++] = v;
            if ((r >> 3) % 5 == 0) bld.s.verdicts[bld.nv++] = v;
        }
    }

    /// @dev The attacker's batch: same nonce, epoch and deadline as the honest one; the escrow
    ///      of every order the honest batch pays after its windows, and an innocent staker's
    ///      whole stake, to the attacker.
    function _stealingBatch(Settlement memory h, address attacker) internal view returns (Settlement memory) {
        Builder memory bld = _builder(h.nonce, h.deadline);
        uint256 me = _recipient(bld, attacker, false);
        Plan memory p = _predict(h);
        uint256 finalOrder;
        for (uint256 i; i < h.orders.length && !p.reverts; ++i) {
            IOrderBook.Order memory o = orders.getOrder(h.orders[i].orderId);
            if (!p.applies[i] || block.timestamp < _finalizable(o)) continue;
            OrderSettlement memory os;
            os.orderId = h.orders[i].orderId;
            os.winner = attacker;
            os.payouts = new uint256[](1);
            os.payouts[0] = _word(me, o.reward);
            bld.s.orders[bld.no++] = os;
            finalOrder = os.orderId;
        }
        for (uint256 i; i < _stakers.length && finalOrder != 0; ++i) {
            uint256 stake = stakes.stakerOf(_stakers[i]).stake;
            if (stake == 0) continue;
            bld.s.slashes[bld.ns++] = Slash(finalOrder, _stakers[i], stake, attacker);
            break;
        }
        return _finish(bld);
    }

    /// @dev Signs (with k) a batch that is never executed, to try after a membership change.
    function _stashSignedBatch(uint256 seed) internal {
        Settlement memory b = _honestBatch(nonce++, seed, 400, seed >> 128, seed >> 64);
        _staleBatch = abi.encode(b);
        _staleSigs = _sign(multisig.settlementDigest(b), multisig.threshold(), seed, 0);
    }

    /// @dev `count` signatures by current members from a seeded offset; flaw 1: the last
    ///      signer repeats the first; flaw 2: the last signer is a pool account not in the committee.
    function _sign(bytes32 digest, uint256 count, uint256 seed, uint256 flaw) internal view returns (bytes memory) {
        address[] memory committee = multisig.members();
        address[] memory signers = new address[](count);
        for (uint256 i; i < count; ++i) {
            signers[i] = committee[(seed % committee.length + i) % committee.length];
        }
        if (flaw == 1) signers[count - 1] = signers[0];
        if (flaw == 2) signers[count - 1] = _nonMember(seed);
        return sys.sign(digest, signers);
    }

    function _executedBatch(Settlement memory b, Plan memory p) internal {
        _executed.push(abi.encode(b));
        for (uint256 i; i < _accounts.length; ++i) {
            slashedFrom[_accounts[i]] += p.stakeBefore[i] - p.stake[i];
        }
        for (uint256 i; i < b.orders.length; ++i) {
            if (p.applies[i]) {
                closed[b.orders[i].orderId] = true;
                ++done[_refundItem(b, i) ? bytes32("order refunded") : bytes32("order applied")];
            } else {
                ++done["order skipped"];
            }
        }
        for (uint256 i; i < b.slashes.length; ++i) {
            ++done["slash"];
        }
        done["verdict resolved"] += p.nResolved;
        done["verdict skipped"] += b.verdicts.length - p.nResolved;
    }

    function _refundItem(Settlement memory b, uint256 i) internal pure returns (bool) {
        OrderSettlement memory os = b.orders[i];
        return os.winner == address(0) && os.perMember == 0 && os.payouts.length == 1;
    }

    // ---------------------------------------------------------------- internals

    function _breach(string memory what) internal {
        ++breaches;
        if (bytes(firstBreach).length == 0) firstBreach = what;
    }

    /// @dev The staker with the most stake locked (staker 4 when none has any).
    function _mostLocked() internal view returns (address who) {
        uint256 most;
        who = _stakers[4];
        for (uint256 i; i < _stakers.length; ++i) {
            uint256 locked = stakes.stakerOf(_stakers[i]).locked;
            if (locked > most) (who, most) = (_stakers[i], locked);
        }
    }

    /// @dev The latest reclaim time among open orders (each with the grace it was placed with).
    function _latestOpenReclaim() internal view returns (uint256 latest) {
        uint256 count = orders.orderCount();
        for (uint256 id = 1; id <= count; ++id) {
            IOrderBook.Order memory o = orders.getOrder(id);
            if (o.status != IOrderBook.Status.Open) continue;
            uint256 due = _finalizable(o) + graceOf[id];
            if (due > latest) latest = due;
        }
    }

    function _orderParams(address client, uint256 id, uint256 reward, uint256 reveal, uint256 validate, uint256 window)
        internal
        view
        returns (IOrderBook.OrderParams memory p)
    {
        uint256 maxLifetime = orders.maxOrderLifetime();
        p.reward = uint96(bound(reward, 1, 10_000 ether));
        p.revealDuration = uint32(bound(reveal, sys.MIN_REVEAL(), 1 days));
        p.validateDuration = uint32(bound(validate, 1 hours, 1 days));
        p.challengeDuration = uint32(bound(window, 1 hours, 1 days));
        if (uint256(p.validateDuration) + p.challengeDuration + 4 * uint256(p.revealDuration) + 1 hours > maxLifetime) {
            (p.revealDuration, p.validateDuration, p.challengeDuration) = (sys.MIN_REVEAL(), 1 hours, 1 hours);
        }
        p.modelType = bytes32("classification-accuracy-v1");
        p.testCommitment = keccak256(abi.encode(client, keccak256(bytes(_testCid(id))), _testSalt(id)));
        p.specCid = "spec";
    }

    /// @dev One of the RECENT most recent orders, the first from a seeded offset that is in the
    ///      state `want` names (id 0: none is).
    function _pickOrder(uint256 seed, uint256 want) internal view returns (uint256 id, IOrderBook.Order memory o) {
        uint256 count = orders.orderCount();
        uint256 span = count < RECENT ? count : RECENT;
        for (uint256 i; i < span; ++i) {
            id = count - (seed % span + i) % span;
            o = orders.getOrder(id);
            if (_fits(o, want)) return (id, o);
        }
        return (0, o);
    }

    function _fits(IOrderBook.Order memory o, uint256 want) internal view returns (bool) {
        if (want == ANY) return true;
        if (o.status != IOrderBook.Status.Open) return false;
        uint256 releaseEnd = uint256(o.t0) + o.trainDuration + 2 * uint256(o.revealDuration);
        uint256 validationEnd = uint256(o.t3) + o.validateDuration + o.revealDuration;
        if (want == RELEASABLE) return o.t3 == 0 && block.timestamp < releaseEnd;
        if (want == VALIDATING) return o.t3 == 0 ? block.timestamp < releaseEnd : block.timestamp < validationEnd;
        if (want == CHALLENGEABLE) {
            return o.t3 == 0 ? block.timestamp < releaseEnd : block.timestamp < validationEnd + o.challengeDuration;
        }
        if (want == EARLY) return block.timestamp < _finalizable(o);
        return true; // OPEN
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

    /// @dev One of the RECENT most recent challenges, the first from a seeded offset that is
    ///      unresolved (and, with `toReveal`, committed with its reveal window still ahead or open).
    function _pickChallenge(uint256 seed, bool toReveal) internal view returns (uint256 id, address who) {
        uint256 n = _challenged.length;
        uint256 span = n < RECENT ? n : RECENT;
        for (uint256 i; i < span; ++i) {
            ChallengeRef memory c = _challenged[n - 1 - (seed % span + i) % span];
            IChallengeManager.Status st = challenges.getChallenge(c.orderId, c.challenger).status;
            if (toReveal) {
                (,, uint64 end) = _challengeWindows(orders.getOrder(c.orderId));
                if (st != IChallengeManager.Status.Committed || block.timestamp >= end) continue;
            } else if (st != IChallengeManager.Status.Committed && st != IChallengeManager.Status.Revealed) {
                continue;
            }
            return (c.orderId, c.challenger);
        }
        return (0, address(0));
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

    function _unresolved(uint256 id, address who) internal view returns (bool) {
        IChallengeManager.Status st = challenges.getChallenge(id, who).status;
        return st == IChallengeManager.Status.Committed || st == IChallengeManager.Status.Revealed;
    }

    /// @dev A staker or a pool account (members among them).
    function _actor(uint256 seed) internal view returns (address) {
        uint256 r = seed % (_stakers.length + _pool.length);
        return r < _stakers.length ? _stakers[r] : _pool[r - _stakers.length];
    }

    /// @dev A pool account outside the committee (one always is: see changeMembership).
    function _nonMember(uint256 seed) internal view returns (address) {
        for (uint256 i; i < _pool.length; ++i) {
            address a = _pool[(seed % _pool.length + i) % _pool.length];
            if (!multisig.isMember(a)) return a;
        }
        revert("no pool account outside the committee");
    }

    /// @dev One of the PoT contracts (none may be a member).
    function _pocket(uint256 seed) internal view returns (address) {
        uint256 r = seed % 4;
        return r == 0 ? address(orders) : r == 1 ? address(stakes) : r == 2 ? address(challenges) : address(multisig);
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        for (; x != 0; x &= x - 1) {
            ++c;
        }
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
