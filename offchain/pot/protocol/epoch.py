"""Committee epochs: who the committee is, how it may change, and the on-chain action that
changes it (docs/COMMITTEE.md).

An epoch is one committee: its number (``RewardMultisig.epoch()`` while it signs), its members
in PBFT order (replica ``i`` is ``members[i]``) and its signature threshold k. A ``MemberChange``
moves the committee from epoch ``e`` to ``e + 1``: some members leave, some accounts join, k is
set again. Replacing a dead member, rotating a member's key (its old account leaves, its new one
joins) and growing or shrinking the committee are all one change. On chain it is one
``changeMembers(removed, added, threshold)`` call through ``executeAction``, signed by k members
of epoch ``e``, which bumps the contract's epoch by exactly one, so the ledger's epoch number and
the chain's stay equal.

Pure rules, no I/O: the ledger, the CLI, the devnet and the simulator all call these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from coincurve import PublicKey
from eth_abi import encode as abi_encode
from eth_utils import is_hex_address, to_checksum_address

from pot.protocol import types as T
from pot.protocol.committee import bft_quorum, default_threshold, max_faulty
from pot.protocol.eip712 import Domain
from pot.protocol.ids import keccak
from pot.protocol.settlement import Action

#: RewardMultisig.MAX_MEMBERS: a proposal's approvals are a 128-bit field on chain.
MAX_MEMBERS = 128
#: Action nonces of committee changes: the change out of epoch ``e`` has nonce BASE + e, so two
#: different changes out of one epoch can never both execute (and none collides with the small
#: nonces hand-made governance actions use).
MEMBER_CHANGE_NONCE_BASE = 1 << 128
#: The latest deadline a vote may name, seconds after the ledger time it is applied at: a decided
#: change pauses settling until it executes or its deadline passes, so that pause is bounded.
MAX_CHANGE_WINDOW = 24 * 3600
#: the longest API URL a member may publish (a vote carries one per joining member, every worker
#: reads them: bounded like the rest of a message)
MAX_API_URL = 200
_ZERO = "0x" + "00" * 20
_SELECTOR = keccak(b"changeMembers(address[],address[],uint256)")[:4]


class EpochError(ValueError):
    """A committee change the rules refuse; the text says why and what would be accepted."""


class ChangeKind(enum.Enum):
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"
    ROTATE = "rotate"  # same shape as replace: one account out, one in (the operator's intent)
    RESIZE = "resize"  # several in or out, or only k changes


def _addr(value: str, what: str) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise EpochError(f"{what} must be a 20-byte hex address, got {value!r}")
    a = to_checksum_address(value)
    if a == _ZERO:
        raise EpochError(f"{what} is the zero address")
    return a


def _distinct(accounts: tuple[str, ...], what: str) -> None:
    seen: set[str] = set()
    for a in accounts:
        if a in seen:
            raise EpochError(f"{a} appears twice in {what}")
        seen.add(a)


def check_threshold(k: int, n: int) -> None:
    """RewardMultisig's rule: k is a strict majority of n (two conflicting batches can never
    both gather k approvals) and at most n."""
    if type(k) is not int or not (0 < k <= n and 2 * k > n):
        raise EpochError(f"threshold {k} is not a majority of {n} members: pick k with "
                         f"{n // 2 + 1} <= k <= {n} (default {default_threshold(n) if n else 1})")


def account_of(public_key: bytes) -> str:
    """The chain account of a compressed secp256k1 public key (a member's PBFT key is its chain key)."""
    try:
        raw = PublicKey(bytes(public_key)).format(compressed=False)[1:]
    except (ValueError, TypeError) as exc:
        raise EpochError(f"not a compressed secp256k1 public key: 0x{bytes(public_key).hex()}") from exc
    return to_checksum_address(keccak(raw)[12:])


def check_endpoint(endpoint: str) -> str:
    """A member's PBFT endpoint, ``host:port``."""
    host, sep, port = endpoint.rpartition(":") if isinstance(endpoint, str) else ("", "", "")
    if (not sep or not host or not port.isdigit() or not 0 < int(port) < 65536
            or any(c in endpoint for c in ", \t\n")):
        raise EpochError(f"endpoint must be host:port (a port in 1..65535, no spaces or commas), got {endpoint!r}")
    return endpoint


def check_api_url(url: str) -> str:
    """A member's public API URL (what workers and clients follow): ``http(s)://host[:port][/path]``,
    at most ``MAX_API_URL`` characters, no spaces, commas, query or fragment."""
    from urllib.parse import urlsplit

    ok = isinstance(url, str) and 0 < len(url) <= MAX_API_URL and url.isascii() and url.isprintable() \
        and not any(c in url for c in ", \t\n?#")
    if ok:
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
        except ValueError:
            ok = False
    if not ok:
        raise EpochError(f"API URL must be http(s)://host[:port][/path] of at most {MAX_API_URL} characters "
                         f"(no spaces, commas, query or fragment), got {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True)
class Joining:
    """An account a change adds, as PBFT and the workers need it: its public key (the account
    follows from it), the ``host:port`` its replica listens on and its public API URL."""
    public_key: bytes
    endpoint: str
    api_url: str

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, (bytes, bytearray)) or len(self.public_key) != 33:
            raise EpochError("a joining member's public key is 33 bytes (compressed secp256k1)")
        object.__setattr__(self, "public_key", bytes(self.public_key))
        account_of(self.public_key)
        check_endpoint(self.endpoint)
        object.__setattr__(self, "api_url", check_api_url(self.api_url))

    @property
    def account(self) -> str:
        return account_of(self.public_key)

    def as_json(self) -> dict:
        return {"account": self.account, "publicKey": "0x" + self.public_key.hex(), "endpoint": self.endpoint,
                "apiUrl": self.api_url}

    @classmethod
    def from_json(cls, d: dict) -> Joining:
        return cls(bytes.fromhex(d["publicKey"][2:]), d["endpoint"], d["apiUrl"])


@dataclass(frozen=True)
class Committee:
    """One epoch's committee. ``members`` order is the PBFT replica order. ``keys``,
    ``endpoints`` and ``api_urls``, where known, are each member's compressed public key, PBFT
    ``host:port`` and public API URL in the same order (empty entries where unknown: a ledger
    without a PBFT committee, a genesis member whose API URL was not configured)."""
    epoch: int
    members: tuple[str, ...]
    threshold: int
    keys: tuple[bytes, ...] = ()
    endpoints: tuple[str, ...] = ()
    api_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        members = tuple(_addr(m, "member") for m in self.members)
        _distinct(members, "the committee")
        if not 1 <= len(members) <= MAX_MEMBERS:
            raise EpochError(f"a committee has 1 to {MAX_MEMBERS} members, not {len(members)}")
        if type(self.epoch) is not int or self.epoch < 1:
            raise EpochError(f"epoch must be a positive int, got {self.epoch!r}")
        check_threshold(self.threshold, len(members))
        object.__setattr__(self, "members", members)
        for name in ("keys", "endpoints", "api_urls"):
            v = tuple(getattr(self, name))
            if v and len(v) != len(members):
                raise EpochError(f"{name} has {len(v)} entries for {len(members)} members")
            object.__setattr__(self, name, v)
        object.__setattr__(self, "api_urls", tuple(u and check_api_url(u) for u in self.api_urls))

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        """PBFT's quorum (2f + 1 at n = 3f + 1)."""
        return bft_quorum(self.n)

    def index(self, account: str) -> int | None:
        try:
            return self.members.index(to_checksum_address(account))
        except ValueError:
            return None

    def same_members(self, members, threshold: int) -> bool:
        """Whether the chain's view (``RewardMultisig.members()``, any order) is this committee."""
        return sorted(to_checksum_address(m) for m in members) == sorted(self.members) \
            and int(threshold) == self.threshold

    def as_json(self) -> dict:
        out = {"epoch": self.epoch, "members": list(self.members), "threshold": self.threshold}
        if self.keys:
            out["publicKeys"] = ["0x" + k.hex() if k else None for k in self.keys]
        if self.endpoints:
            out["endpoints"] = [e or None for e in self.endpoints]
        if self.api_urls:
            out["apiUrls"] = [u or None for u in self.api_urls]
        return out


@dataclass(frozen=True)
class MemberChange:
    """Move the committee out of ``epoch``: ``removed`` leave, ``added`` join (in this order, after
    the members who stay), k becomes ``threshold``. ``deadline``: the latest block time the
    on-chain action may execute; after it the change is void and the old committee stays."""
    epoch: int
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    threshold: int = 0
    deadline: int = 0

    def __post_init__(self) -> None:
        removed = tuple(_addr(a, "a removed member") for a in self.removed)
        added = tuple(_addr(a, "an added member") for a in self.added)
        _distinct(removed, "removed")
        _distinct(added, "added")
        both = set(removed) & set(added)
        if both:
            raise EpochError(f"{sorted(both)[0]} is both removed and added")
        for name in ("epoch", "threshold", "deadline"):
            v = getattr(self, name)
            if type(v) is not int or v < 0:
                raise EpochError(f"{name} must be a non-negative int, got {v!r}")
        object.__setattr__(self, "removed", removed)
        object.__setattr__(self, "added", added)

    @property
    def kind(self) -> ChangeKind:
        if len(self.removed) == 1 and len(self.added) == 1:
            return ChangeKind.REPLACE
        if self.added and not self.removed and len(self.added) == 1:
            return ChangeKind.ADD
        if self.removed and not self.added and len(self.removed) == 1:
            return ChangeKind.REMOVE
        return ChangeKind.RESIZE

    @property
    def action_nonce(self) -> int:
        return MEMBER_CHANGE_NONCE_BASE + self.epoch

    def action(self, multisig: str) -> Action:
        """The ``executeAction`` the old committee signs: ``changeMembers`` on the multisig itself,
        bound to the old epoch (the contract refuses it in any other) and the deadline."""
        data = _SELECTOR + abi_encode(["address[]", "address[]", "uint256"],
                                      [list(self.removed), list(self.added), self.threshold])
        return Action(self.action_nonce, to_checksum_address(multisig), data, epoch=self.epoch,
                      deadline=self.deadline)

    def as_json(self) -> dict:
        return {"epoch": self.epoch, "removed": list(self.removed), "added": list(self.added),
                "threshold": self.threshold, "deadline": self.deadline, "kind": self.kind.value}

    @classmethod
    def from_json(cls, d: dict) -> MemberChange:
        return cls(int(d["epoch"]), tuple(d.get("removed", ())), tuple(d.get("added", ())),
                   int(d["threshold"]), int(d.get("deadline", 0)))


def next_committee(current: Committee, change: MemberChange) -> Committee:
    """The committee ``change`` leads to from ``current``, or ``EpochError`` saying why not.
    Members who stay keep their order (their replica ids change only by the removals before
    them); added accounts follow."""
    if change.epoch != current.epoch:
        raise EpochError(f"the change is for epoch {change.epoch}, the committee is in epoch {current.epoch}")
    members = set(current.members)
    for a in change.removed:
        if a not in members:
            raise EpochError(f"{a} is not a member of epoch {current.epoch}")
    for a in change.added:
        if a in members:
            raise EpochError(f"{a} is already a member of epoch {current.epoch}")
    if not change.removed and not change.added and change.threshold == current.threshold:
        raise EpochError("the change changes nothing")
    gone = set(change.removed)
    new = tuple(m for m in current.members if m not in gone) + change.added
    if not new:
        raise EpochError("the change removes every member")
    if len(new) > MAX_MEMBERS:
        raise EpochError(f"the change makes {len(new)} members, more than {MAX_MEMBERS}")
    check_threshold(change.threshold, len(new))
    return Committee(current.epoch + 1, new, change.threshold)


def make_change(current: Committee, kind: str | ChangeKind, accounts: list[str], *,
                threshold: int | None = None, deadline: int) -> MemberChange:
    """The change an operator asks for by name: ``add NEW…``, ``remove OLD…``, ``replace OLD NEW``
    (also ``rotate OLD NEW``: the same member's new key), ``resize`` (only k). k defaults to
    2f+1 of the new size (a majority when n is not 3f+1)."""
    kind = ChangeKind(kind) if isinstance(kind, str) else kind
    if kind in (ChangeKind.REPLACE, ChangeKind.ROTATE):
        if len(accounts) != 2:
            raise EpochError(f"{kind.value} takes two accounts: the member leaving and the one joining")
        removed, added = (accounts[0],), (accounts[1],)
    elif kind == ChangeKind.ADD:
        if not accounts:
            raise EpochError("add takes at least one account")
        removed, added = (), tuple(accounts)
    elif kind == ChangeKind.REMOVE:
        if not accounts:
            raise EpochError("remove takes at least one member")
        removed, added = tuple(accounts), ()
    else:
        if accounts:
            raise EpochError("resize changes only the threshold: use add/remove for members")
        removed, added = (), ()
    n = current.n - len(removed) + len(added)
    k = default_threshold(n) if threshold is None else threshold
    change = MemberChange(current.epoch, removed, added, k, deadline)
    next_committee(current, change)  # refuse now what the ledger would refuse
    return change


def boundary(decided_seq: int, checkpoint_interval: int) -> int:
    """The PBFT sequence number a committee change decided at ``decided_seq`` takes effect after:
    the first checkpoint strictly after it. Every replica executes the same batches up to it in
    the old epoch and none executes a batch after it there, so they all switch at one point, and
    the new epoch starts from a checkpointed state a joining member can fetch."""
    if checkpoint_interval < 1:
        raise EpochError("checkpoint interval must be positive")
    return (decided_seq // checkpoint_interval + 1) * checkpoint_interval


def next_seated(current: Committee, change: MemberChange, joins: tuple[Joining, ...]) -> Committee:
    """``next_committee`` with each member's key, endpoint and API URL: those who stay keep
    theirs, the added accounts take their ``joins`` (one per added account, same order)."""
    nxt = next_committee(current, change)
    if tuple(j.account for j in joins) != change.added:
        raise EpochError("the joining members' public keys are not the added accounts, in order")
    keys = dict(zip(current.members, current.keys or (b"",) * current.n))
    eps = dict(zip(current.members, current.endpoints or ("",) * current.n))
    urls = dict(zip(current.members, current.api_urls or ("",) * current.n))
    for j in joins:
        keys[j.account], eps[j.account], urls[j.account] = j.public_key, j.endpoint, j.api_url
    return Committee(nxt.epoch, nxt.members, nxt.threshold, tuple(keys[m] for m in nxt.members),
                     tuple(eps[m] for m in nxt.members), tuple(urls[m] for m in nxt.members))


def member_vote(change: MemberChange, joins: tuple[Joining, ...], key: bytes, *, message_domain: Domain,
                multisig_domain: Domain) -> T.Signed:
    """A member's signed vote for ``change``: its signature of the change's on-chain Action (what
    ``executeAction`` needs) inside a ``MemberVote`` signed as a participant message."""
    from pot.protocol.eip712 import address_of_key

    if tuple(j.account for j in joins) != change.added:
        raise EpochError("give one joining member (public key, endpoint, API URL) per added account, in order")
    action_sig = change.action(multisig_domain.verifying_contract).sign(multisig_domain, key)
    vote = T.MemberVote(address_of_key(key), change.epoch, b"".join(bytes.fromhex(a[2:]) for a in change.removed),
                        b"".join(j.public_key for j in joins), ",".join(j.endpoint for j in joins),
                        ",".join(j.api_url for j in joins), change.threshold, change.deadline, action_sig)
    return vote.sign(message_domain, key)


def vote_change(vote: T.MemberVote) -> tuple[MemberChange, tuple[Joining, ...]]:
    """The change and the joining members a ``MemberVote`` carries (``EpochError`` if malformed)."""
    if len(vote.removed) % 20 or len(vote.added) % 33:
        raise EpochError("removed is 20 bytes per account and added 33 bytes per public key")
    keys = [vote.added[i:i + 33] for i in range(0, len(vote.added), 33)]
    endpoints = vote.endpoints.split(",") if vote.endpoints else []
    if len(endpoints) != len(keys):
        raise EpochError(f"{len(keys)} joining members but {len(endpoints)} endpoints")
    urls = vote.api_urls.split(",") if vote.api_urls else []
    if len(urls) != len(keys):
        raise EpochError(f"{len(keys)} joining members but {len(urls)} API URLs")
    joins = tuple(Joining(k, e, u) for k, e, u in zip(keys, endpoints, urls))
    removed = tuple("0x" + vote.removed[i:i + 20].hex() for i in range(0, len(vote.removed), 20))
    change = MemberChange(vote.epoch, removed, tuple(j.account for j in joins), vote.threshold, vote.deadline)
    return change, joins
