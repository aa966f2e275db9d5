"""A real committee for tests: Anvil, a deployment whose RewardMultisig members are the
committee's keys, and n ``pot aggregator run`` processes on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pot.chain.anvil import DEV_KEYS
from pot.chain.clients import Contracts
from pot.chain.deployment import DeployParams, deploy
from pot.chain.sender import Sender
from pot.roles.aggregator_config import committee_keys, local_committee_configs

TOKEN = 10**18
MIN_STAKE = 10 * TOKEN
C_STAKE = 5 * TOKEN


class Committee:
    def __init__(self, anvil, tmp: Path, n: int = 4, *, settlement_path: str = "signed",
                 settlement_timeout: float = 6.0, view_timeout: float = 2.0, confirmations: int = 0,
                 admission: dict | None = None) -> None:
        self.anvil = anvil
        self.tmp = tmp
        self.n = n
        self.w3 = anvil.w3()
        self.keys = committee_keys(n, seed=tmp.name)
        self.deployer = Sender(self.w3, DEV_KEYS[0])
        self.treasury = "0x000000000000000000000000000000000000dEaD"
        params = DeployParams(members=tuple(k.address for k in self.keys), threshold=2 * ((n - 1) // 3) + 1,
                              treasury=self.treasury, min_stakes=(MIN_STAKE,) * 4, unbonding_period=7200, max_order_lifetime=1800,
                              min_reveal_duration=2, settlement_grace=3600, challenge_stake=C_STAKE)
        self.deployment = deploy(self.w3, self.deployer, params)
        self.contracts = Contracts(self.w3, self.deployment)
        for k in self.keys:
            anvil.set_balance(k.address, 10**21)
        dep = self.deployment.save(tmp / "deployment.json")
        self.store_dir = tmp / "store"
        self.paths = local_committee_configs(
            n, tmp / "committee", dep, anvil.url, self.store_dir, keys=self.keys,
            settlement_path=settlement_path, settlement_timeout=settlement_timeout, confirmations=confirmations,
            pbft={"view_timeout": view_timeout}, admission=admission,
            extra={"log_level": "INFO", "chain_poll_interval": 0.3, "verify_poll_interval": 0.5})
        self.api_urls = json.loads(json.dumps(
            [f"http://127.0.0.1:{_toml_get(p, 'api_port')}" for p in self.paths]))
        self.procs: list[subprocess.Popen | None] = [None] * n

    def data_dir(self, i: int) -> Path:
        return self.paths[i].parent

    def start(self, i: int) -> None:
        ready = self.data_dir(i) / "ready"
        ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        err = (self.data_dir(i) / "stderr.log").open("ab")
        self.procs[i] = subprocess.Popen([sys.executable, "-m", "pot.cli", "aggregator", "run", "--config",
                                          str(self.paths[i]), "--log-file", "-"],
                                         stdout=subprocess.DEVNULL, stderr=err, env=env)

    def wait_ready(self, ids=None, timeout: float = 60.0) -> None:
        ids = range(self.n) if ids is None else ids
        deadline = time.monotonic() + timeout
        for i in ids:
            while not (self.data_dir(i) / "ready").exists():
                p = self.procs[i]
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"replica {i} exited {p.returncode}:\n{self.log(i)[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica {i} not ready:\n{self.log(i)[-3000:]}")
                time.sleep(0.1)

    def start_all(self) -> None:
        for i in range(self.n):
            self.start(i)
        try:
            self.wait_ready()
        except BaseException:
            self.stop_all()  # a fixture that fails here never reaches its teardown: no orphans
            raise

    def log(self, i: int) -> str:
        try:
            return (self.data_dir(i) / "stderr.log").read_text()
        except OSError:
            return ""

    def kill(self, i: int, sig=signal.SIGKILL) -> None:
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                p.wait(timeout=30)

    def stop_all(self) -> None:
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def info(self, i: int) -> dict | None:
        try:
            return httpx.get(self.api_urls[i] + "/v1/info", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return None

    def get(self, i: int, path: str):
        """One replica's JSON answer to GET ``path`` (None: 404 or unreachable)."""
        try:
            r = httpx.get(self.api_urls[i] + path, timeout=3)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def submit(self, i: int, message):
        """POST a signed message to replica ``i``; the ledger's Result."""
        from pot.api.client import ApiClient

        async def go():
            async with ApiClient(self.api_urls[i], timeout=30) as api:
                return await api.submit(message)
        return asyncio.run(go())

    def wait_for(self, pred, timeout: float, what: str, every: float = 0.2):
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(every)


