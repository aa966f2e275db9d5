"""Committee epochs: the rules of a membership change (pot.protocol.epoch)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pot.protocol.epoch import (
    MAX_MEMBERS, ChangeKind, Committee, EpochError, MemberChange, boundary, make_change, next_committee,
)


def _a(i: int) -> str:
    return "0x" + f"{i + 1:040x}"


def _committee(n: int = 4, k: int = 3, epoch: int = 1) -> Committee:
    return Committee(epoch, tuple(_a(i) for i in range(n)), k)


def test_replace_rotate_grow_shrink():
    c = _committee()
    rep = make_change(c, "replace", [_a(0), _a(10)], deadline=9)
    assert rep.kind is ChangeKind.REPLACE and rep.threshold == 3
    c2 = next_committee(c, rep)
    assert c2.epoch == 2 and c2.members == (_a(1), _a(2), _a(3), _a(10))
    grow = make_change(c2, "add", [_a(11), _a(12), _a(13)], deadline=9)
    c3 = next_committee(c2, grow)
    assert (c3.n, c3.threshold, c3.f, c3.quorum) == (7, 5, 2, 5)
    rot = make_change(c3, "rotate", [_a(1), _a(21)], deadline=9)
    c4 = next_committee(c3, rot)
    assert _a(1) not in c4.members and c4.members[-1] == _a(21) and c4.n == 7
    shrink = make_change(c4, "remove", [_a(21)], threshold=4, deadline=9)
    assert next_committee(c4, shrink).threshold == 4
    assert MemberChange.from_json(shrink.as_json()) == shrink


@pytest.mark.parametrize("change,why", [
    (MemberChange(2, (_a(0),), (_a(9),), 3), "epoch 1"),              # names another epoch
    (MemberChange(1, (_a(8),), (_a(9),), 3), "not a member"),         # removes a stranger
    (MemberChange(1, (), (_a(1),), 3), "already a member"),           # adds a member twice
    (MemberChange(1, (), (_a(9),), 2), "not a majority"),             # k = 2 of 5
    (MemberChange(1, (), (_a(9),), 6), "not a majority"),             # k > n
    (MemberChange(1, tuple(_a(i) for i in range(4)), (), 1), "every member"),
    (MemberChange(1, (), (), 3), "changes nothing"),
])
def test_refused_changes(change, why):
    with pytest.raises(EpochError, match=why):
        next_committee(_committee(), change)


def test_malformed_changes_refused_at_construction():
    with pytest.raises(EpochError, match="twice"):
        MemberChange(1, (), (_a(9), _a(9)), 3)
    with pytest.raises(EpochError, match="both removed and added"):
        MemberChange(1, (_a(0),), (_a(0),), 3)
    with pytest.raises(EpochError, match="zero address"):
        MemberChange(1, (), ("0x" + "00" * 20,), 3)
    with pytest.raises(EpochError, match="hex address"):
        MemberChange(1, (), ("nope",), 3)
    with pytest.raises(EpochError, match="twice"):
        Committee(1, (_a(0), _a(0), _a(1)), 2)


def test_max_members():
    big = Committee(1, tuple(_a(i) for i in range(MAX_MEMBERS)), MAX_MEMBERS)
    with pytest.raises(EpochError, match=f"more than {MAX_MEMBERS}"):
        next_committee(big, MemberChange(1, (), (_a(MAX_MEMBERS),), MAX_MEMBERS))


def test_one_nonce_per_epoch_and_bound_action():
    c = _committee()
    a = make_change(c, "add", [_a(9)], deadline=77)
    b = make_change(c, "remove", [_a(3)], deadline=77)
    # Two different changes out of one epoch share a nonce: at most one executes on chain.
    assert a.action_nonce == b.action_nonce
    ms = "0x" + "cd" * 20
    act = a.action(ms)
    assert (act.epoch, act.deadline) == (1, 77)
    assert act.data[:4] == b.action(ms).data[:4] and act.data != b.action(ms).data


def test_boundary_is_the_next_checkpoint():
    assert [boundary(s, 4) for s in (0, 1, 3, 4, 5, 8)] == [4, 4, 4, 8, 8, 12]


def test_api_urls_are_checked_and_travel_in_the_signed_vote():
    from pot.pbft.crypto import public_key
    from pot.protocol.eip712 import Domain
    from pot.protocol.epoch import MAX_API_URL, Joining, check_api_url, member_vote, vote_change

    assert check_api_url("https://agg.example.org:8443/pot/") == "https://agg.example.org:8443/pot"
    for bad in ("ftp://h:1", "http://", "h:8000", "http://h:8000,http://g:1", "http://h /x", "http://h:8000/?q=1",
                "http://" + "a" * MAX_API_URL, "", None):
        with pytest.raises(EpochError, match="API URL"):
            check_api_url(bad)
    key = bytes(range(1, 33))
    join = Joining(public_key(bytes(range(2, 34))), "10.0.0.1:7000", "http://10.0.0.1:8000")
    change = MemberChange(1, (), (join.account,), 3, 100)
    d = Domain.messages(31337, "0x" + "0b" * 20)
    ms = Domain.multisig(31337, "0x" + "ad" * 20)
    signed = member_vote(change, (join,), key, message_domain=d, multisig_domain=ms)
    assert vote_change(signed.message) == (change, (join,))
    # the message signature covers the URL: another URL is another message, which the signature does not match
    moved = replace(signed.message, api_urls="http://10.6.6.6:8000")
    assert signed.message.digest(d) != moved.digest(d)
    with pytest.raises(EpochError, match="API URLs"):
        vote_change(replace(signed.message, api_urls=""))
