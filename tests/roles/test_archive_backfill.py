"""A replica restored from a peer's snapshot (a member that joined by state transfer) has the
working state but not the archive. It copies the archive from its peers' APIs over HTTP, keeps
it only when the blobs add up to the archive hash its digest vouches for, and then answers for
old orders and settlements byte for byte as the peer does. Until then it answers "not here
yet" (503), never "unknown" (404). A peer that tampers with a row or leaves one out is refused
and the copy comes from an honest one."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import zlib
from pathlib import Path

import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).parents[1] / "ledger"))

from ledger_world import (COMMITTEE, CONFIG, MINERS, REVEAL, T0, TRAIN, VALIDATE, VALIDATORS, commit, mid,  # noqa: E402
                          order, reveal, staked_ledger, vcommit, vreveal)

from pot.api import LocalNode, create_app  # noqa: E402
from pot.api.client import ApiClient  # noqa: E402
from pot.ledger import Ledger  # noqa: E402
from pot.ledger.ledger import archive_path  # noqa: E402
from pot.protocol import types as T  # noqa: E402
from pot.protocol.eip712 import sign_digest  # noqa: E402
from pot.roles.backfill import ArchiveBackfill  # noqa: E402

ROUNDS = (0, 300, 600)       # three settlements, two orders each, windows shifted by these
PER_ROUND = 2
END = T0 + 300 * len(ROUNDS) + 400


def _history(led: Ledger) -> None:
    """Six orders through honest cycles, settled and executed in three settlements."""
    events = []
    for r, d in enumerate(ROUNDS):
        train = TRAIN + d
        train_end, t3 = T0 + train, T0 + train + REVEAL + 5
        validate_end = t3 + VALIDATE
        for oid in range(1 + r * PER_ROUND, 1 + (r + 1) * PER_ROUND):
            events.append((T0, T.OrderPlaced(order(oid, train=train))))
            for i in range(2):
                events.append((T0 + 10 + i, commit(MINERS[i], oid, mid(i))))
                events.append((train_end + i, reveal(MINERS[i], oid, mid(i))))
            events.append((t3, T.TestDataReleased(oid, "bafytest", t3)))
            for v in VALIDATORS[:2]:
                for i, score in enumerate((900_000, 800_000)):
                    events.append((t3 + 1, vcommit(v, oid, mid(i), score)))
                    events.append((validate_end, vreveal(v, oid, mid(i), score)))
        events.append((validate_end + REVEAL + 30 + REVEAL, ("settle", r)))
    for t, op in sorted(events, key=lambda e: e[0]):
        if isinstance(op, tuple):
            [nonce] = led.apply(T.Tick(), t).nonces
            [pending] = [p for p in led.pending_settlements() if p["nonce"] == nonce]
            for member in COMMITTEE[:CONFIG.threshold]:
                sig = T.SettlementSignature(nonce, member.addr, sign_digest(pending["digest"], member.key))
                assert led.apply(sig, t + 1).ok
            tx = nonce.to_bytes(32, "big")
            assert led.apply(T.SettlementExecuted(nonce, tuple(pending["orderIds"]), tx), t + 2).ok
        else:
            res = led.apply(op, t)
            assert res.ok, (t, op, res)
    assert led.open_order_ids() == [] and led.settlement_nonces() == list(range(len(ROUNDS), 0, -1))


class _Api:
    """A ledger's API on a real loopback socket (uvicorn on this loop)."""

    def __init__(self, ledger: Ledger) -> None:
        self.server = uvicorn.Server(uvicorn.Config(create_app(LocalNode(ledger, lambda: END)), host="127.0.0.1",
                                                    port=0, log_level="warning", lifespan="off"))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        self.server.should_exit = True
        await self.task


def _paths(n: int) -> list[str]:
    mids = "0x" + mid(0).hex()
    return ([f"/v1/orders/{o}" for o in range(1, n + 1)] + [f"/v1/orders/{o}/validations" for o in range(1, n + 1)]
            + [f"/v1/orders/{o}/outcome" for o in range(1, n + 1)] + [f"/v1/settlements/{s}" for s in (1, 2, 3)]
            + [f"/v1/models/{mids}", "/v1/orders?status=settled", "/v1/settlements",
               f"/v1/accounts/{MINERS[0].addr}"])


async def _answers(url: str, paths: list[str]) -> dict[str, tuple[int, bytes]]:
    async with ApiClient(url) as api:
        out = {}
        for p in paths:
            resp = await api._request("GET", p)
            out[p] = (resp.status, resp.body)
        return out


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    """A replica's ledger files with six archived orders, three executed settlements."""
    d = tmp_path_factory.mktemp("peer")
    led = staked_ledger(str(d / "ledger.db"))
    _history(led)
    snapshot = led.snapshot()
    led.close()
    return d, snapshot


