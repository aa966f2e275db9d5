"""What ``pot aggregator propose-member`` and ``pot aggregator epoch`` do (docs/COMMITTEE.md):
read the committee's epoch from a replica's API, build a member's vote for a change and submit it.

A change is decided when k members voted for the *identical* change (same removed and added
members, k, deadline, joining keys, endpoints and API URLs). So the first member's vote opens it,
and a member who asks for the same change later joins the open one: its deadline and the joining
members' endpoints and API URLs are taken from it.
"""

from __future__ import annotations

from typing import Any

from pot.api.client import ApiClient
from pot.protocol import types as T
from pot.protocol.eip712 import Domain, address_of_key
from pot.protocol.epoch import (ChangeKind, Committee, EpochError, Joining, MemberChange, account_of,
                                check_api_url, check_endpoint, make_change, member_vote)

KINDS = ("add", "remove", "replace", "rotate")


def committee_of(status: dict[str, Any]) -> Committee:
    m = status["members"]
    keys = tuple(bytes.fromhex(x["publicKey"][2:]) if x["publicKey"] else b"" for x in m)
    eps = tuple(x["endpoint"] or "" for x in m)
    urls = tuple(x.get("apiUrl") or "" for x in m)
    return Committee(status["epoch"], tuple(x["account"] for x in m), status["threshold"],
                     keys if any(keys) else (), eps if any(eps) else (), urls if any(urls) else ())


def _joining(spec: str, default_endpoint: str | None) -> tuple[bytes, str | None]:
    """``PUBKEY[@HOST:PORT]`` -> (33-byte key, endpoint or the default)."""
    key_hex, sep, endpoint = spec.partition("@")
    try:
        key = bytes.fromhex(key_hex.removeprefix("0x"))
    except ValueError:
        key = b""
    if len(key) != 33:
        raise EpochError(f"{spec!r}: a joining member is given by its compressed public key (33 bytes of hex, "
                         f"`pot wallet new` prints it), then @host:port of its PBFT endpoint")
    return key, (check_endpoint(endpoint) if sep else default_endpoint)


def build_vote(status: dict[str, Any], kind: str, members: list[str], *, threshold: int | None,
               deadline_in: int, api_urls: list[str] | tuple[str, ...] = ()
               ) -> tuple[MemberChange, tuple[Joining, ...], dict[str, Any] | None]:
    """The change the operator asks for (``KINDS``), its joining members (``api_urls``: their
    public API URLs, in order) and the open change of the epoch it joins (None: it opens a new one)."""
    current = committee_of(status)
    if kind not in KINDS:
        raise EpochError(f"kind must be one of {', '.join(KINDS)}")
    urls_in: list[str | None] = [check_api_url(u) for u in api_urls]
    joins_in: list[tuple[bytes, str | None]] = []
    if kind == "add":
        accounts_in = []
        for spec in members:
            joins_in.append(_joining(spec, None))
    elif kind == "remove":
        accounts_in = list(members)
    else:
        if len(members) != 2:
            raise EpochError(f"{kind} takes two: the member leaving, then the joining member's PUBKEY[@HOST:PORT]")
        old = current.index(members[0])
        if old is None:
            raise EpochError(f"{members[0]} is not a member of epoch {current.epoch}")
        # a rotated key stays on the same machine: its endpoint by default
        same = current.endpoints[old] if kind == "rotate" and current.endpoints else None
        joins_in.append(_joining(members[1], same or None))
        accounts_in = [members[0]]
        if kind == "rotate" and not urls_in and current.api_urls and current.api_urls[old]:
            urls_in = [current.api_urls[old]]
    if urls_in and len(urls_in) != len(joins_in):
        raise EpochError(f"{len(joins_in)} joining members but {len(urls_in)} --api-url: give one per joining "
                         f"member, in order")
    urls_in = urls_in or [None] * len(joins_in)
    added = [account_of(k) for k, _ in joins_in]
    ck = ChangeKind.ADD if kind == "add" else ChangeKind.REMOVE if kind == "remove" else ChangeKind(kind)
    change = make_change(current, ck, accounts_in + added, threshold=threshold,
                         deadline=status["ledgerTime"] + deadline_in)
    # the identical change, opened by another member: vote for it as it stands
    for open_ in status["changes"]:
        if (open_["status"] == "voting" and open_["epoch"] == change.epoch
                and sorted(open_["removed"]) == sorted(change.removed)
                and [a["account"] for a in open_["added"]] == list(change.added)
                and open_["threshold"] == change.threshold and open_["deadline"] > status["ledgerTime"]):
            joins = tuple(Joining.from_json(a) for a in open_["added"])
            for (key, ep), url, j in zip(joins_in, urls_in, joins):
                if ep is not None and ep != j.endpoint:
                    raise EpochError(f"the open change {open_['digest']} has {j.account} at {j.endpoint}, not {ep}: "
                                     f"vote for it as it stands (leave the endpoint out) or wait for its deadline")
                if url is not None and url != j.api_url:
                    raise EpochError(f"the open change {open_['digest']} has {j.account}'s API at {j.api_url}, not "
                                     f"{url}: vote for it as it stands (leave --api-url out) or wait for its deadline")
            return (MemberChange(change.epoch, tuple(open_["removed"]), change.added, change.threshold,
                                 open_["deadline"]), joins, open_)
    missing = [k for k, ep in joins_in if ep is None]
    if missing:
        raise EpochError(f"give the endpoint of 0x{missing[0].hex()}: PUBKEY@HOST:PORT (its PBFT address)")
    no_url = [k for (k, _), url in zip(joins_in, urls_in) if url is None]
    if no_url:
        raise EpochError(f"give the public API URL of 0x{no_url[0].hex()}: --api-url http://HOST:PORT, one per "
                         f"joining member in order (workers follow the committee there)")
    return change, tuple(Joining(k, ep, url) for (k, ep), url in zip(joins_in, urls_in)), None


