"""Sending transactions: one account, local nonce management, retries, receipt polling.

Under Anvil's automine a receipt exists as soon as ``eth_sendRawTransaction`` returns, but we
still poll for it (never rely on a subscription). For bulk work, ``send_batch`` signs many
transactions with consecutive nonces and submits them in one JSON-RPC batch, which is far faster
than one HTTP request per transaction.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError

from pot.chain.errors import decode_revert


STALL_S = 5.0   # seconds without a new head, our transaction still pooled, before wait() asks for a block


def _hex(tx_hash) -> str:
    return tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()


class ChainUnreachable(ConnectionError):
    """No Ethereum JSON-RPC node answers at the URL (the message says which, and what to do)."""


def connect(url: str, timeout: float = 30.0) -> Web3:
    """A Web3 on ``url`` (HTTP JSON-RPC); raises ChainUnreachable when nothing answers."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id
    except Exception as exc:  # noqa: BLE001 - any transport failure means the same to the user
        raise ChainUnreachable(f"no Ethereum JSON-RPC node answers at {url} ({_reason(exc)}): start the node "
                               "or point --rpc-url (rpc_url, $POT_RPC_URL) at one") from exc
    return w3


def _reason(exc: BaseException) -> str:
    """The innermost cause in a few words ("Connection refused"), not urllib3's nested repr."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc)
    if "] " in text:  # "[Errno 111] Connection refused"
        text = text.rsplit("] ", 1)[1]
    return text.rstrip(")\"'").strip() or type(exc).__name__


@dataclass
class TxResult:
    """A mined transaction: its receipt and the PoT events it emitted, decoded."""

    tx_hash: str
    receipt: Any
    events: list = field(default_factory=list)

    @property
    def gas_used(self) -> int:
        return int(self.receipt["gasUsed"])

    @property
    def block_number(self) -> int:
        return int(self.receipt["blockNumber"])

    def event(self, name: str):
        """The first event called ``name`` (KeyError when absent)."""
        for ev in self.events:
            if ev.name == name:
                return ev
        raise KeyError(f"no {name} event in tx {self.tx_hash}")

    def events_named(self, name: str) -> list:
        """Every event called ``name``, in log order."""
        return [ev for ev in self.events if ev.name == name]


class TxFailed(RuntimeError):
    """A transaction was mined but reverted."""

    def __init__(self, tx_hash: str, receipt: Any):
        super().__init__(f"transaction {tx_hash} reverted (gas used {receipt['gasUsed']})")
        self.tx_hash = tx_hash
        self.receipt = receipt


class Sender:
    """Signs and sends transactions for one account; thread-safe local nonce."""

    def __init__(self, w3: Web3, account: LocalAccount | str, *, gas_price: int | None = None,
                 gas_multiplier: float = 1.2, receipt_timeout: float = 120.0, retries: int = 3,
                 stall_s: float = STALL_S):
        self.w3 = w3
        self.account: LocalAccount = Account.from_key(account) if isinstance(account, str) else account
        self.address = to_checksum_address(self.account.address)
        self.chain_id = w3.eth.chain_id
        self.gas_price = gas_price
        self.gas_multiplier = gas_multiplier
        self.receipt_timeout = receipt_timeout
        self.retries = retries
        self.stall_s = stall_s
        self._nonce: int | None = None
        self._lock = threading.Lock()
        self._can_mine = True   # see wait(): cleared once the node refuses evm_mine

    def __repr__(self) -> str:
        return f"Sender({self.address})"

    # -- nonces -----------------------------------------------------------------------------------

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self.w3.eth.get_transaction_count(self.address, "pending")
        n = self._nonce
        self._nonce += 1
        return n

    def resync(self) -> None:
        """Forget the local nonce (after a revert of the chain, e.g. evm_revert in tests)."""
        with self._lock:
            self._nonce = None

    # -- building -----------------------------------------------------------------------------------

    def _price(self) -> int:
        return self.gas_price if self.gas_price is not None else self.w3.eth.gas_price

    def estimate(self, tx: dict) -> int:
        """eth_estimateGas, with a revert decoded into ChainRevert (named custom error)."""
        try:
            return self.w3.eth.estimate_gas({**tx, "from": self.address})
        except (ContractCustomError, ContractLogicError) as exc:
            raise decode_revert(exc) from None

    def build(self, to: str | None, data: bytes | str, *, value: int = 0, gas: int | None = None,
              nonce: int | None = None) -> dict:
        tx: dict[str, Any] = {"data": data if isinstance(data, str) else "0x" + bytes(data).hex(),
                              "value": value, "chainId": self.chain_id}
        if to is not None:
            tx["to"] = to_checksum_address(to)
        if gas is None:
            gas = int(self.estimate(tx) * self.gas_multiplier) + 10_000
        tx["gas"] = gas
        tx["gasPrice"] = self._price()  # legacy pricing: BSC and Anvil both accept it
        tx["nonce"] = nonce if nonce is not None else self._next_nonce()
        return tx

    # -- sending ------------------------------------------------------------------------------------

    def send(self, to: str | None, data: bytes | str, *, value: int = 0, gas: int | None = None,
             wait: bool = True, check: bool = True):
        """Sign and send; returns the receipt (or the hash with wait=False).

        A revert found while estimating raises ChainRevert before anything is sent; a mined
        revert raises TxFailed (check=True). Nonce and underpricing errors resync and retry.
        """
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            with self._lock:
                tx = self.build(to, data, value=value, gas=gas)
                signed = self.account.sign_transaction(tx)
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except (ValueError, Web3RPCError) as exc:  # JSON-RPC error object
                    msg = str(exc).lower()
                    self._nonce = None
                    if any(s in msg for s in ("nonce too low", "nonce too high", "already known",
                                              "underpriced", "replacement")):
                        last = exc
                        time.sleep(0.2 * (attempt + 1))
                        continue
                    raise
            if not wait:
                return tx_hash
            receipt = self.wait(tx_hash)
            if check and receipt["status"] != 1:
                raise TxFailed(_hex(tx_hash), receipt)
            return receipt
        raise RuntimeError(f"could not send after {self.retries + 1} attempts: {last}")

    def wait(self, tx_hash, timeout: float | None = None, poll: float = 0.02):
        """Poll for the receipt (automine or not); TimeoutError after ``timeout`` seconds.

        A node that mines on demand can leave a transaction in its pool with nothing left to make it
        mine one (Anvil 1.7 does so when a block it builds has no room for it: its miner waits for
        the next transaction). When the head has not moved for ``stall_s`` seconds while ours is
        still in the pool, ask for a block (``evm_mine``); a node without that method is never asked
        again, and one whose blocks come on their own never stalls that long.
        """
        wait_s = timeout or self.receipt_timeout
        start = time.monotonic()
        deadline = start + wait_s
        delay = poll
        head, head_at = None, start
        while True:
            try:
                receipt = self.w3.eth.get_transaction_receipt(tx_hash)
                if receipt is not None:
                    return receipt
            except TransactionNotFound:
                pass
            now = time.monotonic()
            if now > deadline:
                where = self._whereabouts(tx_hash)
                if where is None:
                    continue   # mined between the two questions: fetch its receipt
                raise TimeoutError(f"no receipt for {_hex(tx_hash)} after {wait_s}s ({where})")
            if self._can_mine and now - start >= self.stall_s:
                number = self.w3.eth.block_number
                if number != head:
                    head, head_at = number, now
                elif now - head_at >= self.stall_s:
                    self._unstick(tx_hash)
                    head_at = now
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _pending(self, tx_hash) -> bool | None:
        """True: the node holds the transaction unmined; False: mined; None: it does not know it."""
        try:
            return self.w3.eth.get_transaction(tx_hash).get("blockNumber") is None
        except TransactionNotFound:
            return None

    def _unstick(self, tx_hash) -> None:
        if not self._pending(tx_hash):
            return   # mined meanwhile, or dropped: a block would not bring it back
        reply = self.w3.provider.make_request("evm_mine", [])
        if isinstance(reply, dict) and reply.get("error"):
            self._can_mine = False

    def _whereabouts(self, tx_hash) -> str | None:
        try:
            held = self._pending(tx_hash)
        except Exception as exc:  # noqa: BLE001 - the timeout is the error to report
            return f"and the node does not answer: {_reason(exc)}"
        if held is None:
            return "the node no longer holds it: it was dropped; send it again"
        if held:
            return "the node holds it unmined: is the chain producing blocks, and is the gas price high enough?"
        return None

    def send_batch(self, txs: list[tuple[str | None, bytes | str, int]] | list[tuple[str | None, bytes | str, int, int]],
                   *, wait: bool = True, check: bool = True) -> list:
        """Send many (to, data, gas) or (to, data, gas, value) transactions in one JSON-RPC batch;
        returns receipts.

        Gas must be given (no per-transaction estimate: that would cost the round trips the batch
        saves). Used for bulk setup (funding, approvals, registrations) and benchmarks.
        """
        with self._lock:
            raws = []
            for to, data, gas, *value in txs:
                tx = self.build(to, data, gas=gas, value=value[0] if value else 0)
                raws.append(self.account.sign_transaction(tx).raw_transaction)
            try:
                hashes = send_raw_batch(self.w3, raws)
            except Exception:
                self._nonce = None
                raise
        if not wait:
            return hashes
        receipts = [self.wait(h) for h in hashes]
        if check:
            for h, r in zip(hashes, receipts):
                if r["status"] != 1:
                    raise TxFailed(h, r)
        return receipts


def send_raw_batch(w3: Web3, raw_txs: list[bytes]) -> list[str]:
    """eth_sendRawTransaction for each raw tx in a single JSON-RPC batch request."""
    if not raw_txs:
        return []
    url = w3.provider.endpoint_uri
    body = [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
             "params": ["0x" + bytes(raw).hex()]} for i, raw in enumerate(raw_txs)]
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        replies = json.loads(resp.read())
    by_id = {r["id"]: r for r in replies}
    out = []
    for i in range(len(raw_txs)):
        r = by_id.get(i)
        if r is None or "error" in r:
            raise RuntimeError(f"batched transaction {i} refused: {r and r.get('error')}")
        out.append(r["result"])
    return out
