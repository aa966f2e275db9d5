"""An op applies completely or changes nothing (ARCHITECTURE.md §4): no op can fail after it mutated
state, whatever goes wrong inside ``apply``."""

import pytest
from ledger_world import CONFIG, CREVEAL_END, MINERS, T0, happy_ops, order, staked_ledger

from pot.ledger import Ledger, LedgerStateMachine
from pot.protocol import OrderPlaced, Tick, encode
from pot.protocol import types as T
from pot.protocol.codec import decode

MANY = 300  # the Tick's result text listed every order id: over 1,024 bytes from ~220 orders on


def _many_unclaimed(led: Ledger, n: int) -> None:
    for oid in range(1, n + 1):
        assert led.apply(OrderPlaced(order(oid)), T0).ok


def test_a_tick_that_finalizes_hundreds_of_orders_settles_them_all():
    led = staked_ledger()
    _many_unclaimed(led, MANY)
    sm = LedgerStateMachine(led)
    # through PBFT's adapter, as a replica executes it: this raised after the state had changed,
    # and every replica stopped at the same batch with the orders left "settling"
    [raw] = sm.execute([encode(Tick())], CREVEAL_END + 1000)
    res = decode(raw)
    assert res.ok, res.text
    assert res.nonces and len(res.text.encode()) <= T.MAX_STRING_BYTES
    settled = {oid for st in led.pending_settlements() for oid in st["orderIds"]}
    assert settled == set(range(1, MANY + 1))
    assert all(led.order_cycle_data(oid)["status"] == "settling" for oid in (1, MANY))


class _FaultyLedger(Ledger):
    """A ledger whose Tick handler has a bug after it mutated the state (fault injection: the
    real handler runs, then an exception escapes, as the over-long result text did)."""

    armed = False

    def _tick(self, op, t):
        res = Ledger._tick(self, op, t)
        if self.armed:
            raise RuntimeError("bug after the state changed")
        return res


_FaultyLedger._HANDLERS = {**Ledger._HANDLERS, Tick: _FaultyLedger._tick}


@pytest.mark.parametrize("persistent", [False, True])
def test_an_exception_inside_apply_leaves_the_state_unchanged(tmp_path, persistent):
    path = str(tmp_path / "ledger.db") if persistent else None
    led = staked_ledger(path, cls=_FaultyLedger)
    ref = staked_ledger()
    history = sorted(happy_ops(1) + happy_ops(2), key=lambda x: x[0])
    for lg in (led, ref):
        for t, op in history:
            assert lg.apply_many([op], t)[0].ok
    assert led.digest() == ref.digest()
    before = led.digest()
    led.armed = True
    # the faulty op sits between two good ones in one batch: they still apply, it changes nothing
    late = T.StakeChanged(MINERS[2].addr, T.MINER, 2000)
    results = led.apply_many([OrderPlaced(order(3)), Tick(), late], CREVEAL_END + 1)
    assert results[0].ok and results[2].ok
    assert not results[1].ok and results[1].reason_enum is T.Reason.FAILED
    assert "RuntimeError" in results[1].text
    assert [r.ok for r in ref.apply_many([OrderPlaced(order(3)), late], CREVEAL_END + 1)] == [True, True]
    assert led.digest() == ref.digest() != before, "the failed Tick left a trace in the state"
    assert all(led.order_cycle_data(o)["status"] == "open" for o in (1, 2))
    # disarmed, the same Tick settles as it would have on a ledger that never failed
    led.armed = False
    assert led.apply(Tick(), CREVEAL_END + 2).ok and ref.apply(Tick(), CREVEAL_END + 2).ok
    assert led.digest() == ref.digest()
    if persistent:
        led.close()
        again = Ledger(CONFIG, path)
        assert again.digest() == ref.digest()
        again.close()


def test_the_request_check_keeps_the_decoded_op_and_apply_still_recovers_the_signature(monkeypatch):
    """PBFT's request check decodes a request once and ``execute`` applies that op (no second
    decode); the signature is still recovered inside ``apply`` for every request, and what the
    check refuses (garbage, a bare chain event) never reaches the ledger."""
    from pot.ledger import ledger as ledger_module
    from pot.ledger.machine import request_op
    from pot.protocol import codec

    led = staked_ledger()
    sm = LedgerStateMachine(led)
    placed = [encode(op) for t, op in happy_ops() if t == T0]
    assert not sm.verify(placed[0]) and request_op(placed[0]) is None   # a chain event enters attested
    assert not sm.verify(b"\x13garbage")
    assert sm.execute(placed, T0) and led.order(1) is not None          # (this ledger takes it directly)
    commits = [encode(op) for t, op in happy_ops() if T0 < t < T0 + 20]
    decodes, recoveries = [], []
    real_decode, real_recover = codec.decode, ledger_module.recover_digest
    monkeypatch.setattr(codec, "decode", lambda data: decodes.append(data) or real_decode(data))
    monkeypatch.setattr(ledger_module, "recover_digest", lambda d, s: recoveries.append(d) or real_recover(d, s))
    assert all(sm.verify(c) for c in commits)
    assert len(decodes) == len(commits)
    results = [decode(r) for r in sm.execute(commits, T0 + 20)]
    assert all(r.ok for r in results), results
    assert len(decodes) == len(commits) and len(recoveries) == len(commits)
    # a request the check never saw (another replica proposed it before we checked) decodes in execute
    assert decode(sm.execute([commits[0]], T0 + 21)[0]).reason_enum.name == "REPLAY"
    assert len(decodes) == len(commits) + 1 and len(recoveries) == len(commits) + 1


def test_a_batch_answers_as_its_ops_applied_one_at_a_time():
    """apply_many recovers a batch's signatures ahead of the rules: a forged, a malleable (high s)
    and a malformed op among good ones get the answers, and leave the state, that applying the
    ops one at a time gives; an op repeated in the batch is a replay the second time."""
    from ledger_world import DOMAIN, commit, mid

    from pot.protocol.eip712 import SECP256K1_N

    good = commit(MINERS[0], 1, mid(0))
    forged = commit(MINERS[1], 1, mid(1)).message.sign(DOMAIN, MINERS[2].key)
    s = int.from_bytes(good.signature[32:64], "big")
    high_s = T.Signed(commit(MINERS[2], 1, mid(2)).message, good.signature[:32]
                      + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - good.signature[64]]))
    batch = [encode(OrderPlaced(order(1))), encode(good), encode(forged), b"\x00garbage", encode(high_s),
             encode(commit(MINERS[1], 1, mid(1))), encode(good)]
    one, many = staked_ledger(), staked_ledger()
    singly = [one.apply(decode(op), T0) if op != b"\x00garbage" else None for op in batch]
    together = many.apply_many(batch, T0)
    R = T.Reason
    assert [r.reason_enum for r in together] == [R.OK, R.OK, R.BAD_SIGNATURE, R.MALFORMED, R.BAD_SIGNATURE, R.OK,
                                                 R.REPLAY]
    assert [r.reason_enum for r in together if r.reason_enum is not R.MALFORMED] == \
        [r.reason_enum for r in singly if r is not None]
    assert many.digest() == one.digest() == many.full_digest()