def _toml_get(path: Path, key: str):
    import tomllib

    return tomllib.loads(path.read_text())[key]


# --- chain-side helpers (a worker's on-chain steps, without the worker) -------------------------

def stake(com: Committee, key: str, roles: int = 1, amount: int = MIN_STAKE) -> str:
    """Fund ``key`` with tokens and register it in the StakeRegistry (once); its address."""
    u = Sender(com.w3, key)
    c = com.contracts
    if not c.stakes.has_roles(u.address, roles):
        c.token.transfer(com.deployer, u.address, amount)
        c.token.ensure_allowance(u, c.stakes.address, amount)
        c.stakes.register(u, roles, amount)
    return u.address


def place_order(com: Committee, key: str, *, reward: int = 100 * TOKEN, train: int = 8, reveal: int = 2):
    """Fund ``key`` and place an order with no test data behind it; (order id, TxResult)."""
    from pot.chain.clients import OrderSpec

    u = Sender(com.w3, key)
    c = com.contracts
    c.token.transfer(com.deployer, u.address, reward)
    c.token.ensure_allowance(u, c.orders.address, reward)
    res = c.orders.place_order(u, OrderSpec(reward, train, 2, 2, reveal, "classification-accuracy-v1",
                                            os.urandom(32), "bafy-test-spec"))
    return int(res.event("OrderPlaced")["orderId"]), res


def multisig_calls(com: Committee, from_block: int) -> list[dict]:
    """Every transaction sent to the RewardMultisig since ``from_block``: function, sender, status."""
    ms = com.contracts.multisig
    out = []
    for b in range(from_block, com.w3.eth.block_number + 1):
        for tx in com.w3.eth.get_block(b, full_transactions=True)["transactions"]:
            if tx["to"] is None or tx["to"].lower() != ms.address.lower():
                continue
            fn, _args = ms.contract.decode_function_input(tx["input"])
            status = com.w3.eth.get_transaction_receipt(tx["hash"])["status"]
            out.append({"fn": fn.fn_name, "from": tx["from"], "status": status, "block": b,
                        "hash": "0x" + bytes(tx["hash"]).hex()})
    return out


def admissible_load(com: Committee, n: int, *, miner_key: str = DEV_KEYS[7], client_key: str = DEV_KEYS[8]) -> list[bytes]:
    """n distinct messages the API admits and every replica executes to an acceptance: ClaimCommits
    of one staked miner for one order whose training lasts 15 minutes (the first call stakes the
    miner and places the order, and waits until the ledger knows both). Load for fault tests:
    throwaway keys no longer reach consensus. Give the committee a generous ``admission`` (one
    sender sends all of these)."""
    from pot.protocol import codec
    from pot.protocol import types as T
    from pot.protocol.eip712 import Domain

    if getattr(com, "_load_order", None) is None:
        miner = stake(com, miner_key, T.MINER)
        oid, _ = place_order(com, client_key, train=900)
        quorum = com.n - (com.n - 1) // 3  # 2f+1: a stopped replica may be among the others
        com.wait_for(lambda: sum(bool(com.get(i, f"/v1/orders/{oid}") and com.get(i, f"/v1/nodes/{miner}"))
                                 for i in range(com.n)) >= quorum, 60, "the load's order and miner in the ledger")
        com._load_order = oid
    from eth_account import Account

    acct = Account.from_key(miner_key)
    domain = Domain.messages(com.deployment.chain_id, com.deployment.order_book)
    return [codec.encode(T.ClaimCommit(com._load_order, acct.address, os.urandom(32)).sign(domain, acct.key))
            for _ in range(n)]