def _copy_of(peer_dir: Path, dest: Path) -> Ledger:
    dest.mkdir()
    for f in peer_dir.iterdir():
        shutil.copy(f, dest / f.name)
    return Ledger(CONFIG, str(dest / "ledger.db"))


def test_a_restored_replica_backfills_its_archive_from_a_peer_and_serves_the_same_bytes(peer, tmp_path):
    peer_dir, snapshot = peer
    honest = _copy_of(peer_dir, tmp_path / "honest")
    joined = Ledger.restore(snapshot, CONFIG, str(tmp_path / "joined.db"))
    assert joined.digest() == honest.digest()
    n = len(ROUNDS) * PER_ROUND
    paths = _paths(n)

    async def scenario():
        async with _Api(honest) as peer_url, _Api(joined) as joined_url:
            want = await _answers(peer_url, paths)
            assert all(status == 200 for status, _ in want.values()), want
            # before: not here yet (503, no answer for a BFT read), never a definite "unknown"
            assert joined.archive_missing() == n + 3
            before = await _answers(joined_url, paths)
            for p in paths[:3 * n + 4]:
                assert before[p][0] == 503 and b"not-here-yet" in before[p][1], (p, before[p])
            assert (await _answers(joined_url, ["/v1/orders/99", "/v1/settlements/9"])) == {
                "/v1/orders/99": (404, (await _answers(peer_url, ["/v1/orders/99"]))["/v1/orders/99"][1]),
                "/v1/settlements/9": (404, (await _answers(peer_url, ["/v1/settlements/9"]))["/v1/settlements/9"][1])}

            bf = ArchiveBackfill(joined, [peer_url], page_rows=2)   # several pages
            assert await bf.run()
            assert bf.stats["copied"] == n + 3 and joined.archive_missing() == 0
            assert await _answers(joined_url, paths) == want
            # the copy changed no state: the digest is the one the snapshot had
            assert joined.digest() == honest.digest()
            assert await bf.run() and bf.stats["copied"] == n + 3   # nothing left to copy
    asyncio.run(scenario())
    assert not Path(archive_path(str(tmp_path / "joined.db")) + "-backfill").exists()
    honest.close()
    joined.close()


def test_a_peer_serving_a_tampered_or_missing_row_is_refused_and_an_honest_one_used(peer, tmp_path):
    peer_dir, snapshot = peer
    honest = _copy_of(peer_dir, tmp_path / "honest")
    # a liar whose order 3 blob holds the same rows, compressed otherwise: it decodes as order
    # 3, so only the accumulator can tell
    tampered = _copy_of(peer_dir, tmp_path / "tampered")
    tampered.close()
    db = sqlite3.connect(archive_path(str(tmp_path / "tampered" / "ledger.db")))
    blob = db.execute("SELECT rows FROM archive_orders WHERE order_id=3").fetchone()[0]
    db.execute("UPDATE archive_orders SET rows=? WHERE order_id=3", (zlib.compress(zlib.decompress(blob), 9),))
    # and settlement 2 with one signature left out (still a well-formed settlement 2)
    lines = zlib.decompress(db.execute("SELECT rows FROM archive_settlements WHERE nonce=2").fetchone()[0]).split(b"\n")
    db.execute("UPDATE archive_settlements SET rows=? WHERE nonce=2", (zlib.compress(b"\n".join(lines[:-1]), 1),))
    db.commit()
    db.close()
    tampered = Ledger(CONFIG, str(tmp_path / "tampered" / "ledger.db"))
    # a peer that lost a row
    lossy = _copy_of(peer_dir, tmp_path / "lossy")
    lossy._arc.execute("DELETE FROM archive_orders WHERE order_id=5")
    joined = Ledger.restore(snapshot, CONFIG, str(tmp_path / "joined.db"))
    paths = _paths(len(ROUNDS) * PER_ROUND)

    async def scenario():
        async with _Api(tampered) as bad, _Api(lossy) as short, _Api(honest) as good, _Api(joined) as mine:
            bf = ArchiveBackfill(joined, [bad, short, good])
            assert await bf.run()
            assert bf.stats["refused"] == [bad, short]
            assert await _answers(mine, paths) == await _answers(good, paths)
            # the liars alone never get a row in
            again = Ledger.restore(snapshot, CONFIG, str(tmp_path / "again.db"))
            bf2 = ArchiveBackfill(again, [bad, short])
            assert not await bf2.run()
            assert again.archive_missing() == len(ROUNDS) * PER_ROUND + 3
            assert again._arc.execute("SELECT COUNT(*) FROM archive_orders").fetchone()[0] == 0
            again.close()
    asyncio.run(scenario())
    for led in (honest, tampered, lossy, joined):
        led.close()
