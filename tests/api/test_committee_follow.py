"""``CommitteeClient`` follows a committee change (docs/COMMITTEE.md, "Workers follow the
committee"): real ledgers behind real API sockets, one per member, that apply the same ops (as
PBFT would have them do) and switch epochs. The client moves to the new committee's APIs once
f+1 replicas report it alike, never on one replica's word, and a restarted client starts from
the committee it persisted."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time

import pytest
import uvicorn

from pot.api import CommitteeClient, LocalNode, create_app
from pot.api.client import NoQuorum
from pot.ledger import Ledger, LedgerConfig
from pot.pbft.crypto import public_key
from pot.ports import free_ports
from pot.protocol import types as T
from pot.protocol.eip712 import address_of_key
from pot.protocol.epoch import Joining, make_change, member_vote

KEYS = [hashlib.sha256(f"follow-{i}".encode()).digest() for i in range(4)]
NEW = hashlib.sha256(b"follow-new").digest()
ROGUE = hashlib.sha256(b"follow-rogue").digest()
NOW = 10_000


class Api:
    """One replica's ledger behind a uvicorn socket (stopped for good with ``stop``)."""

    def __init__(self, ledger: Ledger, port: int) -> None:
        self.ledger, self.url = ledger, f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(LocalNode(ledger, lambda: NOW)), host="127.0.0.1",
                                                    port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def net():
    """Four genesis members (their API URLs in the genesis committee) and a fifth API, the
    joining member's, whose ledger is a peer's snapshot once it joins."""
    ports = free_ports(5)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    config = LedgerConfig(31337, "0x" + "0b" * 20, "0x" + "ad" * 20, tuple(address_of_key(k) for k in KEYS),
                          member_keys=tuple(public_key(k) for k in KEYS),
                          member_endpoints=tuple(f"127.0.0.1:{7000 + i}" for i in range(4)),
                          member_api_urls=tuple(urls[:4]))
    apis = []
    for i in range(5):
        led = Ledger(config)
        assert led.apply(T.Tick(), NOW).ok
        apis.append(Api(led, ports[i]))
    yield config, apis
    for a in apis:
        a.stop()


def switch(config: LedgerConfig, ledgers: list[Ledger], new_key: bytes, api_url: str) -> tuple[str, ...]:
    """Members 0-2 replace member 3 by ``new_key`` (API at ``api_url``) on ``ledgers``: the votes,
    the chain's EpochChanged and the switch at the boundary, the same ops on each."""
    join = Joining(public_key(new_key), "127.0.0.1:7100", api_url)
    change = make_change(ledgers[0].committee(), "replace", [config.committee[3], join.account],
                         deadline=NOW + 600)
    nxt = config.committee[:3] + (join.account,)
    ops = [member_vote(change, (join,), k, message_domain=config.message_domain,
                       multisig_domain=config.multisig_domain) for k in KEYS[:3]]
    ops.append(T.EpochChanged(2, b"".join(bytes.fromhex(m[2:]) for m in nxt), 3))
    for led in ledgers:
        for op in ops:
            assert led.apply(op, NOW + 1).ok
        led.activate_committee()
    return nxt


def run(coro):
    return asyncio.run(coro)


def test_client_follows_a_committee_change_and_a_restart_keeps_it(net, tmp_path):
    config, apis = net
    configured = [a.url for a in apis[:4]]
    state = tmp_path / "worker" / "committee.json"

    async def before() -> CommitteeClient:
        client = CommitteeClient(configured, state_file=state)
        assert (await client.get_json("/v1/committee/members"))["epoch"] == 1
        assert client.epoch == 1 and client.urls == configured
        await client.aclose()
        return client

    run(before())
    # member 3 is replaced by a new member whose API is apis[4]; it restores a peer's snapshot
    switch(config, [a.ledger for a in apis[:3]], NEW, apis[4].url)
    apis[4].ledger.restore_snapshot(apis[0].ledger.snapshot())
    apis[3].stop()  # the replaced member is gone for good

    async def after() -> None:
        client = CommitteeClient(configured, state_file=state)
        assert await client.refresh_committee()
        assert client.epoch == 2 and client.f == 1
        assert client.urls == [a.url for a in apis[:3]] + [apis[4].url]
        await client.aclose()

    run(after())
    # two more of the first members leave: f+1 of the configured list no longer answer
    apis[0].stop()
    apis[1].stop()

    async def restarted() -> None:
        old = CommitteeClient(configured, follow=False)
        with pytest.raises(NoQuorum):
            await old.get_json("/v1/committee/members")
        await old.aclose()
        # a worker restarted with the same config starts from the committee it persisted
        client = CommitteeClient(configured, state_file=state)
        assert client.epoch == 2 and apis[4].url in client.urls
        doc = await client.get_json("/v1/committee/members")
        assert doc["epoch"] == 2 and [m["apiUrl"] for m in doc["members"]] == client.urls
        await client.aclose()
        # an operator who edits api_urls is obeyed: the persisted committee was learned from another list
        edited = CommitteeClient([apis[2].url, apis[4].url, apis[3].url], state_file=state)
        assert edited.epoch is None and edited.urls == [apis[2].url, apis[4].url, apis[3].url]
        await edited.aclose()

    run(restarted())
    assert json.loads(state.read_text())["epoch"] == 2


def test_a_newer_committee_one_replica_claims_is_refused(net, tmp_path):
    config, apis = net
    configured = [a.url for a in apis[:4]]
    # replica 0 alone says the committee moved on, to a member whose API it names (apis[4])
    switch(config, [apis[0].ledger, apis[4].ledger], ROGUE, apis[4].url)
    state = tmp_path / "committee.json"

    async def check() -> None:
        client = CommitteeClient(configured, state_file=state)
        await client.refresh_committee()
        assert client.epoch == 1 and client.urls == configured  # f+1 = 2 report epoch 1
        # even when the honest replicas that agree are too few, one replica's word is not enough
        apis[1].stop()
        apis[2].stop()
        client._next_refresh = 0.0
        with pytest.raises(NoQuorum):
            await client.refresh_committee()
        assert client.epoch == 1 and client.urls == configured
        await client.aclose()

    run(check())
    assert json.loads(state.read_text())["urls"] == configured
