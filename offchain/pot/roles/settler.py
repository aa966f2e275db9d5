"""The settler: signs the settlements the ledger created and lands them on-chain (ARCHITECTURE.md §4),
by ``executeSigned`` or the paper's propose/confirm/execute, with a rotating submitter; and lands
a committee change the ledger decided (``executeAction`` with its k signatures, docs/COMMITTEE.md)
by the same turn rule."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

log = logging.getLogger("pot.aggregator")


class Settler:
    """``await _settle()`` signs every pending settlement once and, in its turn, lands the ready ones.

    The methods below read only what this constructor sets (a new dependency goes here)."""

    def __init__(self, cfg, *, ledger, ledger_config, contracts, sender, address: str, key: bytes, fire,
                 stats: dict[str, Any]) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.ledger_config = ledger_config
        self.multisig_domain = ledger_config.multisig_domain
        self.contracts = contracts
        self.sender = sender
        self.address = address
        self.key = key
        self._fire = fire
        self.stats = stats
        # settlement bookkeeping (local, advisory: the chain and the ledger decide)
        self._ready_since: dict[int, float] = {}
        self._sent: set[tuple[int, str, Any]] = set()

    async def _settle(self) -> None:
        from pot.protocol import codec
        from pot.protocol import types as T

        member = self.address in self.ledger.config.committee
        for st in self.ledger.pending_settlements():
            nonce = st["nonce"]
            # keyed by digest: a batch re-issued after its deadline is a new thing to sign
            key = (nonce, "sig", st["digest"])
            if member and self.address not in st["signers"] and key not in self._sent:
                batch = st["settlement"]
                sig = batch.sign(self.multisig_domain, self.key)
                self._sent.add(key)
                log.info("nonce=%d orders=%s signing settlement (deadline %d)", nonce, st["orderIds"],
                         batch.deadline)

                async def sign_and_forget(raw=codec.encode(T.SettlementSignature(nonce, self.address, sig)),
                                          n=nonce, k=key):
                    res = await self._fire(raw, f"nonce={n} SettlementSignature")
                    if res is None:
                        self._sent.discard(k)  # retry on the next pass
                asyncio.create_task(sign_and_forget())
            if self.cfg.settlement_path == "signed":
                if st["ready"]:
                    await self._submit_signed(st)
            else:
                await self._propose_confirm_execute(st)
        await self._execute_change()

    async def _execute_change(self) -> None:
        """A committee change the ledger decided goes on chain: ``executeAction`` with the k
        Action signatures the ledger holds, by the member whose turn it is (the change's nonce
        mod n, the next one after every ``settlement_timeout``). Its ``EpochChanged`` comes back
        through the attestations and confirms it."""
        cfg = self.ledger.config
        change = next((c for c in self.ledger.committee_changes() if c["status"] == "decided"), None)
        if change is None or self.address not in cfg.committee:
            return
        action = change["action"]
        attempt, turn = self._turn(action.nonce, len(cfg.committee))
        if turn != cfg.committee.index(self.address) or (action.nonce, "action", attempt) in self._sent:
            return
        self._sent.add((action.nonce, "action", attempt))
        ms = self.contracts.multisig
        if await asyncio.to_thread(ms.action_nonce_used, action.nonce):
            return  # landed; EpochChanged comes back through the attestations
        sigs = change["signatures"][:cfg.threshold]
        t0 = time.monotonic()
        log.info("committee change to epoch %d: executeAction (attempt %d, %d signatures)", cfg.epoch + 1,
                 attempt, len(sigs))
        try:
            tx = await asyncio.to_thread(ms.execute_action, self.sender, action, sigs)
        except Exception as exc:  # noqa: BLE001
            name = _revert_name(exc)
            if name in ("NonceUsed", "WrongEpoch"):
                log.info("committee change to epoch %d already executed (%s)", cfg.epoch + 1, name)
                return
            log.warning("committee change to epoch %d: executeAction failed: %s", cfg.epoch + 1, exc)
            self.sender.resync()
            return
        self._record_tx(action.nonce, "executeAction", tx, t0)

    def _turn(self, nonce: int, n: int | None = None) -> tuple[int, int]:
        """(attempt, replica whose turn it is): nonce mod n first, the next one after every timeout."""
        since = self._ready_since.setdefault(nonce, time.monotonic())
        attempt = int((time.monotonic() - since) // self.cfg.settlement_timeout)
        return attempt, (nonce + attempt) % (n or self.cfg.n)

    async def _submit_signed(self, st: dict) -> None:
        nonce = st["nonce"]
        attempt, turn = self._turn(nonce)
        if turn != self.cfg.replica_id or (nonce, "exec", attempt) in self._sent:
            return
        self._sent.add((nonce, "exec", attempt))
        ms = self.contracts.multisig
        if await asyncio.to_thread(ms.nonce_used, nonce):
            return  # landed; SettlementExecuted comes back through the attestations
        sigs = st["signatures"][:self.ledger.config.threshold]
        t0 = time.monotonic()
        log.info("nonce=%d orders=%s executeSigned (attempt %d, %d signatures)", nonce, st["orderIds"],
                 attempt, len(sigs))
        try:
            tx = await asyncio.to_thread(ms.execute_signed, self.sender, st["settlement"], sigs)
        except Exception as exc:  # noqa: BLE001
            if _revert_name(exc) == "NonceUsed":
                log.info("nonce=%d already executed by another replica", nonce)
                return
            log.warning("nonce=%d executeSigned failed: %s", nonce, exc)
            self.sender.resync()
            return
        self._record_tx(nonce, "executeSigned", tx, t0)

    async def _propose_confirm_execute(self, st: dict) -> None:
        """The paper's path: the turn's replica proposes, every replica confirms, the turn's
        replica executes once k confirmations are on-chain. Needs no signatures in the ledger.

        The proposal id is derived from the digest of the batch this replica's own ledger
        computed, so confirming it approves exactly that batch: a member that proposed another
        batch first gets a different id, which no honest replica confirms."""
        nonce = st["nonce"]
        ms = self.contracts.multisig
        batch = st["settlement"]
        pid = batch.proposal_id(self.multisig_domain)
        if await asyncio.to_thread(ms.nonce_used, nonce):
            return
        approvals, exists = await asyncio.to_thread(ms.proposal_state, pid)
        attempt, turn = self._turn(nonce)
        try:
            if not exists:
                if turn == self.cfg.replica_id and (nonce, "propose", (pid, attempt)) not in self._sent:
                    self._sent.add((nonce, "propose", (pid, attempt)))
                    t0 = time.monotonic()
                    self._record_tx(nonce, "proposeReward", await asyncio.to_thread(
                        ms.propose_reward, self.sender, batch), t0)
                return
            if (nonce, "confirm", pid) not in self._sent:
                self._sent.add((nonce, "confirm", pid))
                t0 = time.monotonic()
                self._record_tx(nonce, "confirmReward", await asyncio.to_thread(
                    ms.confirm_reward, self.sender, pid), t0)
                approvals, exists = await asyncio.to_thread(ms.proposal_state, pid)
            if approvals >= self.ledger.config.threshold and turn == self.cfg.replica_id \
                    and (nonce, "execute", (pid, attempt)) not in self._sent:
                self._sent.add((nonce, "execute", (pid, attempt)))
                t0 = time.monotonic()
                self._record_tx(nonce, "executeReward", await asyncio.to_thread(
                    ms.execute_reward, self.sender, pid, batch), t0)
        except Exception as exc:  # noqa: BLE001
            name = _revert_name(exc)
            if name in ("NonceUsed", "AlreadyProposed", "AlreadyConfirmed", "UnknownProposal"):
                log.info("nonce=%d %s (another replica was first)", nonce, name)
                return
            log.warning("nonce=%d settlement step failed: %s", nonce, exc)
            self.sender.resync()

    def _record_tx(self, nonce: int, fn: str, tx, t0: float) -> None:
        gas = getattr(tx, "gas_used", None)
        if gas is None and isinstance(tx, dict):
            gas = tx.get("gasUsed")
        entry = {"nonce": nonce, "fn": fn, "gas": gas, "seconds": round(time.monotonic() - t0, 3)}
        self.stats["settlements"].append(entry)
        log.info("nonce=%d %s landed gas=%s in %.2fs", nonce, fn, gas, entry["seconds"])
        try:
            (self.cfg.data_dir / "settlements.jsonl").open("a").write(json.dumps(entry) + "\n")
        except OSError:
            pass


def _revert_name(exc: Exception) -> str | None:
    name = getattr(exc, "error", None)
    if isinstance(name, str):
        return name
    text = str(exc)
    for n in ("NonceUsed", "AlreadyProposed", "AlreadyConfirmed", "UnknownProposal", "Expired", "WrongEpoch"):
        if n in text:
            return n
    return None

