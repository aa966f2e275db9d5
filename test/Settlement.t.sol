// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOrderBook} from "../contracts/interfaces/IOrderBook.sol";
import {IStakeRegistry} from "../contracts/interfaces/IStakeRegistry.sol";
import {IChallengeManager} from "../contracts/interfaces/IChallengeManager.sol";
import {IRewardMultisig} from "../contracts/interfaces/IRewardMultisig.sol";
import {Settlement, OrderSettlement, Slash, ChallengeVerdict, Action} from "../contracts/interfaces/ISettlement.sol";
import {Vm} from "./utils/Test.sol";
import {PoTTest} from "./utils/PoTTest.sol";

/// @notice Settlement batches against the rules of ISettlement.sol: payouts merged per recipient
///         exactly, one order's failure never blocking the others, k approvals of exactly the
///         batch (signed or on the paper path) in the current epoch before its deadline, each
///         nonce once, nothing before the order's last window.
contract SettlementTest is PoTTest {
    uint256 internal constant MEMBERS = 4;
    /// @dev The fuzzed batch's recipients: the 4 members, alice, bob, alice again, member 1 again.
    uint256 internal constant RECIPIENTS = 8;
    uint256 internal constant ITEMS = 6;

    address internal client = makeAddr("client");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");

    event OrderSkipped(uint256 indexed orderId, IOrderBook.SkipReason reason);
    event VerdictSkipped(uint256 indexed orderId, address indexed challenger);

    function setUp() public {
        _deploy();
        _fund(client, 10_000_000 ether);
    }

    // ---------------------------------------------------------------- merging is exact

    /// @notice Six items over four open orders, a settled one, a reclaimed one, an unknown one
    ///         and repeats, each one valid or failing one check, with a committee tax, payouts to
    ///         recipients listed twice and indices repeated within an order: every recipient
    ///         receives exactly the sum over the orders that applied, every other order keeps its
    ///         escrow, and each skipped order is reported with the reason the rules give.
    function testFuzz_mergedPayoutsAreExact(uint256 seed, uint256[4] memory rewards, uint256 taxBps) public {
        for (uint256 i; i < 4; ++i) {
            _placeOrder(client, uint96(bound(rewards[i], 1, 1_000_000 ether)));
        }
        uint256 settled = _placeOrder(client, 10 ether);
        uint256 reclaimed = _placeOrder(client, 20 ether);
        vm.warp(orders.reclaimableAt(reclaimed));
        vm.prank(client);
        orders.reclaim(reclaimed);
        Settlement memory first = _batch(0, _addrs(client));
        first.orders = _orders(_item(settled, address(0), 0, _one(MEMBERS), _one(10 ether)));
        _execute(first);

        address[] memory committee = multisig.members();
        address[] memory others = new address[](4);
        (others[0], others[1], others[2], others[3]) = (alice, bob, alice, committee[1]);
        Settlement memory b = _batch(1, others);
        b.orders = new OrderSettlement[](ITEMS);
        taxBps = bound(taxBps, 0, 3_000);
        for (uint256 i; i < ITEMS; ++i) {
            b.orders[i] = _fuzzItem(b, seed >> (24 * i), taxBps, i == 0 ? 0 : b.orders[i - 1].orderId);
        }
        (uint256[] memory owed, IOrderBook.SkipReason[] memory reasons) = _expected(b);
        address[] memory watched = new address[](7);
        (watched[0], watched[1], watched[2], watched[3]) = (committee[0], committee[1], committee[2], committee[3]);
        (watched[4], watched[5], watched[6]) = (alice, bob, address(orders));
        uint256[] memory before = new uint256[](watched.length);
        for (uint256 i; i < watched.length; ++i) {
            before[i] = token.balanceOf(watched[i]);
        }
        IOrderBook.Status[] memory statusBefore = new IOrderBook.Status[](ITEMS);
        for (uint256 i; i < ITEMS; ++i) {
            statusBefore[i] = orders.getOrder(b.orders[i].orderId).status;
        }

        vm.recordLogs();
        _execute(b);
        _checkSkips(b, reasons, vm.getRecordedLogs());

        for (uint256 i; i < watched.length - 1; ++i) {
            uint256 expected;
            for (uint256 j; j < RECIPIENTS; ++j) {
                if (b.recipients[j] == watched[i]) expected += owed[j];
            }
            assertEq(token.balanceOf(watched[i]), before[i] + expected, "recipient paid other than the sum it is owed");
        }
        uint256 escrowOut;
        for (uint256 i; i < ITEMS; ++i) {
            IOrderBook.Order memory o = orders.getOrder(b.orders[i].orderId);
            if (reasons[i] == IOrderBook.SkipReason.None) {
                escrowOut += o.reward;
                assertEq(uint256(o.status), uint256(IOrderBook.Status.Settled), "applied order not settled");
            } else if (!_appliedElsewhere(b, reasons, i)) {
                assertEq(uint256(o.status), uint256(statusBefore[i]), "an order left as it was changed");
            }
        }
        assertEq(token.balanceOf(address(orders)), before[6] - escrowOut, "escrow of skipped orders moved");
        uint256 open;
        for (uint256 id = 1; id <= orders.orderCount(); ++id) {
            IOrderBook.Order memory o = orders.getOrder(id);
            if (o.status == IOrderBook.Status.Open) open += o.reward;
        }
        assertEq(token.balanceOf(address(orders)), open, "OrderBook holds other than the open escrow");
    }

    /// @dev One item: an open order (1-4), the settled one (5), the reclaimed one (6), an unknown
    ///      one (99) or the previous item's order again; paying its escrow in up to three words
    ///      (winner first when named) after the tax, or failing one check: overpaying,
    ///      underpaying, a tax above the escrow, a winner the first word does not pay, an index
    ///      past the recipients.
    function _fuzzItem(Settlement memory b, uint256 r, uint256 taxBps, uint256 prevId)
        internal
        view
        returns (OrderSettlement memory os)
    {
        uint256 pick = r % 8;
        os.orderId = pick < 4 ? pick + 1 : pick == 4 ? 5 : pick == 5 ? 6 : pick == 6 ? 99 : prevId == 0 ? 1 : prevId;
        uint256 escrow = os.orderId == 99 ? 1 ether : orders.getOrder(os.orderId).reward;
        os.perMember = escrow * taxBps / 10_000 / MEMBERS;
        uint256 rest = escrow - MEMBERS * os.perMember;
        os.payouts = new uint256[](3);
        os.payouts[1] = ((r >> 10) % RECIPIENTS) << 240 | rest * ((r >> 3) % 4) / 8;
        os.payouts[2] = ((r >> 13) % RECIPIENTS) << 240 | rest * ((r >> 5) % 4) / 8;
        // the first word takes the rest: at least a quarter of it, so never 0
        os.payouts[0] = ((r >> 7) % RECIPIENTS) << 240 | rest - _amount(os.payouts[1]) - _amount(os.payouts[2]);
        if ((r >> 16) & 1 == 1) os.winner = b.recipients[os.payouts[0] >> 240];
        uint256 kind = (r >> 17) % 8;
        if (kind == 3) os.payouts[0] += 1 + (r >> 20) % 1_000;
        if (kind == 4) os.payouts[0] -= 1;
        if (kind == 5) os.perMember = escrow + 1;
        if (kind == 6) os.winner = client; // never a recipient of this batch
        if (kind == 7) os.payouts[2] = (RECIPIENTS + (r >> 20) % 100) << 240 | _amount(os.payouts[2]);
    }

    function _amount(uint256 word) internal pure returns (uint256) {
        return word & ((1 << 240) - 1);
    }

    /// @dev What each recipient entry is owed and why each item is skipped (None: it applies),
    ///      from the rules: open and not settled earlier in the batch; tax at most the escrow;
    ///      every index a recipient; the sum equal to the escrow; a named winner paid first.
    function _expected(Settlement memory b)
        internal
        view
        returns (uint256[] memory owed, IOrderBook.SkipReason[] memory reasons)
    {
        owed = new uint256[](RECIPIENTS);
        reasons = new IOrderBook.SkipReason[](ITEMS);
        uint256 shared;
        for (uint256 i; i < ITEMS; ++i) {
            reasons[i] = _reason(b, reasons, i);
            if (reasons[i] != IOrderBook.SkipReason.None) continue;
            OrderSettlement memory os = b.orders[i];
            for (uint256 j; j < os.payouts.length; ++j) {
                owed[os.payouts[j] >> 240] += _amount(os.payouts[j]);
            }
            shared += os.perMember;
        }
        for (uint256 j; j < MEMBERS; ++j) {
            owed[j] += shared;
        }
    }

    function _reason(Settlement memory b, IOrderBook.SkipReason[] memory reasons, uint256 i)
        internal
        view
        returns (IOrderBook.SkipReason)
    {
        OrderSettlement memory os = b.orders[i];
        IOrderBook.Order memory o = orders.getOrder(os.orderId);
        if (o.status != IOrderBook.Status.Open) return IOrderBook.SkipReason.NotOpen;
        for (uint256 j; j < i; ++j) {
            if (b.orders[j].orderId == os.orderId && reasons[j] == IOrderBook.SkipReason.None) {
                return IOrderBook.SkipReason.NotOpen;
            }
        }
        if (os.perMember > o.reward) return IOrderBook.SkipReason.PayoutMismatch;
        uint256 sum = os.perMember * MEMBERS;
        for (uint256 j; j < os.payouts.length; ++j) {
            if (os.payouts[j] >> 240 >= RECIPIENTS) return IOrderBook.SkipReason.BadRecipient;
            sum += _amount(os.payouts[j]);
        }
        if (sum != o.reward) return IOrderBook.SkipReason.PayoutMismatch;
        if (os.winner != address(0) && (b.recipients[os.payouts[0] >> 240] != os.winner || _amount(os.payouts[0]) == 0))
        {
            return IOrderBook.SkipReason.WinnerNotPaid;
        }
        return IOrderBook.SkipReason.None;
    }

    function _appliedElsewhere(Settlement memory b, IOrderBook.SkipReason[] memory reasons, uint256 i)
        internal
        pure
        returns (bool)
    {
        for (uint256 j; j < ITEMS; ++j) {
            if (b.orders[j].orderId == b.orders[i].orderId && reasons[j] == IOrderBook.SkipReason.None) return true;
        }
        return false;
    }

    /// @dev OrderSkipped(orderId, reason) for exactly the skipped items, in order; OrderSettled
    ///      for the others.
    function _checkSkips(Settlement memory b, IOrderBook.SkipReason[] memory reasons, Vm.Log[] memory logs)
        internal
        view
    {
        uint256 next;
        uint256 settledEvents;
        uint256 applied;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(orders)) continue;
            if (logs[i].topics[0] == IOrderBook.OrderSettled.selector) ++settledEvents;
            if (logs[i].topics[0] != IOrderBook.OrderSkipped.selector) continue;
            while (next < ITEMS && reasons[next] == IOrderBook.SkipReason.None) {
                ++next;
            }
            assertTrue(next < ITEMS, "an order skipped that should apply");
            assertEq(uint256(logs[i].topics[1]), b.orders[next].orderId, "order reported as skipped");
            assertEq(abi.decode(logs[i].data, (uint256)), uint256(reasons[next]), "reason reported for skipping");
            ++next;
        }
        for (uint256 i; i < ITEMS; ++i) {
            if (reasons[i] == IOrderBook.SkipReason.None) ++applied;
            else if (i >= next) revert("a skipped order was not reported");
        }
        assertEq(settledEvents, applied, "OrderSettled events");
    }

    // ---------------------------------------------------------------- k approvals

    /// @notice Up to five signatures drawn from the pool (four members, three outsiders), some
    ///         repeated: the batch executes exactly when they are k or more distinct members and
    ///         nothing else; otherwise no token moves.
    function testFuzz_onlyKDistinctMembersExecute(uint256 pick) public {
        uint256 id = _placeOrder(client, 100 ether);
        vm.warp(orders.finalizableAt(id));
        Settlement memory b = _batch(0, _addrs(alice));
        b.orders = _orders(_item(id, alice, 0, _one(MEMBERS), _one(100 ether)));
        address[] memory pool = sys.pool();
        address[] memory signers = new address[](1 + pick % 5);
        bool valid = signers.length >= multisig.threshold();
        for (uint256 i; i < signers.length; ++i) {
            signers[i] = pool[(pick >> (3 + 3 * i)) % pool.length];
            valid = valid && multisig.isMember(signers[i]);
            for (uint256 j; j < i; ++j) {
                valid = valid && signers[j] != signers[i];
            }
        }
        bytes memory sigs = sys.sign(multisig.settlementDigest(b), signers);
        if (!valid) vm.expectRevert();
        multisig.executeSigned(b, sigs);
        assertEq(token.balanceOf(alice), valid ? 100 ether : 0, "moved without k distinct members");
        assertEq(
            uint256(orders.getOrder(id).status), uint256(valid ? IOrderBook.Status.Settled : IOrderBook.Status.Open)
        );
    }

    /// @notice Issue 9, attack 1: a member proposes its own batch under the next nonce (the
    ///         escrow and an innocent validator's whole stake to itself) before the honest one.
    ///         The honest members' confirmations approve the batch they computed (its id comes
    ///         from its digest), the member's own never reaches k, and after the honest batch
    ///         executes the member's cannot, even if members are tricked into confirming it.
    function test_memberCannotCaptureTheHonestBatch() public {
        address validator = makeAddr("validator");
        _fund(validator, 1_000 ether);
        vm.prank(validator);
        stakes.register(2, 100 ether);
        uint256 id = _placeOrder(client, 100 ether);
        vm.warp(orders.finalizableAt(id));
        address[] memory m = multisig.members();

        Settlement memory honest = _batch(0, _addrs(alice));
        honest.orders = _orders(_item(id, alice, 2.5 ether, _one(MEMBERS), _one(90 ether)));
        Settlement memory theft = _batch(0, new address[](0));
        theft.orders = _orders(_item(id, m[0], 0, _one(0), _one(100 ether)));
        theft.slashes = _slashes(Slash(id, validator, 100 ether, m[0]));

        vm.startPrank(m[0]);
        uint256 idTheft = multisig.proposeReward(theft);
        multisig.confirmReward(idTheft);
        vm.stopPrank();
        uint256 idHonest = multisig.proposalId(honest);
        assertTrue(idHonest != idTheft, "the honest batch's id is taken");
        // A confirmation names the batch the member computed: the theft is not it.
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.UnknownProposal.selector, idHonest));
        vm.prank(m[1]);
        multisig.confirmReward(idHonest);

        vm.prank(m[1]);
        assertEq(multisig.proposeReward(honest), idHonest, "proposal id");
        for (uint256 i = 1; i < 4; ++i) {
            vm.prank(m[i]);
            multisig.confirmReward(idHonest);
        }
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.NotEnoughApprovals.selector, 1, 3));
        multisig.executeReward(idTheft, theft);
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.BatchMismatch.selector, idHonest));
        multisig.executeReward(idHonest, theft);

        multisig.executeReward(idHonest, honest);
        assertEq(token.balanceOf(alice), 90 ether);
        for (uint256 i; i < 4; ++i) {
            assertEq(token.balanceOf(m[i]), 2.5 ether, "committee tax");
        }
        for (uint256 i = 1; i < 3; ++i) {
            vm.prank(m[i]);
            multisig.confirmReward(idTheft);
        }
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.NonceUsed.selector, 0));
        multisig.executeReward(idTheft, theft);
        assertEq(stakes.stakerOf(validator).stake, 100 ether, "innocent validator slashed");
    }

    /// @notice A settlement nonce executes once: the same nonce re-issued with another deadline,
    ///         or in a later epoch, is refused; action nonces are a space of their own.
    function test_settlementNonceExecutesOnce() public {
        uint256 one = _placeOrder(client, 10 ether);
        uint256 two = _placeOrder(client, 20 ether);
        vm.warp(orders.finalizableAt(two));
        Settlement memory b1 = _batch(7, _addrs(alice));
        b1.orders = _orders(_item(one, alice, 0, _one(MEMBERS), _one(10 ether)));
        Settlement memory b2 = _batch(7, _addrs(alice));
        b2.deadline += 1 days;
        b2.orders = _orders(_item(two, alice, 0, _one(MEMBERS), _one(20 ether)));
        bytes memory sigs2 = _sigs(b2, 3);
        _execute(b1);
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.NonceUsed.selector, 7));
        multisig.executeSigned(b2, sigs2);

        // An action under nonce 7 is still free; it adds a member (epoch 2).
        Action memory a = Action({
            nonce: 7,
            epoch: 1,
            deadline: block.timestamp + 1 hours,
            target: address(multisig),
            data: abi.encodeCall(IRewardMultisig.addMember, (sys.pool()[4]))
        });
        multisig.executeAction(a, sys.signDigest(multisig.actionDigest(a), 3));
        assertTrue(multisig.actionNonceUsed(7) && multisig.nonceUsed(7) && !multisig.nonceUsed(8), "nonce spaces");
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.WrongEpoch.selector, 1, 2));
        multisig.executeSigned(b2, sigs2);
        b2.epoch = 2;
        _expectRevert(b2, abi.encodeWithSelector(IRewardMultisig.NonceUsed.selector, 7));
        assertEq(token.balanceOf(alice), 10 ether);
    }

    /// @notice A membership change makes a confirmed proposal and collected signatures stale,
    ///         also after the removed member comes back; a removed member's signature no longer
    ///         counts; a batch past its deadline never executes.
    function test_membershipChangeMakesApprovalsStale() public {
        uint256 id = _placeOrder(client, 10 ether);
        vm.warp(orders.finalizableAt(id));
        address[] memory m = multisig.members();
        Settlement memory b = _batch(0, _addrs(alice));
        b.orders = _orders(_item(id, alice, 0, _one(MEMBERS), _one(10 ether)));
        uint256 pid = multisig.proposalId(b);
        vm.prank(m[0]);
        multisig.proposeReward(b);
        for (uint256 i; i < 3; ++i) {
            vm.prank(m[i]);
            multisig.confirmReward(pid);
        }
        bytes memory sigs = _sigs(b, 3);

        sys.act(address(multisig), abi.encodeCall(IRewardMultisig.removeMember, (m[3])));
        sys.act(address(multisig), abi.encodeCall(IRewardMultisig.addMember, (m[3])));
        assertEq(multisig.epoch(), 3);
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.StaleProposal.selector, pid));
        multisig.executeReward(pid, b);
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.WrongEpoch.selector, 1, 3));
        multisig.executeSigned(b, sigs);

        sys.act(address(multisig), abi.encodeCall(IRewardMultisig.removeMember, (m[3])));
        b.epoch = multisig.epoch();
        address[] memory signers = new address[](3);
        (signers[0], signers[1], signers[2]) = (m[0], m[1], m[3]);
        sigs = sys.sign(multisig.settlementDigest(b), signers);
        vm.expectRevert(abi.encodeWithSelector(IRewardMultisig.NotMember.selector, m[3]));
        multisig.executeSigned(b, sigs);

        b.deadline = block.timestamp - 1;
        _expectRevert(b, abi.encodeWithSelector(IRewardMultisig.Expired.selector, b.deadline, block.timestamp));
        assertEq(token.balanceOf(alice), 0);
        b.deadline = block.timestamp;
        _execute(b);
        assertEq(token.balanceOf(alice), 10 ether);
    }

    // ---------------------------------------------------------------- slashes and verdicts

    /// @notice A verdict for a challenge its challenger already reclaimed is skipped; the other
    ///         verdict, the order and the slash of the same batch apply.
    function testFuzz_verdictOnReclaimedChallengeIsSkipped(bool upheld, uint256 reward) public {
        address v1 = makeAddr("verifier1");
        address v2 = makeAddr("verifier2");
        address validator = makeAddr("validator");
        address[3] memory who = [v1, v2, validator];
        for (uint256 i; i < 3; ++i) {
            _fund(who[i], 1_000 ether);
            vm.prank(who[i]);
            stakes.register(i < 2 ? 4 : 2, 100 ether);
        }
        uint256 id = _placeOrder(client, uint96(bound(reward, 1, 1_000_000 ether)));
        _release(id);
        (,,, uint64 challengeEnd,) = orders.windows(id);
        vm.warp(challengeEnd - CHALLENGE);
        for (uint256 i; i < 2; ++i) {
            vm.prank(who[i]);
            challenges.commitChallenge(id, keccak256(abi.encode(id, who[i], bytes32("vid"), bytes32("salt"))));
        }
        vm.warp(orders.reclaimableAt(id));
        vm.prank(v1);
        challenges.reclaimStake(id);
        uint256 escrow = orders.getOrder(id).reward;

        Settlement memory b = _batch(0, _addrs(alice, validator));
        b.orders = _orders(_item(id, alice, 0, _one(MEMBERS), _one(escrow)));
        b.slashes = _slashes(Slash(id, validator, 30 ether, v2));
        b.verdicts = new ChallengeVerdict[](2);
        b.verdicts[0] = ChallengeVerdict(id, v1, true, address(0));
        b.verdicts[1] = ChallengeVerdict(id, v2, upheld, validator);
        uint256 before2 = token.balanceOf(v2);
        bytes memory sigs = _sigs(b, 3);
        vm.expectEmit(address(challenges));
        emit VerdictSkipped(id, v1);
        multisig.executeSigned(b, sigs);

        assertEq(token.balanceOf(alice), escrow, "order skipped with the verdict");
        assertEq(uint256(challenges.getChallenge(id, v2).status), uint256(IChallengeManager.Status.Resolved));
        assertEq(token.balanceOf(v2), before2 + 30 ether + (upheld ? 50 ether : 0), "slash or verdict skipped");
        assertEq(token.balanceOf(validator), 900 ether + (upheld ? 0 : 25 ether));
        assertEq(token.balanceOf(sys.treasury()), upheld ? 0 : 25 ether);
        assertEq(token.balanceOf(address(challenges)), 0);
    }

    /// @notice Orders, slashes and verdicts wait for the order's last window, except the whole
    ///         refund of an order with no test data, which may come at trainEnd.
    function test_nothingBeforeTheLastWindow() public {
        address v = makeAddr("verifier");
        _fund(v, 1_000 ether);
        vm.prank(v);
        stakes.register(4 | 2, 200 ether);
        uint256 cancelled = _placeOrder(client, 10 ether);
        uint256 released = _placeOrder(client, 20 ether);
        (uint64 trainEnd,,,,) = orders.windows(cancelled);

        Settlement memory refund = _batch(0, _addrs(client));
        refund.orders = _orders(_item(cancelled, address(0), 0, _one(MEMBERS), _one(10 ether)));
        vm.warp(trainEnd - 1);
        _expectTooEarly(refund, cancelled, trainEnd + 2 * REVEAL);
        vm.warp(trainEnd);
        _execute(refund);
        assertEq(uint256(orders.getOrder(cancelled).status), uint256(IOrderBook.Status.Settled));

        _release(released);
        (,,, uint64 challengeEnd, uint64 last) = orders.windows(released);
        vm.warp(challengeEnd - 1);
        vm.prank(v);
        challenges.commitChallenge(released, bytes32("c"));
        vm.warp(last - 1);
        Settlement memory pay = _batch(1, _addrs(alice));
        pay.orders = _orders(_item(released, alice, 0, _one(MEMBERS), _one(20 ether)));
        _expectTooEarly(pay, released, last);
        pay.orders[0].winner = address(0);
        pay.recipients[MEMBERS] = client; // a refund after the test data came waits too
        _expectTooEarly(pay, released, last);
        Settlement memory slash = _batch(1, new address[](0));
        slash.slashes = _slashes(Slash(released, v, 1 ether, sys.treasury()));
        _expectTooEarly(slash, released, last);
        Settlement memory verdict = _batch(1, new address[](0));
        verdict.verdicts = new ChallengeVerdict[](1);
        verdict.verdicts[0] = ChallengeVerdict(released, v, true, address(0));
        _expectRevert(
            verdict,
            abi.encodeWithSelector(IChallengeManager.TooEarly.selector, released, uint64(block.timestamp), last)
        );

        vm.warp(last);
        verdict.slashes = slash.slashes;
        verdict.orders = pay.orders;
        verdict.recipients = pay.recipients;
        _execute(verdict);
        assertEq(token.balanceOf(address(orders)), 0);
        assertEq(token.balanceOf(address(challenges)), 0);
        assertEq(stakes.stakerOf(v).stake, 199 ether);
    }

    /// @notice Slashes of one staker that add up to more than its stake (some of its stake locked)
    ///         never revert: each takes what is left, one to address 0 takes nothing, the locked
    ///         part shrinks with the stake.
    function testFuzz_slashesTakeWhatIsThere(uint256 stake, uint256 locked, uint256[3] memory amounts, uint8 toZero)
        public
    {
        address v = makeAddr("validator");
        stake = bound(stake, 100 ether, 10_000 ether);
        _fund(v, stake);
        vm.prank(v);
        stakes.register(2, stake);
        locked = bound(locked, 0, stake);
        if (locked != 0) sys.act(address(stakes), abi.encodeCall(IStakeRegistry.lock, (v, locked)));
        uint256 id = _placeOrder(client, 1 ether);
        vm.warp(orders.finalizableAt(id));
        Settlement memory b = _batch(0, new address[](0));
        b.slashes = new Slash[](3);
        uint256 left = stake;
        uint256 toTreasury;
        for (uint256 i; i < 3; ++i) {
            uint256 amount = bound(amounts[i], 0, 2 * stake);
            address to = (toZero >> i) & 1 == 1 ? address(0) : sys.treasury();
            b.slashes[i] = Slash(id, v, amount, to);
            uint256 taken = to == address(0) ? 0 : amount < left ? amount : left;
            left -= taken;
            toTreasury += taken;
        }
        _execute(b);
        IStakeRegistry.Staker memory s = stakes.stakerOf(v);
        assertEq(s.stake, left, "stake after the slashes");
        assertEq(s.locked, locked < left ? locked : left, "locked part after the slashes");
        assertEq(token.balanceOf(sys.treasury()), toTreasury, "slashed tokens");
        assertEq(token.balanceOf(address(stakes)), left, "StakeRegistry balance");
    }

    /// @notice A slash waits for its order's last window; a slash naming no order (0) is refused
    ///         like one naming an unknown order (RewardMultisig._settle started `checkedOrder` at
    ///         0, so a first slash for order 0 skipped the time check and executed).
    function test_slashNamingOrderZeroIsRefused() public {
        address v = makeAddr("validator");
        _fund(v, 1_000 ether);
        vm.prank(v);
        stakes.register(2, 100 ether);
        Settlement memory b = _batch(0, new address[](0));
        b.slashes = _slashes(Slash(0, v, 100 ether, sys.treasury()));
        _expectRevert(b, abi.encodeWithSelector(IOrderBook.UnknownOrder.selector, 0));
    }

    function _expectTooEarly(Settlement memory b, uint256 id, uint256 earliest) internal {
        _expectRevert(
            b, abi.encodeWithSelector(IOrderBook.TooEarly.selector, id, uint64(block.timestamp), uint64(earliest))
        );
    }

    /// @dev Signs first: expectRevert applies to the next call, a view call included.
    function _expectRevert(Settlement memory b, bytes memory err) internal {
        bytes memory sigs = _sigs(b, multisig.threshold());
        vm.expectRevert(err);
        multisig.executeSigned(b, sigs);
    }
}
