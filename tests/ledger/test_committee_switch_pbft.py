"""The ledger as ``EpochReplica``'s state machine (through ``roles.committee.CommitteeStateMachine``):
four replicas order the members' votes and the chain's attested ``EpochChanged``; every replica
switches to the new committee at the same PBFT checkpoint; the new member joins by state transfer
(a ledger snapshot, restored into a ledger configured with the genesis committee); the removed
member retires; and the new committee orders and signs on with equal ledger digests."""

from __future__ import annotations

from collections import deque

from ledger_world import COMMITTEE, CONFIG, Actor

from pot.ledger import Ledger
from pot.pbft.crypto import TableSigner, public_key
from pot.pbft.epoch import EpochEntered, EpochReplica, SendTo
from pot.pbft.replica import ReplicaConfig
from pot.pbft.storage import MemoryStore
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.epoch import Joining, make_change, member_vote
from pot.roles.committee import CommitteeStateMachine, epoch_spec

SEATED = CONFIG.__class__(**{**CONFIG.__dict__, "member_keys": tuple(public_key(a.key) for a in COMMITTEE),
                             "member_endpoints": tuple(f"127.0.0.1:{7000 + i}" for i in range(4))})
NEW = Actor("pbft-fresh-member")
PBFT = ReplicaConfig(4, checkpoint_interval=4, log_size=16, view_timeout=1.0, status_interval=0.2, clock_skew=60.0)


class Net:
    """Replicas over an in-process, loss-free network; time moves in 10 ms steps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.genesis = epoch_spec(Ledger(SEATED).committee())
        self.nodes: dict[str, EpochReplica] = {}
        self.ledgers: dict[str, Ledger] = {}
        self.entered: dict[str, list[int]] = {}
        self.queue: deque = deque()
        for a in COMMITTEE:
            self.boot(a.addr, SEATED)

    def boot(self, addr: str, config, join=None) -> None:
        led = self.ledgers[addr] = Ledger(config)
        stores: dict[int, MemoryStore] = {}
        r = self.nodes[addr] = EpochReplica(addr, self.genesis, PBFT, CommitteeStateMachine(led),
                                            lambda i, spec: TableSigner(i, spec.keys),
                                            lambda e: stores.setdefault(e, MemoryStore()), now=self.now, join=join)
        self.effects(addr, r.start(self.now))

    def effects(self, addr: str, effects: list) -> None:
        for e in effects:
            if type(e) is SendTo:
                self.queue.extend((addr, dst, e.msg) for dst in e.to)
            elif type(e) is EpochEntered:
                self.entered.setdefault(addr, []).append(e.epoch if e.member else -e.epoch)

    def submit(self, op) -> None:
        raw = codec.encode(op)
        for addr, r in self.nodes.items():
            self.effects(addr, r.request(raw, "client", self.now))

    def run(self, until, seconds: float = 30.0) -> None:
        end = self.now + seconds
        while not until():
            assert self.now < end, "the committee did not get there in time"
            while self.queue:
                src, dst, msg = self.queue.popleft()
                if dst in self.nodes:
                    self.effects(dst, self.nodes[dst].receive(msg, src, self.now))
            self.now += 0.01
            for addr, r in list(self.nodes.items()):
                self.effects(addr, r.tick(self.now))


def test_the_committee_switches_at_one_checkpoint_and_the_new_member_joins():
    net = Net()
    led0 = net.ledgers[COMMITTEE[0].addr]
    join = Joining(public_key(NEW.key), "127.0.0.1:7100", "http://127.0.0.1:8100")
    change = make_change(led0.committee(), "replace", [COMMITTEE[3].addr, join.account], deadline=10_000)
    for a in COMMITTEE[:3]:
        net.submit(member_vote(change, (join,), a.key, message_domain=CONFIG.message_domain,
                               multisig_domain=CONFIG.multisig_domain))
    net.run(lambda: all(led.committee_changes() and led.committee_changes()[0]["status"] == "decided"
                        for led in net.ledgers.values()))
    nxt = [a.addr for a in COMMITTEE[:3]] + [NEW.addr]
    event = codec.encode(T.EpochChanged(2, b"".join(bytes.fromhex(m[2:]) for m in nxt), 3))
    for a in COMMITTEE[:2]:  # f + 1 attestations
        net.submit(T.ChainAttestation(a.addr, b"\x05" * 32, event).sign(CONFIG.message_domain, a.key))
    net.run(lambda: all(led.config.epoch == 2 for led in net.ledgers.values()))
    # every replica switched in the replicated state at the same boundary
    assert {led.digest() for led in net.ledgers.values()} == {led0.digest()}
    assert all(e == [1, 2] for a, e in net.entered.items() if a != COMMITTEE[3].addr)
    assert net.entered[COMMITTEE[3].addr] == [1, -2] and net.nodes[COMMITTEE[3].addr].retired
    # the new member joins by state transfer; its operator configured the genesis committee
    spec2 = epoch_spec(led0.committee())
    net.boot(NEW.addr, CONFIG, join=spec2)
    net.run(lambda: net.nodes[NEW.addr].epoch == 2)
    assert net.ledgers[NEW.addr].digest() == led0.digest() and net.ledgers[NEW.addr].committee() == led0.committee()
    # the new committee orders on: a request executes at every member of epoch 2, NEW included
    before = led0.seq
    net.submit(T.Tick(at=1))
    members = [a.addr for a in COMMITTEE[:3]] + [NEW.addr]
    net.run(lambda: all(net.ledgers[m].seq > before for m in members))
    assert len({net.ledgers[m].digest() for m in members}) == 1
    assert net.ledgers[COMMITTEE[3].addr].seq == before  # the removed member executes nothing more