async def fetch_status(url: str) -> dict[str, Any]:
    async with ApiClient(url) as api:
        status = await api.get_json("/v1/epoch")
        if status is None:
            raise EpochError(f"{url} serves no /v1/epoch: is it an aggregator of this version?")
        return status


async def propose(url: str, key: bytes, kind: str, members: list[str], *, threshold: int | None = None,
                  deadline_in: int = 3600, api_urls: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Vote for a change through the replica at ``url`` with this member's ``key``: the Result,
    the change and whether it joined an open one."""
    async with ApiClient(url) as api:
        status = await api.get_json("/v1/epoch")
        info = await api.info()
        if status is None:
            raise EpochError(f"{url} serves no /v1/epoch: is it an aggregator of this version?")
        voter = address_of_key(key)
        if voter not in [m["account"] for m in status["members"]]:
            raise EpochError(f"this key ({voter}) is not a member of epoch {status['epoch']}: only members vote")
        change, joins, joined = build_vote(status, kind, members, threshold=threshold, deadline_in=deadline_in,
                                           api_urls=api_urls)
        vote = member_vote(change, joins, key, message_domain=Domain.messages(info["chainId"], info["orderBook"]),
                           multisig_domain=Domain.multisig(info["chainId"], info["rewardMultisig"]))
        result: T.Result = await api.submit(vote)
    return {"result": result, "change": change, "joins": joins, "joined": joined, "voter": voter}


def render_status(st: dict[str, Any]) -> str:
    """``pot aggregator epoch``'s table."""
    lines = [f"epoch {st['epoch']}: {st['n']} members, k = {st['threshold']} (f = {st['f']}); "
             f"ledger seq {st['ledgerSeq']}, time {st['ledgerTime']}"
             + ("; SETTLING PAUSED (a change is decided)" if st["settlingPaused"] else "")]
    lines.append(f"  {'#':>3}  {'account':<42}  {'endpoint':<21}  public key")
    for i, m in enumerate(st["members"]):
        key = m["publicKey"] or "-"
        lines.append(f"  {i:>3}  {m['account']:<42}  {(m['endpoint'] or '-'):<21}  "
                     f"{key[:14] + '…' if len(key) > 15 else key}")
    if not st["changes"]:
        lines.append("changes: none")
    for ch in st["changes"]:
        lines.append(f"change {ch['digest'][:18]}…  {ch['status'].upper()}  {ch['kind']}  "
                     f"votes {ch['votes']}/{ch['needed']}  deadline {ch['deadline']}"
                     + (f"  (in {ch['deadline'] - st['ledgerTime']} s)" if ch["deadline"] > st["ledgerTime"] else ""))
        for a in ch["removed"]:
            lines.append(f"    - {a}")
        for a in ch["added"]:
            lines.append(f"    + {a['account']} at {a['endpoint']}, API {a.get('apiUrl') or '-'}")
        lines.append(f"    k -> {ch['threshold']}; voters: {', '.join(ch['voters']) or '-'}")
    if st.get("pending"):
        p = st["pending"]
        where = (f"after PBFT sequence number {st['boundary']}" if st.get("boundary") is not None
                 else "at the first PBFT checkpoint after its confirmation")
        lines.append(f"next: epoch {p['epoch']} ({len(p['members'])} members, k = {p['threshold']}) confirmed on "
                     f"chain; takes effect {where}")
    return "\n".join(lines)
