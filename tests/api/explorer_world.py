"""A ledger with something of everything the explorer shows, built by the real ledger rules.

Order 1: two miners, three validators (one of them lies about model 0), a verifier's upheld
challenge, PoT.Verify by three members, settled by settlement 1 (executed, ``tx_hash``).
Order 3: nobody claimed it; its client cancelled; refunded by settlement 2 (not executed yet).
Order 2: placed last, still in training."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "ledger"))

from ledger_world import (CHALLENGE_END, CLIENT, COMMITTEE, CREVEAL_END, DOMAIN, MINERS, REVEAL, T0,  # noqa: E402
                          T3, VALIDATE_END, VALIDATORS, VERIFIER_, VREVEAL_END, happy_ops, mid, order,
                          salt, staked_ledger, vcommit, vreveal)

from pot.ledger import Ledger  # noqa: E402
from pot.protocol import types as T  # noqa: E402
from pot.protocol.ids import challenge_commitment, vid  # noqa: E402

LIAR = VALIDATORS[2]
WINNER = MINERS[0]
TX_HASH = b"\xab" * 32
NOW = CREVEAL_END + 130


def build(ledger: Ledger | None = None, tx_hash: bytes = TX_HASH) -> Ledger:
    led = ledger or staked_ledger()
    ops = happy_ops(1)
    ops += [(T3 + 1, vcommit(LIAR, 1, mid(0), 500_000)), (VALIDATE_END, vreveal(LIAR, 1, mid(0), 500_000))]
    wrong = vid(1, LIAR.addr, mid(0))
    c_salt = salt("challenge", 1)
    ops += [(VREVEAL_END, T.ChallengeCommitted(1, VERIFIER_.addr, challenge_commitment(1, VERIFIER_.addr, wrong, c_salt),
                                               50)),
            (CHALLENGE_END, T.ChallengeRevealed(1, VERIFIER_.addr, wrong))]
    for t, op in sorted(ops, key=lambda x: x[0]):
        res = led.apply(op, t)
        assert res.ok, (op, res.text)
    assert led.apply(T.Tick(), CREVEAL_END).ok          # model 0 is disputed: PoT.Verify
    for member in COMMITTEE[:3]:
        vr = T.VerifyResult(1, mid(0), 900_000, member.addr).sign(DOMAIN, member.key)
        assert led.apply(vr, CREVEAL_END + 1).ok
    res = led.apply(T.Tick(), CREVEAL_END + 2)
    assert res.ok and res.nonces == (1,), res.text
    assert led.apply(T.SettlementExecuted(1, (1,), tx_hash), CREVEAL_END + 3).ok

    t0 = CREVEAL_END + 4
    cancelled = T.Order(3, CLIENT.addr, 7 * 10**17, t0, 10, REVEAL, 50, 30, order().model_type, "bafyspec3", b"\x03" * 32)
    assert led.apply(T.OrderPlaced(cancelled), t0).ok
    assert led.apply(T.CancelRequest(3, CLIENT.addr).sign(DOMAIN, CLIENT.key), t0 + 10).ok
    res = led.apply(T.Tick(), t0 + 11)
    assert res.ok and res.nonces == (2,), res.text

    late = T.Order(2, CLIENT.addr, 3 * 10**18, NOW - 20, 100, REVEAL, 50, 30, order().model_type, "bafyspec2",
                   b"\x02" * 32)
    assert led.apply(T.OrderPlaced(late), NOW - 20).ok
    assert led.apply(T.Tick(), NOW).ok
    return led


__all__ = ["build", "CLIENT", "COMMITTEE", "LIAR", "MINERS", "NOW", "T0", "TX_HASH", "VALIDATORS", "VERIFIER_",
           "WINNER"]
