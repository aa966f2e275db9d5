"""``pot bench ledger``: what the global ledger costs per message as its history grows.

Orders arrive at a steady rate (``--rate`` per second of ledger time), so the number open at a
time stays bounded (over 1,000 with the defaults) while the history grows to ``--orders``. Each
order runs a full honest cycle with real signed messages: 10 miners commit and reveal, the test
data comes, 3 validators commit and reveal a score for each of the 10 models. The ledger time
advances one second at a time with a Tick each second; the Tick that finalizes orders builds
settlements, 2f+1 committee members sign each (their signatures go through the ledger), the
settlement executes and its orders move to the archive.

What is timed: ``Ledger.apply_many`` over the wire bytes of every op (decode, signature recovery
with no cache, the rules, the digest terms, the SQLite transaction: WAL, ``synchronous=FULL``, at
most 128 ops per transaction), Ticks, finalization and archiving included. Building and signing
the messages is not timed. ``checkpoint_ms`` is what a PBFT checkpoint asks of the ledger
(``digest()`` and ``snapshot()``), measured every 128 transactions (median; the largest is in
``details``). ``db_bytes_per_order`` is the ledger's database and its archive's, with their
WALs and shared memory, on disk at the end, divided by the orders (all settled and archived by
then). ``exponent`` is the fitted growth of total apply time against messages between the two
largest rows (1.0: linear).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field

import click
from coincurve import PrivateKey

from pot.ledger import Ledger, LedgerConfig
from pot.ledger.ledger import archive_path
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.eip712 import address_of_key, sign_digest
from pot.protocol.ids import claim_commitment, model_type_to_bytes, validation_commitment

MINERS_PER_ORDER = 10
VALIDATORS_PER_ORDER = 3
MAX_OPS_PER_TX = 128
CHECKPOINT_EVERY_TX = 128
# the order's windows (seconds): lifetime train + validate + challenge + 4 * reveal = 110 s
TRAIN, REVEAL, VALIDATE, CHALLENGE = 40, 10, 20, 10


def _key(name: str) -> bytes:
    return hashlib.sha256(b"pot-bench-ledger:" + name.encode()).digest()


@dataclass
class _World:
    config: LedgerConfig
    members: list[tuple[bytes, str]]
    miners: list[tuple[bytes, str]]
    validators: list[tuple[bytes, str]]
    client: str

    @classmethod
    def make(cls) -> _World:
        def actors(prefix: str, n: int) -> list[tuple[bytes, str]]:
            return [(_key(f"{prefix}{i}"), address_of_key(_key(f"{prefix}{i}"))) for i in range(n)]
        members = actors("member", 4)
        config = LedgerConfig(chain_id=31337, order_book="0x" + "0b" * 20, reward_multisig="0x" + "ad" * 20,
                              committee=tuple(a for _k, a in members))
        return cls(config, members, actors("miner", 4 * MINERS_PER_ORDER),
                   actors("validator", 4 * VALIDATORS_PER_ORDER), address_of_key(_key("client")))


@dataclass
class _Run:
    """One row: a fresh ledger on disk, ``orders`` orders at ``rate`` per second."""
    world: _World
    orders: int
    rate: int
    path: str
    apply_s: float = 0.0
    apply_cpu_s: float = 0.0
    ops: int = 0
    signed: int = 0
    tx: int = 0
    max_open: int = 0
    checkpoints_ms: list[float] = field(default_factory=list)
    digest_ms: list[float] = field(default_factory=list)
    snapshot_bytes: int = 0
    settled: int = 0

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.world.config, self.path)
        self.domain = self.world.config.message_domain
        self.multisig = self.world.config.multisig_domain
        self.agenda: dict[int, list[tuple]] = {}
        self.pending: list[tuple[int, int]] = []     # (second, order index) of orders still to place
        self.keys: dict[bytes, PrivateKey] = {}

    # --- the schedule of one order ---------------------------------------------------------

    def _at(self, second: int, *item) -> None:
        self.agenda.setdefault(second, []).append(item)

    def _place(self, i: int, t0: int) -> None:
        order = T.Order(i + 1, self.world.client, 10**18, t0, TRAIN, REVEAL, VALIDATE, CHALLENGE,
                        model_type_to_bytes("classification-accuracy-v1"), "bafyspec", b"\x01" * 32)
        self._at(t0, "placed", order)
        train_end = t0 + TRAIN
        t3 = train_end + REVEAL                     # released as soon as the reveal window ends
        validate_end = t3 + VALIDATE
        for j in range(MINERS_PER_ORDER):
            self._at(t0 + 1 + j % (TRAIN - 1), "commit", order, j)
            self._at(train_end + j % REVEAL, "reveal", order, j)
        self._at(t3, "release", order, t3)
        for v in range(VALIDATORS_PER_ORDER):
            for j in range(MINERS_PER_ORDER):
                self._at(t3 + (v * MINERS_PER_ORDER + j) % VALIDATE, "vcommit", order, v, j)
                self._at(validate_end + (v * MINERS_PER_ORDER + j) % REVEAL, "vreveal", order, v, j)

    def _miner(self, order: T.Order, j: int) -> tuple[bytes, str]:
        return self.world.miners[(order.order_id + j) % len(self.world.miners)]

    def _validator(self, order: T.Order, v: int) -> tuple[bytes, str]:
        return self.world.validators[(order.order_id + v) % len(self.world.validators)]

    @staticmethod
    def _mid(order: T.Order, j: int) -> bytes:
        return hashlib.sha256(b"model%d:%d" % (order.order_id, j)).digest()

    @staticmethod
    def _salt(*parts: object) -> bytes:
        return hashlib.sha256(repr(parts).encode()).digest()

    def _sign(self, digest: bytes, key: bytes) -> bytes:
        # building is not timed, but at 100,000 orders a key object per signature is minutes
        pk = self.keys.get(key)
        if pk is None:
            pk = self.keys[key] = PrivateKey(key)
            return sign_digest(digest, key)  # the protocol's own signer, once per key
        sig = pk.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes([sig[64] + 27])

    def _signed(self, msg: T.Message, key: bytes) -> bytes:
        self.signed += 1
        return codec.encode(T.Signed(msg, self._sign(msg.digest(self.domain), key)))

    def _build(self, item: tuple) -> bytes:
        kind, order = item[0], item[1]
        oid = order.order_id
        if kind == "placed":
            return codec.encode(T.OrderPlaced(order))
        if kind == "release":
            return codec.encode(T.TestDataReleased(oid, "bafytest", item[2]))
        if kind in ("commit", "reveal"):
            key, addr = self._miner(order, item[2])
            mid, salt = self._mid(order, item[2]), self._salt("m", oid, item[2])
            if kind == "commit":
                return self._signed(T.ClaimCommit(oid, addr, claim_commitment(oid, addr, mid, salt)), key)
            return self._signed(T.ClaimReveal(oid, addr, mid, salt, "bafy" + mid.hex()[:40]), key)
        v, j = item[2], item[3]
        key, addr = self._validator(order, v)
        mid, salt = self._mid(order, j), self._salt("v", oid, v, j)
        score = 500_000 + 1000 * j                   # validators agree: no PoT.Verify needed
        if kind == "vcommit":
            c = validation_commitment(oid, addr, mid, score, salt)
            return self._signed(T.ValidationCommit(oid, addr, mid, c), key)
        return self._signed(T.ValidationReveal(oid, addr, mid, score, salt, 1), key)

    # --- driving the ledger ----------------------------------------------------------------

    def _apply(self, ops: list[bytes], second: int) -> list[T.Result]:
        t, c = time.perf_counter(), time.process_time()
        results = self.ledger.apply_many(ops, second)
        self.apply_s += time.perf_counter() - t
        self.apply_cpu_s += time.process_time() - c
        self.ops += len(ops)
        self.tx += 1
        if self.tx % CHECKPOINT_EVERY_TX == 0:
            t = time.perf_counter()
            self.ledger.digest()
            d = time.perf_counter()
            snap = self.ledger.snapshot()
            e = time.perf_counter()
            self.checkpoints_ms.append((e - t) * 1000)
            self.digest_ms.append((d - t) * 1000)
            self.snapshot_bytes = max(self.snapshot_bytes, len(snap))
        bad = [r for r in results if not r.ok]
        if bad:
            raise RuntimeError(f"the ledger refused a bench op at {second}: {bad[0].reason_enum.name} {bad[0].text}")
        return results

    def run(self) -> None:
        led = self.ledger
        for key, addr in self.world.miners:
            led.apply(T.StakeChanged(addr, T.MINER, 10**24), 0)
        for key, addr in self.world.validators:
            led.apply(T.StakeChanged(addr, T.VALIDATOR, 10**24), 0)
        threshold = self.world.config.threshold
        start = 10
        for i in range(self.orders):
            heapq.heappush(self.pending, (start + i // self.rate, i))
        second = start
        while self.pending or self.agenda or led.open_order_ids():
            while self.pending and self.pending[0][0] == second:
                _s, i = heapq.heappop(self.pending)
                self._place(i, second)
            items = self.agenda.pop(second, [])
            ops = [codec.encode(T.Tick(at=second))]
            for item in items:
                if item[0] == "raw":
                    ops.append(item[1])
                else:
                    ops.append(self._build(item))
            nonces: list[int] = []
            for k in range(0, len(ops), MAX_OPS_PER_TX):
                for r in self._apply(ops[k:k + MAX_OPS_PER_TX], second):
                    nonces += r.nonces
            self.max_open = max(self.max_open, len(led.open_order_ids()))
            # the committee signs each new settlement; it executes on-chain a second later
            for p in led.pending_settlements():
                if p["nonce"] not in nonces:
                    continue
                for key, addr in self.world.members[:threshold]:
                    sig = T.SettlementSignature(p["nonce"], addr, self._sign(p["digest"], key))
                    self._at(second + 1, "raw", codec.encode(sig))
                tx_hash = hashlib.sha256(b"tx%d" % p["nonce"]).digest()
                self._at(second + 2, "raw", codec.encode(T.SettlementExecuted(p["nonce"], tuple(p["orderIds"]),
                                                                               tx_hash)))
                self.settled += len(p["orderIds"])
            second += 1
        led.close()

    def disk_bytes(self) -> int:
        files = [self.path + ext for ext in ("", "-wal", "-shm")]
        files += [archive_path(self.path) + ext for ext in ("", "-wal", "-shm")]
        return sum(os.path.getsize(f) for f in files if os.path.exists(f))


def _row(r: _Run) -> dict:
    return {"orders": r.orders, "msgs": r.ops, "msgs_per_s": round(r.ops / r.apply_s, 1),
            "us_per_msg": round(r.apply_s / r.ops * 1e6, 2),
            "checkpoint_ms": round(statistics.median(r.checkpoints_ms), 3) if r.checkpoints_ms else None,
            "db_bytes_per_order": round(r.disk_bytes() / r.orders)}


@click.command("ledger")
@click.option("--orders", default="100,1000,10000,100000", help="History sizes (orders), comma separated.")
@click.option("--rate", default=11, type=int, show_default=True,
              help="Orders placed per second of ledger time (open at a time: about rate x 102).")
@click.option("--dir", "workdir", type=click.Path(file_okay=False), help="Where the ledger files go "
              "(default: a temporary directory, removed after).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write results as JSON.")
def command(orders, rate, workdir, json_path):
    """Ledger throughput, checkpoint cost and disk per order as the history grows."""
    sizes = [int(x) for x in orders.split(",") if x.strip()]
    world = _World.make()
    rows, details = [], []
    tmp = None if workdir else tempfile.TemporaryDirectory(prefix="pot-bench-ledger-")
    base = workdir or tmp.name
    os.makedirs(base, exist_ok=True)
    click.echo(f"{'orders':>8} {'msgs':>10} {'msgs/s':>9} {'us/msg':>8} {'cpu us':>8} {'ckpt ms':>8} "
               f"{'B/order':>8} {'max open':>8}")
    try:
        for n in sizes:
            path = os.path.join(base, f"ledger-{n}.db")
            for f in (path, archive_path(path)):
                for ext in ("", "-wal", "-shm"):
                    if os.path.exists(f + ext):
                        os.remove(f + ext)
            run = _Run(world, n, rate, path)
            run.run()
            row = _row(run)
            rows.append(row)
            details.append({"orders": n, "apply_s": round(run.apply_s, 3), "apply_cpu_s": round(run.apply_cpu_s, 3),
                            "cpu_us_per_msg": round(run.apply_cpu_s / run.ops * 1e6, 2), "signed_msgs": run.signed,
                            "transactions": run.tx, "max_open": run.max_open, "settled": run.settled,
                            "checkpoint_ms_max": round(max(run.checkpoints_ms), 3) if run.checkpoints_ms else None,
                            "checkpoints": len(run.checkpoints_ms), "disk_bytes": run.disk_bytes(),
                            "digest_ms_max": round(max(run.digest_ms), 4) if run.digest_ms else None,
                            "snapshot_bytes_max": run.snapshot_bytes})
            click.echo(f"{n:>8} {row['msgs']:>10} {row['msgs_per_s']:>9} {row['us_per_msg']:>8} "
                       f"{details[-1]['cpu_us_per_msg']:>8} "
                       f"{row['checkpoint_ms'] if row['checkpoint_ms'] is not None else '-':>8} "
                       f"{row['db_bytes_per_order']:>8} {run.max_open:>8}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    exponent = None
    if len(details) >= 2:
        a, b = details[-2], details[-1]
        ra, rb = rows[-2], rows[-1]
        exponent = round(math.log(b["apply_s"] / a["apply_s"]) / math.log(rb["msgs"] / ra["msgs"]), 3)
        click.echo(f"exponent (apply time vs messages, {ra['orders']} -> {rb['orders']} orders): {exponent}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"rows": rows, "exponent": exponent, "details": details,
                       "settings": {"rate": rate, "miners_per_order": MINERS_PER_ORDER,
                                    "validators_per_order": VALIDATORS_PER_ORDER,
                                    "max_ops_per_transaction": MAX_OPS_PER_TX, "synchronous": "FULL",
                                    "journal_mode": "WAL"}}, f, indent=2)
