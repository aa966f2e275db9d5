"""The simulator with committee changes during chaos (``pbft.epoch``).

Like ``pbft.sim``: one seeded ``random.Random`` drives drops, duplicates, delays, partitions,
crashes and restarts of ``EpochReplica`` nodes while clients send requests. On top, the
committee changes while all that goes on, as issue 15 asks of a real network:

1. a member dies for good and is *replaced* by a fresh node with a new key, which joins by
   state transfer (f + 1 matching digests);
2. the committee *grows* from 4 to 7 (three fresh nodes join);
3. one member *rotates* its key (the same node signs with a new key from the boundary on);
4. optionally one live member is *removed*; it keeps sending, and every message it sends in an
   epoch it is not a member of is refused.

A change is a request (``epoch:<from>:<spec>``) the state machine decides; a client sends each
one once the previous took effect somewhere. Checked on every run: safety (no two correct nodes
execute different batches at one sequence number, across epochs), every change took effect,
and liveness (after the calm period every request executed at every live member of the last
epoch, and they agree on view and state).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
from dataclasses import dataclass, field

from .crypto import TableSigner
from .epoch import EpochEntered, EpochReplica, EpochSpec, Epoched, SendTo
from .kv import KVStateMachine
from .messages import batch_digest, decode, encode, request_id
from .replica import Executed, ReplicaConfig, SendClient, SetTimer
from .sim import LivenessFailure, SafetyViolation
from .storage import MemoryStore, decode_snapshot_parts, encode_snapshot_parts

_PREFIX = b"epoch:"


def spec_json(spec: EpochSpec) -> bytes:
    d = {"n": spec.number, "m": list(spec.members), "k": [k.hex() for k in spec.keys]}
    if spec.endpoints:
        d["e"] = list(spec.endpoints)
    return json.dumps(d, sort_keys=True).encode()


def _spec_from(data: bytes) -> EpochSpec:
    # members are the simulator's ints or a network's address strings (JSON keeps which)
    d = json.loads(data)
    return EpochSpec(int(d["n"]), tuple(d["m"]), tuple(bytes.fromhex(k) for k in d["k"]), tuple(d.get("e", ())))


def change_request(frm: int, spec: EpochSpec) -> bytes:
    """The request that decides the change from epoch ``frm`` to ``spec`` (``CommitteeKV``)."""
    return _PREFIX + b"%d:" % frm + spec_json(spec)


class CommitteeKV(KVStateMachine):
    """The key-value machine plus a committee: ``epoch:<from>:<spec json>`` decides the change to
    ``spec`` if the committee is still in epoch ``from`` and no change is pending (the ledger
    decides a change the same way, once the chain confirmed it)."""

    def __init__(self, genesis: EpochSpec):
        super().__init__()
        self._committee = genesis
        self._pending: EpochSpec | None = None

    def execute(self, requests: list[bytes], timestamp: int) -> list[bytes]:
        out = super().execute(requests, timestamp)
        for i, r in enumerate(requests):
            if r.startswith(_PREFIX):
                frm, _, body = r[len(_PREFIX):].partition(b":")
                ok = int(frm) == self._committee.number and self._pending is None
                if ok:
                    spec = _spec_from(body)
                    ok = spec.number == self._committee.number + 1
                    if ok:
                        self._pending = spec
                out[i] = b"ok" if ok else b"refused"
        return out

    def committee(self) -> EpochSpec:
        return self._committee

    def pending_committee(self) -> EpochSpec | None:
        return self._pending

    def activate_committee(self) -> None:
        self._committee, self._pending = self._pending, None

    def digest(self) -> bytes:
        return hashlib.sha256(super().digest() + spec_json(self._committee)
                              + (spec_json(self._pending) if self._pending else b"-")).digest()

    def snapshot(self) -> bytes:
        return encode_snapshot_parts([super().snapshot(), spec_json(self._committee),
                                      spec_json(self._pending) if self._pending else b""])

    def restore(self, snapshot: bytes) -> None:
        kv, c, p = decode_snapshot_parts(snapshot)
        super().restore(kv)
        self._committee = _spec_from(c)
        self._pending = _spec_from(p) if p else None


def _wire(msg):
    if type(msg) is Epoched:
        return Epoched(msg.epoch, decode(encode(msg.msg)))
    return msg


@dataclass
class EpochSimResult:
    seed: int
    epochs: int
    members: tuple[int, ...]
    requests: int
    executed_seqs: int
    refused: int
    messages: int
    events: list[str] = field(default_factory=list)


class EpochSimulation:
    def __init__(self, seed: int, chaos_s: float = 4.0, settle_s: float = 40.0, faults: bool = True,
                 remove_live: bool | None = None):
        self.rng = rng = random.Random(seed)
        self.seed = seed
        self.cfg = ReplicaConfig(
            4, checkpoint_interval=rng.choice((2, 4, 8)), log_size=rng.choice((16, 32)),
            batch_max=rng.choice((1, 3, 8)), max_inflight=rng.choice((1, 2, 4)), view_timeout=0.3,
            max_view_timeout=3.0, status_interval=0.15, clock_skew=1.0,
            # (from its own stream: the seeds' other draws stay what they were)
            fill_delay=random.Random(f"{seed}/fill").choice((0.0, 0.002, 0.01)))
        self.keys: dict[tuple[int, int], bytes] = {}
        genesis = EpochSpec(1, (0, 1, 2, 3), tuple(self._key(i, 0) for i in range(4)))
        self.genesis = genesis
        self.nodes: dict[int, EpochReplica | None] = {}
        self.join_spec: dict[int, EpochSpec] = {}
        self.stores: dict[int, dict[int, MemoryStore]] = {}
        self.dead: set[int] = set()
        self.history: dict[int, dict[int, bytes]] = {}
        self.queue: list = []
        self._ctr = 0
        self.now = 0.0
        self.faults = faults
        self.drop = rng.choice((0.0, 0.05, 0.15)) if faults else 0.0
        self.dup = rng.choice((0.0, 0.05)) if faults else 0.0
        self.max_delay = rng.choice((0.002, 0.02, 0.08))
        self.partition: set[int] = set()
        self.chaos_end = chaos_s
        self.end = chaos_s + settle_s
        self.payloads: dict[bytes, bytes] = {}
        self.messages = 0
        self.log: list[str] = []
        # The changes, in order (each names the epoch it leaves).
        victim = rng.randrange(4)
        self.victim = victim
        survivors = [i for i in range(4) if i != victim]
        rot = rng.choice(survivors)
        self.plan: list[tuple[str, list[int], list[int], dict[int, int]]] = [
            ("replace", [victim], [4], {}),
            ("grow", [], [5, 6, 7], {}),
            ("rotate", [], [], {rot: 1}),
        ]
        self.remove_live = rng.random() < 0.5 if remove_live is None else remove_live
        if self.remove_live:
            self.removed_live = rng.choice([i for i in survivors if i != rot] + [5, 6, 7])
            self.plan.append(("remove", [self.removed_live], [], {}))
        self.specs = [genesis]
        for kind, out, add, rotate in self.plan:
            prev = self.specs[-1]
            members = tuple(m for m in prev.members if m not in out) + tuple(add)
            gen = {m: g for m, g in zip(prev.members, self._gens(prev))}
            gen.update({m: 0 for m in add})
            gen.update({m: gen[m] + d for m, d in rotate.items()})
            self.specs.append(EpochSpec(prev.number + 1, members, tuple(self._key(m, gen[m]) for m in members)))
        self.next_change = 0
        for i in range(4):
            self._boot(i)

    def _key(self, node: int, gen: int) -> bytes:
        return self.keys.setdefault((node, gen), hashlib.sha256(b"sim-epoch-key %d %d %d" % (self.seed, node, gen)).digest())

    def _gens(self, spec: EpochSpec) -> list[int]:
        inv = {v: k for k, v in self.keys.items()}
        return [inv[k][1] for k in spec.keys]

    # --- plumbing -------------------------------------------------------------------------------

    def _push(self, at: float, kind: str, *data) -> None:
        self._ctr += 1
        heapq.heappush(self.queue, (at, self._ctr, kind, data))

    def _boot(self, i: int) -> None:
        stores = self.stores.setdefault(i, {})
        r = EpochReplica(i, self.genesis, self.cfg, CommitteeKV(self.genesis),
                         lambda index, spec: TableSigner(index, spec.keys),
                         lambda e: stores.setdefault(e, MemoryStore()),
                         now=self.now, join=self.join_spec.get(i))
        self.nodes[i] = r
        self.history.setdefault(i, {})
        self._effects(i, r.start(self.now))

    def _effects(self, i: int, effects: list) -> None:
        for s in self.stores[i].values():
            s.sync()
        for e in effects:
            t = type(e)
            if t is SendTo:
                data = _wire(e.msg)
                for dst in e.to:
                    self._send(i, dst, data)
            elif t is SetTimer:
                self._push(e.at + 1e-6, "tick", i)
            elif t is Executed:
                self._record(i, e)
            elif t is EpochEntered:
                self.log.append(f"{self.now:.3f} node {i} {'enters' if e.member else 'leaves in'} "
                                f"epoch {e.epoch} at {e.start}")
            elif t is SendClient:
                pass

    def _send(self, src: int, dst: int, data) -> None:
        if self.now < self.chaos_end:
            if self.rng.random() < self.drop or ((dst in self.partition) != (src in self.partition)):
                return
            copies = 2 if self.rng.random() < self.dup else 1
            span = self.max_delay
        else:
            copies, span = 1, 0.005
        for _ in range(copies):
            self._push(self.now + 0.0005 + span * self.rng.random(), "msg", src, dst, data)
            self.messages += 1

    def _record(self, i: int, e: Executed) -> None:
        d = batch_digest(e.timestamp, e.requests)
        prev = self.history[i].get(e.seq)
        if prev is not None and prev != d:
            raise SafetyViolation(f"seed {self.seed}: node {i} re-executed seq {e.seq} differently")
        self.history[i][e.seq] = d
        for j, h in self.history.items():
            other = h.get(e.seq)
            if j != i and other is not None and other != d:
                raise SafetyViolation(f"seed {self.seed}: nodes {i} and {j} executed different batches "
                                      f"at seq {e.seq}; log {self.log}")

    def _crash(self, i: int) -> None:
        if self.nodes.get(i) is None:
            return
        self.nodes[i] = None
        for s in self.stores[i].values():
            s.lose_unsynced()
        self.log.append(f"{self.now:.3f} crash {i}")

    def _submit(self, payload: bytes) -> None:
        rid = request_id(payload)
        self.payloads[rid] = payload
        for j, r in self.nodes.items():
            if r is not None and (self.now >= self.chaos_end or j not in self.partition):
                self._push(self.now + self.rng.uniform(0.0005, 0.003), "req", j, payload)

    def _epoch_reached(self) -> int:
        return max((r.sm.committee().number for r in self.nodes.values() if r is not None), default=0)

    def _change_payload(self, k: int) -> bytes:
        return change_request(self.specs[k].number, self.specs[k + 1])

    # --- scenario -------------------------------------------------------------------------------

    def run(self) -> EpochSimResult:
        rng = self.rng
        n_req = rng.randint(10, 30)
        span = self.chaos_end + 4.0
        for k in range(n_req):
            self._push(rng.uniform(0, span), "client", b"k%d=v%d-%d" % (rng.randint(0, 5), k, self.seed))
        self._push(rng.uniform(0.2, 1.0), "kill", self.victim)
        if self.faults:
            if rng.random() < 0.5:
                t = rng.uniform(0, self.chaos_end * 0.8)
                self._push(t, "partition", rng.choice([0, 1, 2, 3, 4, 5]))
                self._push(rng.uniform(t, self.chaos_end), "heal")
            if rng.random() < 0.6:
                t = rng.uniform(0, self.chaos_end * 0.7)
                who = rng.choice([i for i in range(8) if i != self.victim])
                self._push(t, "crash", who)
                self._push(rng.uniform(t + 0.05, self.chaos_end), "restart", who)
        self._push(self.chaos_end, "heal")
        t = 0.3
        while t < self.end:
            self._push(t, "poll")
            t += 0.1
        for k in range(1, int(self.end - self.chaos_end) // 2):
            self._push(self.chaos_end + 2.0 * k, "resend")

        while self.queue:
            at, _, kind, data = heapq.heappop(self.queue)
            if at > self.end:
                break
            self.now = at
            if kind == "msg":
                src, dst, env = data
                r = self.nodes.get(dst)
                if r is not None and (self.now >= self.chaos_end
                                      or (src in self.partition) == (dst in self.partition)):
                    self._effects(dst, r.receive(env, src, self.now))
            elif kind == "tick":
                r = self.nodes.get(data[0])
                if r is not None:
                    self._effects(data[0], r.tick(self.now))
            elif kind == "req":
                j, payload = data
                r = self.nodes.get(j)
                if r is not None:
                    self._effects(j, r.request(payload, "client", self.now))
            elif kind == "client":
                self._submit(data[0])
            elif kind == "kill":
                self.nodes[data[0]] = None
                self.dead.add(data[0])
                self.log.append(f"{at:.3f} kill {data[0]} for good")
            elif kind == "crash":
                self._crash(data[0])
            elif kind == "restart":
                if data[0] in self.nodes and self.nodes[data[0]] is None and data[0] not in self.dead:
                    self._boot(data[0])
                    self.log.append(f"{at:.3f} restart {data[0]}")
            elif kind == "partition":
                self.partition = {data[0]}
                self.log.append(f"{at:.3f} partition {data[0]}")
            elif kind == "heal":
                self.partition = set()
                for i, r in list(self.nodes.items()):
                    if r is None and i not in self.dead:
                        self._boot(i)
            elif kind == "poll":
                self._poll()
            elif kind == "resend":
                missing = [p for rid, p in self.payloads.items() if not self._executed_everywhere(rid)]
                for p in missing:
                    self._submit(p)
                if not missing and self.next_change == len(self.plan) and self._settled():
                    break
        self._check()
        last = self.specs[-1]
        return EpochSimResult(self.seed, last.number, last.members, len(self.payloads),
                              max(len(h) for h in self.history.values()),
                              sum(r.refused for r in self.nodes.values() if r is not None), self.messages,
                              self.log)

    def _poll(self) -> None:
        """The operator's side: start the next change once the previous took effect somewhere;
        boot the nodes it adds (they join by state transfer)."""
        if self.next_change >= len(self.plan):
            return
        k = self.next_change
        if self._epoch_reached() < self.specs[k].number:
            return
        if k == 0 and self.now < 1.0:
            return
        spec = self.specs[k + 1]
        for node in self.plan[k][2]:
            self.join_spec[node] = spec
            self.nodes[node] = None
            self.stores.setdefault(node, {})
            self._boot(node)
        self.log.append(f"{self.now:.3f} propose {self.plan[k][0]} -> epoch {spec.number} {spec.members}")
        self._submit(self._change_payload(k))
        self.next_change += 1

    def _live_members(self) -> list[int]:
        last = self.specs[-1]
        return [m for m in last.members if m not in self.dead]

    def _executed_everywhere(self, rid: bytes) -> bool:
        for m in self._live_members():
            r = self.nodes.get(m)
            if r is None or r.inner is None or rid not in r.inner.executed_ids:
                return False
        return True

    def _settled(self) -> bool:
        rs = [self.nodes.get(m) for m in self._live_members()]
        if any(r is None or r.inner is None or r.epoch != self.specs[-1].number for r in rs):
            return False
        return len({(r.inner.view, r.inner.in_view_change) for r in rs}) == 1

    def _check(self) -> None:
        last = self.specs[-1]
        where = f"seed {self.seed}: "
        for m in self._live_members():
            r = self.nodes.get(m)
            if r is None or r.inner is None or r.epoch != last.number:
                raise LivenessFailure(where + f"node {m} is not in the last epoch {last.number} "
                                      f"(at {r.epoch if r else None}); log {self.log}")
            missing = set(self.payloads) - r.inner.executed_ids
            if missing:
                raise LivenessFailure(where + f"node {m} misses {len(missing)}/{len(self.payloads)} requests; "
                                      f"view {r.inner.view} last_exec {r.inner.last_exec}; log {self.log}")
        rs = [self.nodes[m] for m in self._live_members()]
        top = max(r.inner.last_exec for r in rs)
        if len({r.inner.digest() for r in rs if r.inner.last_exec == top}) > 1:
            raise SafetyViolation(where + "members of the last epoch disagree on the state digest")
        if not self._settled():
            raise LivenessFailure(where + "members of the last epoch in different views: " + ", ".join(
                f"{m} v{self.nodes[m].inner.view}" for m in self._live_members()) + f"; log {self.log}")
        if self.remove_live:
            gone = self.nodes.get(self.removed_live)
            if gone is not None and gone.inner is not None:
                raise LivenessFailure(where + f"removed node {self.removed_live} still runs epoch {gone.epoch}")


def run_epoch_seed(seed: int, **kw) -> EpochSimResult:
    return EpochSimulation(seed, **kw).run()
