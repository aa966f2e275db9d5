"""Start and stop a local Anvil node (node_modules/.bin/anvil) on a free loopback port.

    with Anvil() as node:            # or node = Anvil().start(); ...; node.stop()
        w3 = node.w3()
        ...

Tests, the devnet and the demo reuse it. Anvil's well-known dev keys (DEV_KEYS) are for local
Anvil only; never use them on a public chain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from pot.ports import free_port

#: Private keys of Anvil's default mnemonic ("test test ... junk"), accounts 0-9. Local only.
DEV_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


class AnvilError(RuntimeError):
    """Anvil could not be found, did not start, or died."""


def anvil_binary() -> str:
    """node_modules/.bin/anvil of this checkout, else POT_ANVIL, else anvil on PATH."""
    env = os.environ.get("POT_ANVIL")
    if env:
        return env
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "node_modules" / ".bin" / "anvil"
        if cand.exists():
            return str(cand)
    found = shutil.which("anvil")
    if found:
        return found
    raise AnvilError("anvil not found: run `npm ci` (scripts/setup.sh) or set POT_ANVIL")


def rpc(url: str, method: str, params: list | None = None, timeout: float = 10.0):
    """One JSON-RPC call without web3 (used for readiness and anvil_* cheat codes)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise AnvilError(f"{method}: {reply['error']}")
    return reply["result"]


class Anvil:
    """A local Anvil process; a context manager. Automine unless ``block_time`` is given."""

    def __init__(self, *, port: int | None = None, host: str = "127.0.0.1", chain_id: int = 31337,
                 accounts: int = 10, balance_eth: int = 10_000, block_time: float | None = None,
                 gas_limit: int | None = None, extra_args: tuple[str, ...] = (),
                 startup_timeout: float = 30.0):
        self.host = host
        self.port = port
        self.chain_id = chain_id
        self.accounts = accounts
        self.balance_eth = balance_eth
        self.block_time = block_time
        self.gas_limit = gas_limit
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise AnvilError("Anvil not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Anvil:
        if self.proc is not None:
            return self
        binary = anvil_binary()
        for _attempt in range(3):  # a free port can be taken between probing and binding
            port = self.port or free_port(self.host)
            cmd = [binary, "--host", self.host, "--port", str(port), "--chain-id", str(self.chain_id),
                   "--accounts", str(self.accounts), "--balance", str(self.balance_eth), "--silent"]
            if self.block_time:
                cmd += ["--block-time", str(self.block_time)]
            if self.gas_limit:
                cmd += ["--gas-limit", str(self.gas_limit)]
            cmd += list(self.extra_args)
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         start_new_session=True)
            self.port = port
            if self._wait_ready():
                return self
            err = self._reap()
            if self.port == port and "in use" not in err.lower():
                raise AnvilError(f"anvil did not start: {err.strip()[-500:]}")
            self.port = None
        raise AnvilError("anvil did not start after 3 attempts")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                rpc(self.url, "eth_chainId", timeout=1.0)
                return True
            except (OSError, AnvilError, ValueError):
                time.sleep(0.05)
        return False

    def _reap(self) -> str:
        err = ""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            try:
                _, err_b = self.proc.communicate(timeout=5)
                err = (err_b or b"").decode(errors="replace")
            except subprocess.TimeoutExpired:
                pass
        self.proc = None
        return err

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- conveniences for tests and the devnet (Anvil cheat codes) --------------------------------

    def w3(self):
        from pot.chain.sender import connect

        return connect(self.url)

    def snapshot(self) -> str:
        return rpc(self.url, "evm_snapshot")

    def revert(self, snapshot_id: str) -> bool:
        return rpc(self.url, "evm_revert", [snapshot_id])

    def increase_time(self, seconds: int) -> None:
        rpc(self.url, "evm_increaseTime", [int(seconds)])
        rpc(self.url, "evm_mine")

    def set_next_timestamp(self, ts: int) -> None:
        rpc(self.url, "evm_setNextBlockTimestamp", [int(ts)])

    def mine(self, blocks: int = 1) -> None:
        rpc(self.url, "anvil_mine", [hex(blocks)])

    def set_balance(self, address: str, wei: int) -> None:
        rpc(self.url, "anvil_setBalance", [address, hex(wei)])
