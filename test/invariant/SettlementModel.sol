// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {PoTToken} from "../../contracts/PoTToken.sol";
import {StakeRegistry} from "../../contracts/StakeRegistry.sol";
import {OrderBook} from "../../contracts/OrderBook.sol";
import {ChallengeManager} from "../../contracts/ChallengeManager.sol";
import {RewardMultisig} from "../../contracts/RewardMultisig.sol";
import {IOrderBook} from "../../contracts/interfaces/IOrderBook.sol";
import {IChallengeManager} from "../../contracts/interfaces/IChallengeManager.sol";
import {Settlement, OrderSettlement, Slash, ChallengeVerdict} from "../../contracts/interfaces/ISettlement.sol";
import {PoTSystem} from "../utils/PoTFixture.sol";
import {CheatCodes} from "../utils/Test.sol";

// =================================================================================================
// SETTLEMENT FORMAT: everything that knows the batch format (ISettlement.sol) and the rules a
// batch is executed by lives in this file: an independent model of what a batch does (`_predict`,
// written from the rules, not from the contracts' code), the check that the chain did exactly
// that (`_check`), and a builder of batches for the handler. Adapt this file when the batch
// format or its rules change.
// =================================================================================================

/// @notice What a settlement batch must do, predicted from the rules and the state before it:
///         every known account's balance change, each order's status after, or a revert.
abstract contract SettlementModel is CheatCodes {
    uint256 internal constant INDEX_SHIFT = 240;
    uint256 internal constant AMOUNT_MASK = (1 << 240) - 1;
    uint256 internal constant NOT_KNOWN = type(uint256).max;

    PoTSystem public immutable sys;
    PoTToken public immutable token;
    StakeRegistry public immutable stakes;
    OrderBook public immutable orders;
    ChallengeManager public immutable challenges;
    RewardMultisig public immutable multisig;

    /// @dev Every account that can ever hold a token in the system: the supply invariant sums
    ///      them, and every batch's effect is checked on each of them.
    address[] internal _accounts;

    /// @notice The predicted effect of one batch.
    struct Plan {
        bool reverts;
        uint256[] before;
        int256[] delta;
        uint256[] stakeBefore;
        /// @dev each account's stake as the batch's slashes leave it
        uint256[] stake;
        IOrderBook.Status[] statusBefore;
        bool[] applies;
        /// @dev keccak(orderId, challenger) of the challenges the batch resolves
        bytes32[] resolved;
        uint256 nResolved;
    }

    /// @notice A batch under construction: arrays at capacity, their used lengths apart.
    struct Builder {
        Settlement s;
        uint256 nr;
        uint256 no;
        uint256 ns;
        uint256 nv;
    }

    constructor(PoTSystem sys_) {
        sys = sys_;
        token = sys_.token();
        stakes = sys_.stakes();
        orders = sys_.orders();
        challenges = sys_.challenges();
        multisig = sys_.multisig();
    }

    // ---------------------------------------------------------------- the rules

    /// @dev The end of an order's last window (CONVENTIONS.md timeline): the challenge reveals
    ///      when the test data came, else the test release window.
    function _finalizable(IOrderBook.Order memory o) internal pure returns (uint256) {
        return o.t3 == 0
            ? uint256(o.t0) + o.trainDuration + 2 * uint256(o.revealDuration)
            : uint256(o.t3) + o.validateDuration + 2 * uint256(o.revealDuration) + o.challengeDuration;
    }

    /// @notice What `b` does if executed now (signatures aside: the caller decides those).
    function _predict(Settlement memory b) internal view returns (Plan memory p) {
        uint256 n = _accounts.length;
        p.before = new uint256[](n);
        p.delta = new int256[](n);
        p.stake = new uint256[](n);
        p.stakeBefore = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            p.before[i] = token.balanceOf(_accounts[i]);
            p.stake[i] = stakes.stakerOf(_accounts[i]).stake;
            p.stakeBefore[i] = p.stake[i];
        }
        p.statusBefore = new IOrderBook.Status[](b.orders.length);
        p.applies = new bool[](b.orders.length);
        p.resolved = new bytes32[](b.verdicts.length);
        for (uint256 i; i < b.orders.length; ++i) {
            p.statusBefore[i] = orders.getOrder(b.orders[i].orderId).status;
        }
        if (b.epoch != multisig.epoch() || block.timestamp > b.deadline || multisig.nonceUsed(b.nonce)) {
            p.reverts = true;
            return p;
        }
        if (b.orders.length != 0) {
            if (b.members > b.recipients.length) {
                p.reverts = true;
                return p;
            }
            _predictOrders(b, p);
            if (p.reverts) return p;
        }
        _predictSlashes(b, p);
        if (p.reverts) return p;
        _predictVerdicts(b, p);
    }

    /// @dev An order applies when open (and not settled earlier in the batch), its payouts add up
    ///      to its escrow with every index naming a recipient, and a named winner is paid first;
    ///      before its last window only a whole refund to the client at/after trainEnd with no
    ///      test data applies, anything else reverts the batch. Each recipient receives the sum
    ///      over the applied orders, the first `members` recipients each applied order's perMember.
    function _predictOrders(Settlement memory b, Plan memory p) internal view {
        uint256[] memory owed = new uint256[](b.recipients.length);
        uint256 shared;
        for (uint256 i; i < b.orders.length; ++i) {
            OrderSettlement memory os = b.orders[i];
            IOrderBook.Order memory o = orders.getOrder(os.orderId);
            if (o.status != IOrderBook.Status.Open || _settledEarlier(b, p, i)) continue;
            if (!_payoutsAddUp(os, b.recipients, b.members, o.reward)) continue;
            if (block.timestamp < _finalizable(o) && !_isRefund(os, b.recipients, o)) {
                p.reverts = true;
                return;
            }
            p.applies[i] = true;
            for (uint256 j; j < os.payouts.length; ++j) {
                owed[os.payouts[j] >> INDEX_SHIFT] += os.payouts[j] & AMOUNT_MASK;
            }
            shared += os.perMember;
            p.delta[_acct(address(orders))] -= int256(uint256(o.reward));
        }
        for (uint256 i; i < b.recipients.length; ++i) {
            uint256 amount = owed[i] + (i < b.members ? shared : 0);
            if (amount == 0) continue;
            if (b.recipients[i] == address(0)) {
                p.reverts = true; // an ERC-20 transfer to 0 reverts
                return;
            }
            p.delta[_acct(b.recipients[i])] += int256(amount);
        }
    }

    function _settledEarlier(Settlement memory b, Plan memory p, uint256 i) internal pure returns (bool) {
        for (uint256 j; j < i; ++j) {
            if (p.applies[j] && b.orders[j].orderId == b.orders[i].orderId) return true;
        }
        return false;
    }

    function _payoutsAddUp(OrderSettlement memory os, address[] memory recipients, uint256 members, uint256 escrow)
        internal
        pure
        returns (bool)
    {
        if (os.perMember > escrow) return false;
        uint256 sum = os.perMember * members;
        for (uint256 j; j < os.payouts.length; ++j) {
            if (os.payouts[j] >> INDEX_SHIFT >= recipients.length) return false;
            sum += os.payouts[j] & AMOUNT_MASK;
        }
        if (sum != escrow) return false;
        if (os.winner == address(0)) return true;
        return os.payouts.length != 0 && recipients[os.payouts[0] >> INDEX_SHIFT] == os.winner
            && os.payouts[0] & AMOUNT_MASK != 0;
    }

    /// @dev The cancel refund: no test data, at/after trainEnd, the whole escrow to the client.
    function _isRefund(OrderSettlement memory os, address[] memory recipients, IOrderBook.Order memory o)
        internal
        view
        returns (bool)
    {
        return o.t3 == 0 && block.timestamp >= uint256(o.t0) + o.trainDuration && os.perMember == 0
            && os.winner == address(0) && os.payouts.length == 1 && recipients[os.payouts[0] >> INDEX_SHIFT] == o.client;
    }

    /// @dev Each slash waits for its order's last window (an unknown order reverts), then takes
    ///      what is there, up to `amount`; a slash to address 0 takes nothing.
    function _predictSlashes(Settlement memory b, Plan memory p) internal view {
        uint256 registry = _acct(address(stakes));
        for (uint256 i; i < b.slashes.length; ++i) {
            Slash memory s = b.slashes[i];
            IOrderBook.Order memory o = orders.getOrder(s.orderId);
            if (o.status == IOrderBook.Status.None || block.timestamp < _finalizable(o)) {
                p.reverts = true;
                return;
            }
            uint256 who = _acct(s.staker);
            uint256 taken = s.to == address(0) ? 0 : s.amount < p.stake[who] ? s.amount : p.stake[who];
            if (taken == 0) continue;
            p.stake[who] -= taken;
            p.delta[registry] -= int256(taken);
            p.delta[_acct(s.to)] += int256(taken);
        }
    }

    /// @dev A verdict resolves a pending challenge after its order's challenge reveals end
    ///      (earlier reverts): upheld returns the cStake, rejected pays half to the validator
    ///      and the rest to the treasury (all of it when none is named). A challenge no longer pending is
    ///      skipped.
    function _predictVerdicts(Settlement memory b, Plan memory p) internal view {
        uint256 manager = _acct(address(challenges));
        uint256 treasury = _acct(multisig.treasury());
        for (uint256 i; i < b.verdicts.length; ++i) {
            ChallengeVerdict memory v = b.verdicts[i];
            IChallengeManager.Challenge memory c = challenges.getChallenge(v.orderId, v.challenger);
            bytes32 key = keccak256(abi.encode(v.orderId, v.challenger));
            bool pending =
                c.status == IChallengeManager.Status.Committed || c.status == IChallengeManager.Status.Revealed;
            if (!pending || _resolvedEarlier(p, key)) continue;
            if (block.timestamp < _finalizable(orders.getOrder(v.orderId))) {
                p.reverts = true;
                return;
            }
            p.resolved[p.nResolved++] = key;
            int256 stake = int256(uint256(c.stake));
            p.delta[manager] -= stake;
            if (v.upheld) {
                p.delta[_acct(v.challenger)] += stake;
            } else if (v.validator == address(0)) {
                p.delta[treasury] += stake;
            } else {
                p.delta[_acct(v.validator)] += stake / 2;
                p.delta[treasury] += stake - stake / 2;
            }
        }
    }

    function _resolvedEarlier(Plan memory p, bytes32 key) internal pure returns (bool) {
        for (uint256 j; j < p.nResolved; ++j) {
            if (p.resolved[j] == key) return true;
        }
        return false;
    }

    /// @notice The chain did exactly what `p` predicted for `b`: every known account's balance
    ///         moved by its delta (so no order paid twice, no skipped order paid, the merged
    ///         payouts exact), every stake is what the slashes left, and every order named is
    ///         settled iff it applied.
    function _check(Plan memory p, Settlement memory b, string memory what) internal view {
        for (uint256 i; i < _accounts.length; ++i) {
            int256 moved = int256(token.balanceOf(_accounts[i])) - int256(p.before[i]);
            vm.assertEq(moved, p.delta[i], string.concat(what, ": balance change of ", vm.toString(_accounts[i])));
            vm.assertEq(
                stakes.stakerOf(_accounts[i]).stake,
                p.stake[i],
                string.concat(what, ": stake of ", vm.toString(_accounts[i]))
            );
        }
        for (uint256 i; i < b.orders.length; ++i) {
            IOrderBook.Status expected = p.statusBefore[i];
            for (uint256 j; j < b.orders.length; ++j) {
                if (p.applies[j] && b.orders[j].orderId == b.orders[i].orderId) expected = IOrderBook.Status.Settled;
            }
            vm.assertEq(
                uint256(orders.getOrder(b.orders[i].orderId).status),
                uint256(expected),
                string.concat(what, ": status of order ", vm.toString(b.orders[i].orderId))
            );
        }
    }

    /// @notice No known account's balance moved since `before`.
    function _unmoved(uint256[] memory before) internal view returns (bool) {
        for (uint256 i; i < _accounts.length; ++i) {
            if (token.balanceOf(_accounts[i]) != before[i]) return false;
        }
        return true;
    }

    function _balances() internal view returns (uint256[] memory b) {
        b = new uint256[](_accounts.length);
        for (uint256 i; i < _accounts.length; ++i) {
            b[i] = token.balanceOf(_accounts[i]);
        }
    }

    function _acct(address a) internal view returns (uint256) {
        for (uint256 i; i < _accounts.length; ++i) {
            if (_accounts[i] == a) return i;
        }
        revert(string.concat("model: unknown account ", vm.toString(a)));
    }

    // ---------------------------------------------------------------- building batches

    /// @dev An empty batch in the current epoch whose first recipients are the current members.
    function _builder(uint256 nonce_, uint256 deadline) internal view returns (Builder memory bld) {
        address[] memory committee = multisig.members();
        bld.s.nonce = nonce_;
        bld.s.epoch = multisig.epoch();
        bld.s.deadline = deadline;
        bld.s.recipients = new address[](committee.length + 40);
        bld.s.members = committee.length;
        bld.s.orders = new OrderSettlement[](8);
        bld.s.slashes = new Slash[](4);
        bld.s.verdicts = new ChallengeVerdict[](8);
        for (uint256 i; i < committee.length; ++i) {
            bld.s.recipients[i] = committee[i];
        }
        bld.nr = committee.length;
    }

    /// @dev The index of `a` among the recipients, appended when absent or when `fresh` (one
    ///      address may then appear twice: the contract pays each entry on its own).
    function _recipient(Builder memory bld, address a, bool fresh) internal pure returns (uint256) {
        if (!fresh) {
            for (uint256 i; i < bld.nr; ++i) {
                if (bld.s.recipients[i] == a) return i;
            }
        }
        bld.s.recipients[bld.nr] = a;
        return bld.nr++;
    }

    function _word(uint256 index, uint256 amount) internal pure returns (uint256) {
        return index << INDEX_SHIFT | amount;
    }

    /// @dev The batch with its arrays cut to their used lengths.
    function _finish(Builder memory bld) internal pure returns (Settlement memory s) {
        s = bld.s;
        (address[] memory r, OrderSettlement[] memory o, Slash[] memory sl, ChallengeVerdict[] memory v) =
            (s.recipients, s.orders, s.slashes, s.verdicts);
        (uint256 nr, uint256 no, uint256 ns, uint256 nv) = (bld.nr, bld.no, bld.ns, bld.nv);
        assembly ("memory-safe") {
            mstore(r, nr)
            mstore(o, no)
            mstore(sl, ns)
            mstore(v, nv)
        }
    }

    function _trim(uint256[] memory words, uint256 n) internal pure returns (uint256[] memory) {
        assembly ("memory-safe") {
            mstore(words, n)
        }
        return words;
    }
}
