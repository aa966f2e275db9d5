"""Deterministic simulation of a PBFT committee in one process.

One seeded ``random.Random`` drives everything: message drops, delays (hence reordering),
duplicates, partitions that heal, crashes and restarts (a restarted replica is a new object
recovering from the ``MemoryStore`` its predecessor wrote; a crash loses what the replica had
not synced, and the simulator syncs where the node does: before any effect leaves), crashes
of the whole committee (all at once, or all but the primary and the primary 50 ms later),
pauses (a SIGSTOP: nothing is processed, then the backlog at once), per-replica clock
offsets, and one Byzantine replica (equivocating primary, bad timestamps, forged digests,
garbage votes, a primary that censors one client's requests while ordering everyone else's).

Checked on every run:
  safety   — no two correct replicas execute different batches at one sequence number;
  liveness — after the network heals and a calm period, every submitted request executes at
             every correct replica, and they are all in the same view (none alone in another).

Clients either send each request to every replica, or (``entry="one"``, as the aggregator's API
clients do) to one correct replica only, which relays it to the primary and gets every
retransmission. ``kill_primary_at`` kills the primary of view 0 for good while requests are in
flight (``revive_at``: it comes back then, after the survivors must have executed everything).

``SHAPES`` names the fault mixes CI sweeps; ``python -m pot.pbft.sim --seeds 100000`` (or
``scripts/sim_sweep.py``) runs more seeds than CI does and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import multiprocessing
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace

from .crypto import TableSigner
from .kv import KVStateMachine
from .messages import Commit, PrePrepare, Prepare, Request, batch_digest, decode, encode, request_id
from .replica import Client, Executed, Replica, ReplicaConfig, Send, SendClient, SetTimer
from .storage import MemoryStore

BYZ_MODES = ("equivocate", "bad_timestamp", "forged_digest", "garbage_votes", "silent", "censor")


def _censored(payload: bytes) -> bool:
    # The "censor" replica ignores one client's requests (those on key k0) and nothing else.
    return payload.startswith(b"k0=")


class SafetyViolation(AssertionError):
    pass


class LivenessFailure(AssertionError):
    pass


@dataclass
class SimResult:
    seed: int
    n: int
    byzantine: str | None
    requests: int
    executed_seqs: int
    views: list[int]
    messages: int
    crashes: int
    events: list[str] = field(default_factory=list)
    max_latency: float = 0.0  # submission to first execution at a correct replica, worst request


def _verify(payload: bytes) -> bool:
    # Stands in for the signature check: the Byzantine primary's invented requests fail it.
    return not payload.startswith(b"forged")


class Simulation:
    def __init__(self, seed: int, n: int | None = None, byzantine: str | None | bool = True,
                 chaos_s: float = 3.0, settle_s: float = 40.0, requests: int | None = None,
                 entry: str | None = None, kill_primary_at: float | None = None,
                 revive_at: float | None = None, faults: bool = True,
                 sizes: tuple[int, ...] = (4, 4, 4, 7), max_requests: int = 25,
                 extra_faults: bool = True, **config):
        self.rng = random.Random(seed)
        rng = self.rng
        self.seed = seed
        self.n = n or rng.choice(sizes)
        self.cfg = ReplicaConfig(
            self.n, checkpoint_interval=rng.choice((2, 4, 8)), log_size=rng.choice((8, 16, 32)),
            batch_max=rng.choice((1, 3, 8)), batch_delay=rng.choice((0.0, 0.005)),
            max_inflight=rng.choice((1, 2, 4)), view_timeout=0.3, max_view_timeout=3.0,
            status_interval=0.15, clock_skew=1.0,
            # (from its own stream: the seeds' other draws stay what they were)
            fill_delay=random.Random(f"{seed}/fill").choice((0.0, 0.002, 0.01)))
        if config:
            self.cfg = replace(self.cfg, **config)
        self.entry = entry or rng.choice(("all", "all", "one"))
        self.faults = faults
        self.kill_primary_at = kill_primary_at
        self.revive_at = revive_at
        self.dead: set[int] = set()  # killed for good (heal does not restart them)
        self.entry_of: dict[bytes, int] = {}
        if byzantine is True:
            byzantine = rng.choice(BYZ_MODES + (None,))
        self.byz_mode = byzantine or None
        # The Byzantine replica is 0, the primary of view 0, where it can do the most harm.
        self.byz = 0 if self.byz_mode else None
        self.keys = [hashlib.sha256(b"sim-key" + bytes([i])).digest() for i in range(self.n)]
        self.stores = [MemoryStore() for _ in range(self.n)]
        self.offsets = [rng.uniform(-0.2, 0.2) for _ in range(self.n)]
        self.replicas: list[Replica | None] = [None] * self.n
        self.history: list[dict[int, bytes]] = [dict() for _ in range(self.n)]
        self.queue: list = []
        self._wire_cache: dict[int, tuple] = {}
        self._others = [tuple(j for j in range(self.n) if j != i) for i in range(self.n)]
        self._ctr = 0
        self.now = 0.0
        self.drop = rng.choice((0.0, 0.05, 0.2)) if faults else 0.0
        self.dup = rng.choice((0.0, 0.05)) if faults else 0.0
        self.max_delay = rng.choice((0.002, 0.02, 0.1))
        self.partition: set[int] = set()
        self.chaos_end = chaos_s
        self.end = chaos_s + settle_s
        self.client = Client(self.cfg)
        self.payloads: dict[bytes, bytes] = {}
        self.submitted: dict[bytes, float] = {}
        self.first_exec: dict[bytes, float] = {}
        self.messages = 0
        self.crashes = 0
        self.log: list[str] = []
        self.n_requests = requests if requests is not None else rng.randint(5, max_requests)
        # Faults added with durable votes (whole-committee crashes, crashes beside a Byzantine
        # replica, pauses) draw from a stream of their own, so that a seed's other faults stay
        # what they were (extra_faults=False replays seeds found before them).
        self.extra_faults = extra_faults and faults and kill_primary_at is None
        self.rng2 = random.Random(seed * 1_000_003 + 17)
        self.paused_until: dict[int, float] = {}
        for i in range(self.n):
            self._boot(i)

    # --- plumbing ------------------------------------------------------------------------------

    def _push(self, at: float, kind: str, *data) -> None:
        self._ctr += 1
        heapq.heappush(self.queue, (at, self._ctr, kind, data))

    def _boot(self, i: int) -> None:
        r = Replica(self.cfg, i, KVStateMachine(), TableSigner(i, self.keys), verifier=_verify,
                    store=self.stores[i], now=self.now + self.offsets[i])
        self.replicas[i] = r
        self._effects(i, r.start(self.now + self.offsets[i]))

    def _correct(self, i: int) -> bool:
        return i != self.byz

    def _linked(self, a: int, b: int) -> bool:
        return (a in self.partition) == (b in self.partition)

    def _wire(self, msg):
        """The message as the receiver decodes it: every message crosses the codec, as on the
        wire, once per object (a broadcast or a retransmission of the same object is decoded
        once: messages are immutable, and the codec is most of the simulator's time)."""
        hit = self._wire_cache.get(id(msg))
        if hit is not None and hit[0] is msg:
            return hit[1]
        out = decode(encode(msg))
        if len(self._wire_cache) > 65536:
            self._wire_cache.clear()
        self._wire_cache[id(msg)] = (msg, out)
        return out

    def _send(self, src: int, dst: int, msg) -> None:
        self._send_many(src, (dst,), self._wire(msg))

    def _send_many(self, src: int, dsts, data) -> None:
        # (The simulator's hot loop: one call per effect, not per destination.)
        now = self.now
        rand = self.rng.random
        queue, push = self.queue, heapq.heappush
        if now < self.chaos_end:
            drop, dup, span = self.drop, self.dup, self.max_delay - 0.0005
            part = self.partition
            src_in = src in part
            for dst in dsts:
                if rand() < drop or ((dst in part) != src_in):
                    continue
                copies = 2 if rand() < dup else 1
                for _ in range(copies):
                    self._ctr += 1
                    push(queue, (now + 0.0005 + span * rand(), self._ctr, "msg", (src, dst, data)))
                self.messages += 1
        else:
            for dst in dsts:
                self._ctr += 1
                push(queue, (now + 0.0005 + 0.0045 * rand(), self._ctr, "msg", (src, dst, data)))
                self.messages += 1

    def _effects(self, i: int, effects: list) -> None:
        self.stores[i].sync()  # as ReplicaNode does: durable before anything leaves
        if i == self.byz:
            effects = self._byzantine(effects)
        for e in effects:
            t = type(e)
            if t is Send:
                self._send_many(i, self._others[i] if e.to is None else (e.to,), self._wire(e.msg))
            elif t is SetTimer:
                self._push(e.at - self.offsets[i] + 1e-6, "tick", i)
            elif t is SendClient:
                if self.entry == "one":
                    # The client of one (correct) replica takes that replica's word for it.
                    self.client.done.setdefault(e.msg.request_id, e.msg.result)
                else:
                    self.client.on_reply(e.msg)
            elif t is Executed:
                self._record(i, e)

    def _record(self, i: int, e: Executed) -> None:
        if not self._correct(i):
            return
        d = batch_digest(e.timestamp, e.requests)
        prev = self.history[i].get(e.seq)
        if prev is not None and prev != d:
            raise SafetyViolation(f"seed {self.seed}: replica {i} re-executed seq {e.seq} differently")
        self.history[i][e.seq] = d
        for r in e.requests:
            self.first_exec.setdefault(request_id(r), self.now)
        for j in range(self.n):
            if j != i and self._correct(j):
                other = self.history[j].get(e.seq)
                if other is not None and other != d:
                    raise SafetyViolation(
                        f"seed {self.seed}: replicas {i} and {j} executed different batches at seq {e.seq}")

    # --- the Byzantine replica ------------------------------------------------------------------

    def _byzantine(self, effects: list) -> list:
        mode = self.byz_mode
        r = self.replicas[self.byz]
        if mode == "silent":
            return [e for e in effects if type(e) is SetTimer]
        out = []
        for e in effects:
            if type(e) is Send and type(e.msg) is PrePrepare and e.msg.requests:
                pp = e.msg
                if mode == "equivocate":
                    # Half the backups get one batch, half another, both signed by us.
                    alt_reqs = tuple(reversed(pp.requests)) + (b"equivocation-%d" % pp.seq,)
                    for j in range(self.n):
                        if j == self.byz:
                            continue
                        if j % 2:
                            out.append(Send(j, pp))
                        else:
                            out.append(Send(j, self._resign(r, pp, pp.timestamp, alt_reqs)))
                    continue
                if mode == "bad_timestamp":
                    ts = pp.timestamp - 3_600_000 if self.rng.random() < 0.5 else pp.timestamp + 3_600_000
                    out.append(Send(e.to, self._resign(r, pp, max(ts, 0), pp.requests)))
                    continue
                if mode == "forged_digest":
                    if self.rng.random() < 0.5:
                        bad = replace(pp, digest=hashlib.sha256(pp.digest).digest())
                        out.append(Send(e.to, replace(bad, sig=r.signer.sign(bad.signable()))))
                    else:
                        out.append(Send(e.to, self._resign(r, pp, pp.timestamp, pp.requests + (b"forged-tx",))))
                    continue
            if mode == "garbage_votes" and type(e) is Send and type(e.msg) in (Prepare, Commit):
                m = e.msg
                junk = hashlib.sha256(m.digest + b"junk").digest()
                if type(m) is Prepare:
                    m2 = replace(m, digest=junk)
                    out.append(Send(e.to, replace(m2, sig=r.signer.sign(m2.signable()))))
                else:
                    out.append(Send(e.to, replace(m, digest=junk)))
                continue
            out.append(e)
        return out

    @staticmethod
    def _resign(r: Replica, pp: PrePrepare, ts: int, reqs: tuple) -> PrePrepare:
        p = PrePrepare(pp.view, pp.seq, ts, batch_digest(ts, reqs), reqs, pp.replica)
        return replace(p, sig=r.signer.sign(p.signable()))

    # --- scenario ------------------------------------------------------------------------------

    def _submit(self, payload: bytes) -> None:
        rid = request_id(payload)
        self.payloads[rid] = payload
        self.submitted.setdefault(rid, self.now)
        if self.entry == "one":
            # The client knows one replica (a correct one: a Byzantine replica's own clients
            # are its problem) and retransmits to it; that replica relays to the primary.
            j = self.entry_of.get(rid)
            if j is None:
                choices = [i for i in range(self.n) if self._correct(i)
                           and not (self.kill_primary_at is not None and i == 0)]
                j = self.entry_of[rid] = self.rng.choice(choices)
            self._push(self.now + self.rng.uniform(0.0005, 0.003), "req", j, payload)
            return
        for j in range(self.n):
            r = self.replicas[j]
            if r is not None and self._linked(0, j) | (self.now >= self.chaos_end):
                self._push(self.now + self.rng.uniform(0.0005, 0.003), "req", j, payload)

    def run(self) -> SimResult:
        rng = self.rng
        for k in range(self.n_requests):
            self._push(rng.uniform(0, self.chaos_end), "client", b"k%d=v%d-%d" % (rng.randint(0, 5), k, self.seed))
        # Fault schedule during the chaos phase.
        victim = rng.choice([i for i in range(self.n) if self._correct(i)])
        # A restart loses the replica's volatile state (view, prepared certificates; only the
        # committed log is persisted), which PBFT counts as a fault: with a Byzantine replica
        # already using the f = 1 budget at n = 4, a crash would exceed it.
        crash_ok = (self.byz is None or self.cfg.f >= 2) and self.faults and self.kill_primary_at is None
        if crash_ok and rng.random() < 0.6:
            t = rng.uniform(0, self.chaos_end * 0.7)
            self._push(t, "crash", victim)
            self._push(rng.uniform(t + 0.05, self.chaos_end), "restart", victim)
        if self.faults and rng.random() < 0.5:
            t = rng.uniform(0, self.chaos_end * 0.8)
            group = set(rng.sample(range(self.n), rng.randint(1, self.cfg.f)))
            self._push(t, "partition", frozenset(group))
            self._push(rng.uniform(t, self.chaos_end), "heal")
        if self.kill_primary_at is not None:
            self._push(self.kill_primary_at, "kill", 0)
            if self.revive_at is not None:
                self._push(self.revive_at, "revive", 0)
        if self.extra_faults:
            r2 = self.rng2
            if r2.random() < 0.2:
                # Power loss of the whole committee; each replica comes back at its own time.
                t = r2.uniform(0, self.chaos_end * 0.8)
                self._push(t, "crash_all", r2.choice(("all", "three-then-primary")))
                for i in range(self.n):
                    self._push(r2.uniform(t + 0.1, t + 2.0), "restart", i)
            if not crash_ok and r2.random() < 0.4:
                # Votes are durable: a crash beside a Byzantine replica is no longer a fault.
                t = r2.uniform(0, self.chaos_end * 0.7)
                self._push(t, "crash", victim)
                self._push(r2.uniform(t + 0.05, self.chaos_end), "restart", victim)
            if r2.random() < 0.3:
                # A SIGSTOP longer than the view timeout, of a replica that may be the primary.
                t = r2.uniform(0, self.chaos_end * 0.8)
                self._push(t, "pause", r2.randrange(self.n), r2.uniform(1.5, 8.0) * self.cfg.view_timeout)
        self._push(self.chaos_end, "heal")
        self._push(self.chaos_end + 0.01, "resend")
        for k in range(1, int(self.end - self.chaos_end) // 2):
            self._push(self.chaos_end + 2.0 * k, "resend")

        while self.queue:
            at, _, kind, data = heapq.heappop(self.queue)
            if at > self.end:
                break
            self.now = at
            if self.paused_until and kind in ("msg", "tick", "req"):
                dst = data[1] if kind == "msg" else data[0]
                until = self.paused_until.get(dst)
                if until is not None:
                    if at < until:
                        self._push(until, kind, *data)  # the backlog, in order, at resume
                        continue
                    del self.paused_until[dst]
            if kind == "msg":
                src, dst, raw = data
                r = self.replicas[dst]
                if r is not None and (self.now >= self.chaos_end or self._linked(src, dst)):
                    msg = raw
                    if (dst == self.byz and self.byz_mode == "censor" and type(msg) is Request
                            and _censored(msg.payload)):
                        continue  # a relayed request of the censored client: never ordered
                    self._effects(dst, r.receive(msg, src, self.now + self.offsets[dst]))
            elif kind == "tick":
                r = self.replicas[data[0]]
                if r is not None:
                    self._effects(data[0], r.tick(self.now + self.offsets[data[0]]))
            elif kind == "req":
                j, payload = data
                r = self.replicas[j]
                if j == self.byz and self.byz_mode == "censor" and _censored(payload):
                    continue
                if r is not None:
                    self._effects(j, r.request(payload, "client", self.now + self.offsets[j]))
            elif kind == "client":
                self._submit(data[0])
            elif kind == "crash":
                self._crash(data[0])
            elif kind == "crash_all":
                live = [r for r in self.replicas if r is not None]
                primary = self.cfg.primary(max(r.view for r in live)) if live else 0
                for i in range(self.n):
                    if data[0] == "all" or i != primary:
                        self._crash(i)
                if data[0] != "all":
                    self._push(at + 0.05, "crash", primary)
            elif kind == "pause":
                if data[0] not in self.dead:
                    self.paused_until[data[0]] = at + data[1]
                    self.log.append(f"{at:.3f} pause {data[0]} {data[1]:.2f}s")
            elif kind == "restart":
                if self.replicas[data[0]] is None:
                    self._boot(data[0])
                    self.log.append(f"{at:.3f} restart {data[0]}")
            elif kind == "partition":
                self.partition = set(data[0])
                self.log.append(f"{at:.3f} partition {sorted(self.partition)}")
            elif kind == "kill":
                self.replicas[data[0]] = None
                self.dead.add(data[0])
                self.crashes += 1
                self.log.append(f"{at:.3f} kill {data[0]}")
            elif kind == "revive":
                # The survivors had all the time they need: everything executed at each of them.
                self._check_liveness()
                self.dead.discard(data[0])
                self._boot(data[0])
                self.log.append(f"{at:.3f} revive {data[0]}")
            elif kind == "heal":
                self.partition = set()
                for i in range(self.n):
                    if self.replicas[i] is None and i not in self.dead:
                        self._boot(i)
            elif kind == "resend":
                # Clients retransmit unanswered requests (§4.1) once the network is healed.
                missing = [p for rid, p in self.payloads.items() if rid not in self.client.done
                           and not self._entry_executed(rid)]
                for p in missing:
                    self._submit(p)
                if not missing and self._all_executed() and self._views_agree() and not (
                        self.revive_at is not None and self.now < self.revive_at):
                    break
        self._check_liveness()
        return SimResult(self.seed, self.n, self.byz_mode, len(self.payloads),
                         max((len(h) for h in self.history), default=0),
                         [r.view for r in self.replicas if r is not None], self.messages,
                         self.crashes, self.log,
                         max((self.first_exec.get(rid, self.now) - t for rid, t in self.submitted.items()),
                             default=0.0))

    def _crash(self, i: int) -> None:
        if self.replicas[i] is None:
            return
        self.replicas[i] = None
        self.stores[i].lose_unsynced()
        self.paused_until.pop(i, None)
        self.crashes += 1
        self.log.append(f"{self.now:.3f} crash {i}")

    def _entry_executed(self, rid: bytes) -> bool:
        # A replica that got a request's batch by state transfer (or executed it before a
        # restart) keeps no reply to send: its one-replica client would wait forever.
        j = self.entry_of.get(rid)
        r = self.replicas[j] if j is not None else None
        return r is not None and rid in r.executed_ids

    def _all_executed(self) -> bool:
        want = set(self.payloads)
        return all(want <= self.replicas[i].executed_ids for i in range(self.n)
                   if self._correct(i) and i not in self.dead)

    def _views_agree(self) -> bool:
        return len({(self.replicas[i].view, self.replicas[i].in_view_change) for i in range(self.n)
                    if self._correct(i) and i not in self.dead}) == 1

    def _check_liveness(self) -> None:
        want = set(self.payloads)
        live = [i for i in range(self.n) if self._correct(i) and i not in self.dead]
        for i in live:
            r = self.replicas[i]
            missing = want - r.executed_ids
            if missing:
                raise LivenessFailure(
                    f"seed {self.seed} (n={self.n}, byz={self.byz_mode}): replica {i} misses "
                    f"{len(missing)}/{len(want)} requests; view {r.view} vc={r.in_view_change} "
                    f"pending {len(r.pending)} entry={self.entry} "
                    f"last_exec {r.last_exec} h {r.h}; log {self.log}")
        digests = {self.replicas[i].digest() for i in live
                   if self.replicas[i].last_exec == max(self.replicas[j].last_exec for j in live)}
        if len(digests) > 1:
            raise SafetyViolation(f"seed {self.seed}: correct replicas disagree on the state digest")
        views = {(self.replicas[i].view, self.replicas[i].in_view_change) for i in live}
        if len(views) > 1:
            # A correct replica alone in another view (or stuck in a view change) no longer
            # votes: one more slow replica stalls the committee (issue 10, item 2).
            raise LivenessFailure(
                f"seed {self.seed} (n={self.n}, byz={self.byz_mode}): correct replicas in different "
                f"views after the calm period: " + ", ".join(
                    f"r{i} v{self.replicas[i].view}{'*' if self.replicas[i].in_view_change else ''}"
                    for i in live) + f"; log {self.log}")


#: The fault mixes CI sweeps (tests/pbft/test_sim_sweep_*.py) and ``main`` runs by hand.
SHAPES: dict[str, dict] = {
    # small committees, 3 s of faults, a few requests
    "classic": dict(sizes=(4, 4, 4, 7), chaos_s=3.0, max_requests=25),
    # committees up to 13, 10 s of faults, up to 60 requests (issue 10: about one seed in
    # 2,000 of these left a correct replica that never executed a request again)
    "wide": dict(sizes=(4, 7, 10, 13), chaos_s=10.0, max_requests=60),
}


def run_seed(seed: int, shape: str | None = None, **kw) -> SimResult:
    if shape is not None:
        kw = {**SHAPES[shape], **kw}
    return Simulation(seed, **kw).run()


def sweep(shape: str, seeds: range | list[int]) -> list[str]:
    """Run ``seeds`` of ``shape``; the failures (one line each, seed and shape first)."""
    out = []
    for s in seeds:
        try:
            run_seed(s, shape)
        except (SafetyViolation, LivenessFailure) as exc:
            out.append(f"{shape} seed {s}: {type(exc).__name__}: {str(exc)[:2000]}")
    return out


def _one(job: tuple[str, int]) -> dict:
    shape, seed = job
    t = time.process_time()
    row = {"shape": shape, "seed": seed, "n": None, "error": None}
    try:
        r = run_seed(seed, shape)
        row.update(n=r.n, byzantine=r.byzantine, latency=round(r.max_latency, 3), messages=r.messages,
                   views=max(r.views), crashes=r.crashes)
    except (SafetyViolation, LivenessFailure) as exc:
        row.update(error=f"{type(exc).__name__}: {str(exc)[:500]}")
    row["cpu"] = time.process_time() - t
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Sweep simulator seeds: safety and liveness under faults.")
    ap.add_argument("--seeds", type=int, default=1000, help="seeds per shape")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES),
                    help="fault mix (repeatable; default: all)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", help="write every seed's row here")
    args = ap.parse_args(argv)
    shapes = args.shape or list(SHAPES)
    jobs = [(sh, s) for sh in shapes for s in range(args.start, args.start + args.seeds)]
    t0 = time.monotonic()
    rows = []
    with multiprocessing.Pool(args.jobs) as pool:
        for row in pool.imap_unordered(_one, jobs, chunksize=16):
            rows.append(row)
            if row["error"]:
                print(f"{row['shape']} seed {row['seed']}: {row['error']}", file=sys.stderr, flush=True)
    wall = time.monotonic() - t0
    print(f"{'shape':8} {'n':>3} {'seeds':>7} {'failed':>6} {'cpu ms/seed':>11} {'max cpu ms':>10} "
          f"{'p99 latency s':>13} {'max view':>8}")
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["shape"], r["n"] or 0), []).append(r)
    for (sh, n), rs in sorted(groups.items()):
        ok = [r for r in rs if not r["error"]]
        lat = sorted(r["latency"] for r in ok) or [0.0]
        print(f"{sh:8} {n or '?':>3} {len(rs):>7} {len(rs) - len(ok):>6} "
              f"{1000 * sum(r['cpu'] for r in rs) / len(rs):>11.1f} {1000 * max(r['cpu'] for r in rs):>10.0f} "
              f"{lat[min(len(lat) - 1, int(0.99 * len(lat)))]:>13.2f} {max((r['views'] for r in ok), default=0):>8}")
    failed = sum(1 for r in rows if r["error"])
    print(f"{len(rows)} seeds, {failed} failed, {wall:.0f} s on {args.jobs} processes "
          f"({sum(r['cpu'] for r in rows):.0f} CPU s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"seeds": len(rows), "failed": failed, "wall_s": round(wall, 1), "jobs": args.jobs,
                       "rows": rows}, fh)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
