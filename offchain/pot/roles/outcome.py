"""What a settled order meant for one worker, read from the committee's outcome of the order
(``GET /v1/orders/{id}/outcome``: the executed settlement's payouts, slashes and verdicts, and
every revealed model's standing score), never from the worker's own expectations.

Each function returns the events a role reports once the order's settlement executed:
``(kind, data)`` pairs that ``Worker.emit`` turns into typed events and plain words.
"""

from __future__ import annotations

from typing import Any

from pot.protocol.units import format_pot
from pot.roles.events import Kind

Outcome = list[tuple[Kind, dict[str, Any]]]


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def _paid_to(oc: dict[str, Any], address: str) -> int:
    return sum(int(p["amount"]) for p in oc["paid"] if _same(p["to"], address))


def _slashed_to(oc: dict[str, Any], address: str) -> int:
    return sum(int(s["amount"]) for s in oc["slashes"] if _same(s["to"], address))


def final(oc: dict[str, Any] | None) -> bool:
    """Whether the outcome is final: the settlement executed on-chain, or the order ended without one."""
    if oc is None:
        return False
    return bool(oc["executed"]) or oc["status"] in ("settled", "skipped", "cancelled") and oc["nonce"] is None


def _ending(oc: dict[str, Any]) -> Outcome | None:
    """Endings that are the same for every role: skipped by the contract, or no settlement at all."""
    tx = oc.get("txHash")
    if oc["executed"] and oc.get("applied") is False:
        return [(Kind.SETTLED, {"note": "the settlement skipped this order (it could no longer apply): nothing "
                                        "moved for it", "tx": tx})]
    if oc["nonce"] is None:
        return [(Kind.SETTLED, {"note": f"ended without a settlement ({oc['status']})"})]
    return None


def miner_outcome(oc: dict[str, Any], me: str) -> Outcome:
    """Won, lost (to whom, by how much), or how else the order ended for a miner that claimed it."""
    ending = _ending(oc)
    if ending:
        return ending
    tx, paid = oc["txHash"], _paid_to(oc, me)
    mine = next((m for m in oc.get("scores", []) if _same(m["miner"], me)), None)
    if _same(oc["winner"], me):
        return [(Kind.WON, {"amount": paid, "tx": tx, "score": oc["winningScore"]})]
    if oc["winner"] is None:
        if paid:
            return [(Kind.SETTLED, {"note": f"no test data was released: the reward was split among the miners "
                                            f"who revealed, {format_pot(paid)} paid to you", "tx": tx})]
        return [(Kind.SETTLED, {"note": "no model won (none was revealed and valid): the reward went back to "
                                        "the client", "tx": tx})]
    data: dict[str, Any] = {"winner": oc["winner"], "winner_score": oc["winningScore"], "tx": tx}
    if mine is None:
        data["why"] = "was not revealed"
    elif mine["score"] is None:
        data["why"] = "has no standing score"
    else:
        data["score"] = mine["score"]
    return [(Kind.LOST, data)]


def validator_outcome(oc: dict[str, Any], me: str, reported: dict[str, int]) -> Outcome:
    """Paid for scoring the winner correctly, slashed for a wrong score, or neither.
    ``reported``: this validator's revealed score by model mid (0x hex)."""
    ending = _ending(oc)
    if ending:
        return ending
    tx, out = oc["txHash"], []
    paid = _paid_to(oc, me)
    if paid:
        out.append((Kind.PAID, {"amount": paid, "tx": tx}))
    standing = {m["mid"].lower(): m["score"] for m in oc.get("scores", [])}
    for s in oc["slashes"]:
        if _same(s["staker"], me):
            wrong = next((mid for mid, score in reported.items()
                          if standing.get(mid.lower()) is not None and standing[mid.lower()] != score), None)
            out.append((Kind.SLASHED, {"amount": int(s["amount"]), "tx": tx, "mid": wrong,
                                       "reported": reported.get(wrong) if wrong else None,
                                       "correct": standing.get(wrong.lower()) if wrong else None}))
    if not out:
        out.append((Kind.SETTLED, {"note": "settled; nothing paid to you (the validators' share goes to those who "
                                           "scored the winner)", "tx": tx}))
    return out


def verifier_outcome(oc: dict[str, Any], me: str) -> Outcome:
    """The verdict on this verifier's challenge, and what it paid."""
    ending = _ending(oc)
    if ending:
        return ending
    tx, out = oc["txHash"], []
    for v in oc["verdicts"]:
        if _same(v["challenger"], me):
            kind = Kind.CHALLENGE_UPHELD if v["upheld"] else Kind.CHALLENGE_REJECTED
            out.append((kind, {"validator": v["validator"], "amount": _slashed_to(oc, me), "tx": tx}))
    if not out:
        out.append((Kind.SETTLED, {"note": "settled; your challenge got no verdict in it", "tx": tx}))
    return out
