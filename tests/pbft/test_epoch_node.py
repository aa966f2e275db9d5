"""Committee epochs over real TCP links (pbft.epoch_node): a member stopped for good is replaced
by a fresh node with a new key that joins by state transfer, the committee grows 4 -> 7, a
joined member restarts from its stores, and a removed member can no longer take part."""

from __future__ import annotations

import asyncio

import pytest
from eth_keys import keys as eth_keys

from pot.pbft.crypto import devnet_private_key, public_key
from pot.pbft.epoch import EpochSpec, Epoched
from pot.pbft.epoch_node import EpochNode, EpochStores, node_number, parse_endpoint
from pot.pbft.epoch_wire import decode_envelope, encode_envelope
from pot.pbft.messages import DecodeError, Prepare, encode
from pot.pbft.replica import ReplicaConfig
from pot.pbft.sim_epochs import CommitteeKV, change_request
from pot.ports import free_port

CFG = ReplicaConfig(4, checkpoint_interval=4, log_size=16, view_timeout=1.0, status_interval=0.2)


class Member:
    def __init__(self, i: int):
        self.sk = devnet_private_key("epoch-node-test", i)
        self.pk = public_key(self.sk)
        self.address = eth_keys.PrivateKey(self.sk).public_key.to_checksum_address()
        self.endpoint = f"127.0.0.1:{free_port()}"


def spec(number: int, members: list[Member]) -> EpochSpec:
    return EpochSpec(number, tuple(m.address for m in members), tuple(m.pk for m in members),
                     tuple(m.endpoint for m in members))


class Net:
    def __init__(self, tmp_path, genesis: EpochSpec):
        self.tmp, self.genesis = tmp_path, genesis
        self.nodes: dict[str, EpochNode] = {}

    async def start(self, m: Member, join: EpochSpec | None = None) -> EpochNode:
        node = EpochNode(m.address, m.sk, self.genesis, CFG, CommitteeKV(self.genesis),
                         EpochStores(self.tmp / m.address, fsync=False), listen=parse_endpoint(m.endpoint),
                         join=join)
        await node.start()
        self.nodes[m.address] = node
        return node

    async def stop(self, m: Member) -> None:
        await self.nodes.pop(m.address).close()

    def submit(self, payload: bytes) -> None:
        for n in self.nodes.values():
            n.submit(payload)

    async def until(self, what, timeout: float = 20.0) -> None:
        for _ in range(int(timeout / 0.05)):
            if what():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out; nodes: {self.describe()}")

    def describe(self) -> str:
        return ", ".join(f"{a[:8]} e{n.er.epoch} v{n.replica.view if n.replica else '-'} "
                         f"x{n.replica.last_exec if n.replica else '-'}" for a, n in self.nodes.items())

    async def settle(self, members: list[Member], payload: bytes, epoch: int) -> None:
        """``payload`` executes at every one of ``members``, all in ``epoch``, with one state."""
        from pot.pbft.messages import request_id

        rid = request_id(payload)
        self.submit(payload)
        nodes = [self.nodes[m.address] for m in members]
        await self.until(lambda: all(n.replica is not None and n.er.epoch == epoch and rid in n.replica.executed_ids
                                     for n in nodes))
        await self.until(lambda: len({n.sm.digest() for n in nodes if n.replica.last_exec ==
                                      max(x.replica.last_exec for x in nodes)}) == 1)

    async def close(self) -> None:
        for n in list(self.nodes.values()):
            await n.close()


def test_replace_grow_and_restart_over_tcp(tmp_path):
    async def go():
        ms = [Member(i) for i in range(8)]
        e1 = spec(1, ms[:4])
        net = Net(tmp_path, e1)
        try:
            for m in ms[:4]:
                await net.start(m)
            await net.settle(ms[:4], b"a=1", 1)
            # Member 3 dies for good; member 4 (a fresh key) replaces it and joins by state
            # transfer from the members of epoch 2.
            await net.stop(ms[3])
            e2 = spec(2, [ms[0], ms[1], ms[2], ms[4]])
            await net.start(ms[4], join=e2)
            net.submit(change_request(1, e2))
            await net.settle([ms[0], ms[1], ms[2], ms[4]], b"b=2", 2)
            assert net.nodes[ms[4].address].sm.data[b"a"] == b"1"
            # Grow to 7.
            e3 = spec(3, [ms[0], ms[1], ms[2], ms[4], ms[5], ms[6], ms[7]])
            for m in ms[5:]:
                await net.start(m, join=e3)
            net.submit(change_request(2, e3))
            await net.settle([ms[0], ms[1], ms[2], ms[4], *ms[5:]], b"c=3", 3)
            # A joined member restarts from its own stores (it never was in the genesis).
            await net.stop(ms[6])
            await net.start(ms[6], join=e3)
            await net.settle([ms[0], ms[1], ms[2], ms[4], *ms[5:]], b"d=4", 3)
            n6 = net.nodes[ms[6].address]
            assert (n6.sm.data[b"a"], n6.sm.data[b"d"]) == (b"1", b"4")
            # A genesis member restarts and replays epochs 1..3 from its stores.
            await net.stop(ms[1])
            await net.start(ms[1])
            await net.settle([ms[0], ms[1], ms[2], ms[4], *ms[5:]], b"e=5", 3)
            # The replaced member, started again with its old key and stores, catches up in
            # epoch 1 (frozen replicas answer its fetches) and leaves at the boundary: it
            # executes nothing after it, and its votes in later epochs are refused.
            old = await net.start(ms[3])
            await net.until(lambda: old.er.retired)
            b2 = net.nodes[ms[0].address].er.frozen[1][1].last_exec
            assert old.sm.committee().number == 2 and old.er.frozen[1][1].last_exec == b2
            member = net.nodes[ms[0].address]
            refused = member.er.refused
            p = Prepare(member.replica.view, member.replica.last_exec + 1, b"\1" * 32, 3, b"sig")
            old.transport.send(node_number(ms[0].address), encode_envelope(Epoched(3, p)))
            await net.until(lambda: member.er.refused > refused)
        finally:
            await net.close()

    asyncio.run(go())


def test_envelopes_round_trip_and_bare_messages_are_refused():
    p = Prepare(1, 2, b"\1" * 32, 3, b"sig")
    assert decode_envelope(encode_envelope(Epoched(7, p))) == Epoched(7, p)
    with pytest.raises(DecodeError):
        decode_envelope(encode(p))
    with pytest.raises(DecodeError):
        decode_envelope(encode_envelope(Epoched(7, p)) + b"\0")
