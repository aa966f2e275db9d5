"""The whole PoT network on one machine: ``pot devnet up|status|down`` and the demo's network.

``up`` starts, on loopback and each as a process of its own with its own log in ``DIR/logs``:
an Anvil chain; the contracts, deployed with the aggregators' chain accounts as RewardMultisig
members (threshold 2f+1); a committee of n aggregator replicas (``pot aggregator run``); and the
workers (``pot miner run``, ``pot validator run``, ``pot verifier run``). Before the workers start,
every participant is funded from the deployer and registered in StakeRegistry, and ``up`` waits
until the committee's ledger knows every stake, so the network is ready when ``up`` returns.

What was started is in ``DIR/devnet.json`` (pids with their start times, so ``down`` never
signals a process that merely reused a pid); ``status`` and ``down`` read it.

Accounts come from Anvil's well-known dev mnemonic ("test test ... junk"). Their keys are public:
this is for a local chain only, never for anything of value.

Layout of DIR::

    devnet.json  deployment.json  accounts.json  devnet.toml (the config used)
    config/<node>.toml   logs/<node>.log   network.toml (what a newcomer needs: `POT_CONFIG=...`)
    aggregators/agg<i>/  (ledger, PBFT log, keystore, store/: the content uploaded to it)
    state/<node>/        (worker state, store/: the node's own content store)

No two nodes share a store, as on a real network: content an order references (spec, data,
models, test set) goes to the committee, which every node reads it from (``pot.api.content``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pot.protocol.units import TOKEN
from pot.roles.config import ConfigError, Layer, read_toml, resolve_layers

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CONFIG = Path(__file__).with_name("devnet.toml")
ROLE_BITS = {"miner": 1, "validator": 2, "verifier": 4, "aggregator": 8}
WORKER_ROLES = ("miner", "validator", "verifier")
#: mnemonic indices 0 and 1; participants follow from index 2
DEPLOYER, TREASURY = 0, 1

Progress = Callable[[str], None]


class DevnetError(RuntimeError):
    """The devnet could not start, or its state directory is not what the command expects."""


@cache
def dev_account(index: int):
    """Account ``index`` of Anvil's dev mnemonic (m/44'/60'/0'/0/index). Local chains only."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


# --- configuration ------------------------------------------------------------------------------

@dataclass
class DevnetConfig:
    host: str = "127.0.0.1"
    chain_port: int = 0
    chain_id: int = 31337
    block_time: float = 1.0
    aggregators: int = 4
    miners: int = 2
    validators: int = 2
    verifiers: int = 1
    clients: int = 1
    workers: bool = True
    #: every node on one store directory (DIR/store), for a dApp that places orders with content
    #: it never uploads to the committee; by default each node has its own, as on a real network
    shared_store: bool = False
    poll_interval: float = 1.0
    log_level: str = "INFO"
    startup_timeout: float = 90.0
    fund: int = field(default=1_000 * TOKEN, metadata={"amount": True})
    min_stake: int = field(default=10 * TOKEN, metadata={"amount": True})
    challenge_stake: int = field(default=5 * TOKEN, metadata={"amount": True})
    min_reveal_duration: int = 5
    unbonding_period: int = 3600
    settlement_grace: int = 600
    max_order_lifetime: int = 1800
    #: role tables passed through to the nodes' config files ([client], [miner], ...)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per-node overrides of the role table, by node name ("validator-2")
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def f(self) -> int:
        from pot.protocol.committee import max_faulty

        return max_faulty(self.aggregators)

    @property
    def threshold(self) -> int:
        return 2 * self.f + 1

    def check(self) -> None:
        if self.aggregators < 1:
            raise ConfigError("aggregators: at least one replica")
        for name in ("miners", "validators", "verifiers", "clients"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must not be negative")
        if self.min_reveal_duration < 1:
            raise ConfigError("min_reveal_duration: at least 1 second")


_SECTIONS = {
    "devnet": ("host", "chain_port", "chain_id", "block_time", "aggregators", "miners", "validators", "verifiers", "clients",
               "workers", "shared_store", "poll_interval", "log_level", "startup_timeout"),
    "chain": ("fund", "min_stake", "challenge_stake", "min_reveal_duration", "unbonding_period",
              "settlement_grace", "max_order_lifetime"),
}
_AMOUNTS = tuple(f.name for f in dataclasses.fields(DevnetConfig) if f.metadata.get("amount"))
_ROLE_TABLES = ("client", "miner", "validator", "verifier", "aggregator")


def load_devnet_config(path: str | os.PathLike | None = None, **overrides: Any) -> DevnetConfig:
    """The packaged defaults (``pot/devnet.toml``), then ``path`` over them, then ``overrides``, each
    setting checked against its type by the one configuration loader (``pot.roles.config``)."""
    layers: list[Layer] = []
    roles: dict[str, dict[str, Any]] = {r: {} for r in _ROLE_TABLES}
    nodes: dict[str, dict[str, Any]] = {}
    for p in ([DEFAULT_CONFIG] if DEFAULT_CONFIG.exists() else []) + ([Path(path)] if path else []):
        for key, table in read_toml(p).items():
            if key not in _SECTIONS and key not in _ROLE_TABLES and key != "nodes":
                raise ConfigError(f"{p}: unknown table [{key}] (known: "
                                  f"{', '.join([*_SECTIONS, *_ROLE_TABLES, 'nodes'])})")
            if not isinstance(table, dict):
                raise ConfigError(f"{p}: {key} must be a table")
            if key == "nodes":
                for node, settings in table.items():
                    nodes.setdefault(node, {}).update(settings)
            elif key in _ROLE_TABLES:
                roles[key].update(table)
            else:
                for name in table:
                    if name not in _SECTIONS[key]:
                        raise ConfigError(f"{p}: [{key}] unknown setting {name!r} (known: "
                                          f"{', '.join(_SECTIONS[key])})")
                layers.append((f"{p} [{key}]", table, False))
    layers.append(("the command line", overrides, False))
    cfg = DevnetConfig(**resolve_layers(DevnetConfig, layers), roles=roles, nodes=nodes)
    cfg.check()
    return cfg


# --- participants -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Participant:
    name: str                 # "miner-1", "aggregator-0", ...
    role: str                 # client, miner, validator, verifier, aggregator, or a custom one
    index: int                # account index in the dev mnemonic
    stake_roles: int = 0      # StakeRegistry bits registered at start-up

    @property
    def account(self):
        return dev_account(self.index)

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def key(self) -> str:
        return "0x" + bytes(self.account.key).hex()


def participants(cfg: DevnetConfig, extra: dict[str, int] | None = None) -> list[Participant]:
    """Every account of the devnet, in a fixed order (so addresses are stable across runs).
    ``extra``: more staked participants by name -> role bits (the demo's thief)."""
    out: list[Participant] = []
    i = 2

    def add(name: str, role: str, bits: int) -> None:
        nonlocal i
        out.append(Participant(name, role, i, bits))
        i += 1

    for k in range(cfg.aggregators):
        add(f"aggregator-{k}", "aggregator", ROLE_BITS["aggregator"])
    for k in range(cfg.clients):
        add(f"client-{k + 1}", "client", 0)
    for role, count in (("miner", cfg.miners), ("validator", cfg.validators), ("verifier", cfg.verifiers)):
        for k in range(count):
            add(f"{role}-{k + 1}", role, ROLE_BITS[role])
    for name, bits in (extra or {}).items():
        add(name, name, bits)
    return out


# --- processes ----------------------------------------------------------------------------------

def _proc_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(entry: dict[str, Any]) -> bool:
    pid = entry["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process took the pid
    start = _proc_start_time(pid)
    if start is not None and entry.get("start_time") is not None and start != entry["start_time"]:
        return False  # the pid was reused by another process
    try:  # a zombie (our own exited child) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


#: $POT_* variables that locate tools, not settings: passed on to the nodes
_TOOL_ENV = ("POT_ANVIL", "POT_SOLC")


def _spawn(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> dict[str, Any]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # a session of its own: the process outlives `pot devnet up`, and a Ctrl-C in the
        # terminal that ran `up` does not reach it; `down` signals its process group
        # the node's settings are its config file's: a $POT_* of the shell that ran `up` (POT_CONFIG,
        # POT_RPC_URL, a key) must not leak into every node it starts
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("POT_") or k in _TOOL_ENV}
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**inherited, **(env or {})}, cwd=cwd, start_new_session=True)
    proc.returncode = 0  # detached on purpose: keep Popen.__del__ from warning about it
    return {"name": name, "pid": proc.pid, "start_time": _proc_start_time(proc.pid), "log": str(log),
            "cmd": cmd}


def _signal(entry: dict[str, Any], sig: int) -> None:
    try:
        os.killpg(entry["pid"], sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(entry["pid"], sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _pot_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pot.cli", *args]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v))


def _toml(top: dict[str, Any], tables: dict[str, dict[str, Any]]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items() if v is not None]
    for name, table in tables.items():
        lines += ["", f"[{name}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None)]
    return "\n".join(lines) + "\n"


def _http_json(url: str, timeout: float = 2.0) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


# --- the devnet ---------------------------------------------------------------------------------

class Devnet:
    """One devnet rooted at a directory. ``up`` starts it (and records it in ``devnet.json``),
    ``status`` reads it, ``down`` stops it; a later process can call ``status``/``down`` on the
    same directory. A context manager: leaving the block stops what this object started."""

    def __init__(self, root: str | os.PathLike, config: DevnetConfig | None = None) -> None:
        self.root = Path(root).resolve()
        self.config = config or load_devnet_config()
        self.state: dict[str, Any] = {}
        self.participants: list[Participant] = []

    # paths
    @property
    def state_file(self) -> Path:
        return self.root / "devnet.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def deployment_file(self) -> Path:
        return self.root / "deployment.json"

    @property
    def store_dir(self) -> Path:
        """The one store of a ``shared_store`` devnet, or of participants that run inside one
        process (the demo's)."""
        return self.root / "store"

    def load(self) -> dict[str, Any]:
        try:
            self.state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise DevnetError(f"no devnet in {self.root} (no devnet.json): start one with `pot devnet up`") from None
        return self.state

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        os.replace(tmp, self.state_file)

    def _record(self, entry: dict[str, Any], **extra: Any) -> dict[str, Any]:
        entry.update(extra)
        self.state.setdefault("processes", []).append(entry)
        self._save()
        return entry

    # -- up -----------------------------------------------------------------------------------

    def up(self, *, workers: bool | None = None, extra: dict[str, int] | None = None,
           progress: Progress | None = None) -> dict[str, Any]:
        """Start everything; returns the state (also in ``devnet.json``). On any failure what was
        started is stopped again before the error propagates."""
        say = progress or (lambda _msg: None)
        cfg = self.config
        if self.state_file.exists():
            old = json.loads(self.state_file.read_text())
            running = [p["name"] for p in old.get("processes", []) if _alive(p)]
            if running:
                raise DevnetError(f"a devnet is already running in {self.root} ({', '.join(running)}): "
                                  "`pot devnet down` first")
        self.root.mkdir(parents=True, exist_ok=True)
        self._move_previous(say)
        for sub in ("logs", "config", "state"):
            (self.root / sub).mkdir(exist_ok=True)
        (self.root / "devnet.toml").write_text(_dump_config(cfg))
        self.participants = participants(cfg, extra)
        self.state = {"root": str(self.root), "started_at": int(time.time()), "processes": [],
                      "deployment": str(self.deployment_file),
                      "accounts": {p.name: {"address": p.address, "role": p.role, "index": p.index}
                                   for p in self.participants}}
        try:
            self._start_chain(say)
            self._deploy(say)
            self._fund_and_stake(say)
            self._start_committee(say)
            self._write_client_configs()
            if cfg.workers if workers is None else workers:
                self._start_workers(say)
            self._wait_ready(say)
        except BaseException:
            self.down(timeout=5)
            raise
        self.state["ready_at"] = int(time.time())
        self._save()
        return self.state

    #: what belongs to one devnet run: the chain dies with `down`, so its ledgers, PBFT logs and worker
    #: state (keyed by chain id and OrderBook, which a fresh chain reuses) must not meet the next one
    RUN_DATA = ("devnet.json", "deployment.json", "accounts.json", "devnet.toml", "network.toml", "aggregators",
                "state", "config", "logs")

    def _move_previous(self, say: Progress) -> None:
        """Move a previous run's data to ``DIR/previous`` (replacing an older one there): a fresh chain
        would otherwise meet the old PBFT log (the old orders came back and the new chain's order 1 was
        refused as a DUPLICATE). The content store stays: content addresses hold for any chain."""
        found = [name for name in self.RUN_DATA if (self.root / name).exists()]
        if not found:
            return
        import shutil

        previous = self.root / "previous"
        shutil.rmtree(previous, ignore_errors=True)
        previous.mkdir()
        for name in found:
            os.replace(self.root / name, previous / name)
        say(f"moved the previous devnet's data ({', '.join(found)}) to {previous}: this chain starts clean")

    def _start_chain(self, say: Progress) -> None:
        from pot.chain.anvil import anvil_binary, rpc
        from pot.ports import free_port

        cfg = self.config
        port = cfg.chain_port or free_port(cfg.host)
        n_accounts = 2 + len(self.participants)
        cmd = [anvil_binary(), "--host", cfg.host, "--port", str(port), "--chain-id", str(cfg.chain_id),
               "--accounts", str(n_accounts), "--balance", "10000", "--mnemonic", DEV_MNEMONIC]
        if cfg.block_time:
            # transactions still mine at once; the empty blocks in between keep the head's timestamp
            # within a block time of the wall clock. Without them gas estimation and eth_call run at
            # the last block's (stale) time and refuse transactions whose window opened since.
            cmd += ["--block-time", f"{cfg.block_time:g}", "--mixed-mining"]
        url = f"http://{cfg.host}:{port}"
        say(f"chain: anvil on {url}")
        entry = self._record(_spawn("anvil", cmd, self.logs / "anvil.log"), role="chain", url=url)
        self.state["rpc_url"] = url
        self.state["chain_id"] = cfg.chain_id
        deadline = time.monotonic() + 30
        while True:
            try:
                rpc(url, "eth_chainId", timeout=1.0)
                return
            except Exception:  # noqa: BLE001 - not up yet
                if not _alive(entry) or time.monotonic() > deadline:
                    raise DevnetError(f"anvil did not start; see {entry['log']}") from None
                time.sleep(0.1)

    def _w3(self):
        from pot.chain.sender import connect

        return connect(self.state["rpc_url"])

    def _deploy(self, say: Progress) -> None:
        from pot.chain.deployment import DeployParams, deploy
        from pot.chain.sender import Sender

        cfg = self.config
        w3 = self._w3()
        members = tuple(p.address for p in self.participants if p.role == "aggregator")
        params = DeployParams(members=members, threshold=cfg.threshold, treasury=dev_account(TREASURY).address,
                              min_stakes=(cfg.min_stake,) * 4, unbonding_period=cfg.unbonding_period,
                              min_reveal_duration=cfg.min_reveal_duration, settlement_grace=cfg.settlement_grace,
                              max_order_lifetime=cfg.max_order_lifetime,
                              challenge_stake=cfg.challenge_stake)
        dep = deploy(w3, Sender(w3, dev_account(DEPLOYER)), params)
        dep.save(self.deployment_file)
        self.state["addresses"] = dict(dep.addresses)
        say(f"contracts: deployed at block {dep.block} (committee {len(members)}, threshold {cfg.threshold})")
        self._save()

    def _fund_and_stake(self, say: Progress) -> None:
        from pot.chain.clients import Contracts
        from pot.chain.deployment import Deployment
        from pot.chain.sender import Sender

        cfg = self.config
        w3 = self._w3()
        c = Contracts(w3, Deployment.load(self.deployment_file, cfg.chain_id))
        deployer = Sender(w3, dev_account(DEPLOYER))
        gas = 200_000
        deployer.send_batch([(c.token.address, c.token.encode("transfer", p.address, cfg.fund), gas)
                             for p in self.participants])
        staked = [p for p in self.participants if p.stake_roles]
        for p in staked:
            amount = c.stakes.required_stake(p.stake_roles)
            Sender(w3, p.account).send_batch([
                (c.token.address, c.token.encode("approve", c.stakes.address, amount), gas),
                (c.stakes.address, c.stakes.encode("register", p.stake_roles, amount), 400_000)])
        say(f"accounts: {len(self.participants)} funded with {cfg.fund / TOKEN:g} POT, "
            f"{len(staked)} staked")
        (self.root / "accounts.json").write_text(json.dumps(
            {"note": "Anvil dev mnemonic accounts: public keys, for this local chain only",
             "accounts": {p.name: {"address": p.address, "role": p.role, "key": p.key}
                          for p in [Participant("deployer", "deployer", DEPLOYER),
                                    Participant("treasury", "treasury", TREASURY), *self.participants]}},
            indent=2) + "\n")

    def _start_committee(self, say: Progress) -> None:
        from pot.roles.aggregator_config import local_committee_configs

        cfg = self.config
        members = [p for p in self.participants if p.role == "aggregator"]
        agg_table = dict(cfg.roles.get("aggregator", {}))
        params = agg_table.pop("params", None)
        pbft = agg_table.pop("pbft", None)
        paths = local_committee_configs(
            len(members), self.root / "aggregators", self.deployment_file, self.state["rpc_url"],
            self.store_dir if cfg.shared_store else None,
            keys=[p.account for p in members], host=cfg.host, pbft=pbft, params=params,
            extra={"log_file": "-", "log_level": cfg.log_level, "chain_id": cfg.chain_id, **agg_table})
        urls = []
        for p, path in zip(members, paths):
            conf = tomllib.loads(path.read_text())
            url = f"http://{conf['api_host']}:{conf['api_port']}"
            urls.append(url)
            k = int(p.name.rsplit("-", 1)[1])
            self._record(_spawn(p.name, _pot_cmd("aggregator", "run", "--config", str(path)),
                                self.logs / f"{p.name}.log", cwd=self.root),
                         role="aggregator", address=p.address, url=url, config=str(path),
                         pbft=conf["committee"]["pbft"][k])
        self.state["api_urls"] = urls
        self._save()
        say(f"committee: {len(members)} aggregators, API {urls[0]} … {urls[-1]}")
        deadline = time.monotonic() + self.config.startup_timeout
        pending = {e["name"]: e for e in self.state["processes"] if e.get("role") == "aggregator"}
        while pending:
            for name, e in list(pending.items()):
                if not _alive(e):
                    raise DevnetError(f"{name} exited during start-up; see {e['log']}:\n{_tail(e['log'])}")
                try:
                    _http_json(e["url"] + "/v1/health", timeout=1.0)
                    del pending[name]
                except Exception:  # noqa: BLE001 - not serving yet
                    pass
            if pending and time.monotonic() > deadline:
                raise DevnetError(f"{', '.join(pending)} did not serve within {self.config.startup_timeout:g}s")
            if pending:
                time.sleep(0.25)

    def node_config(self, p: Participant) -> Path:
        """Write ``config/<name>.toml`` for a worker or client: connection settings at the top,
        the role table (plus the node's own overrides) below."""
        cfg = self.config
        table = {**cfg.roles.get(p.role, {}), **cfg.nodes.get(p.name, {})}
        top = {"rpc_url": self.state["rpc_url"], "deployment": str(self.deployment_file),
               "chain_id": cfg.chain_id,
               "store": str(self.store_dir if cfg.shared_store else self.root / "state" / p.name / "store"),
               "api_urls": self.state["api_urls"],
               "poll_interval": cfg.poll_interval, "state_dir": str(self.root / "state" / p.name),
               "log_level": cfg.log_level}
        path = self.root / "config" / f"{p.name}.toml"
        path.write_text(f"# {p.name} ({p.address}); its key is in $POT_PRIVATE_KEY (see accounts.json)\n"
                        + _toml(top, {p.role: table} if table else {}))
        return path

    def _write_client_configs(self) -> None:
        self.state["clients"] = {p.name: str(self.node_config(p)) for p in self.participants
                                 if p.role == "client"}
        # what a newcomer's commands need and nothing more: the contracts come from the committee
        path = self.root / "network.toml"
        path.write_text("# this devnet as a newcomer joins it: the chain and the committee's API (the contracts'\n"
                        "# addresses come from the committee); keys, store and state are the newcomer's own.\n"
                        "#   export POT_CONFIG=" + str(path) + "\n"
                        + _toml({"rpc_url": self.state["rpc_url"], "chain_id": self.config.chain_id,
                                 "api_urls": self.state["api_urls"]}, {}))
        self.state["network_config"] = str(path)
        self._save()

    def _start_workers(self, say: Progress) -> None:
        from pot.roles.config import ClientConfig, MinerConfig, ValidatorConfig, VerifierConfig, load_config

        classes = {"miner": MinerConfig, "validator": ValidatorConfig, "verifier": VerifierConfig,
                   "client": ClientConfig}
        started = []
        for p in self.participants:
            # a client process releases the test data and fetches the winner of every order placed
            # with its config (same state directory), so a user only has to place orders
            if p.role not in (*WORKER_ROLES, "client"):
                continue
            path = self.node_config(p)
            load_config(classes[p.role], path, env={})  # a typo in the devnet config fails here, not in a log
            self._record(_spawn(p.name, _pot_cmd(p.role, "run", "--config", str(path)), self.logs / f"{p.name}.log",
                                env={"POT_PRIVATE_KEY": p.key}, cwd=self.root),
                         role=p.role, address=p.address, config=str(path))
            started.append(p.name)
        say(f"workers: {', '.join(started) or 'none'}")

    def _wait_ready(self, say: Progress) -> None:
        """Until f+1 replicas agree that the ledger knows every registered stake: the chain
        bridge works and the workers will find their roles."""
        import asyncio

        from pot.api.client import CommitteeClient

        staked = [p for p in self.participants if p.stake_roles]
        deadline = time.monotonic() + self.config.startup_timeout

        async def check() -> list[str]:
            api = CommitteeClient(self.state["api_urls"], timeout=2.0)
            try:
                missing = []
                for p in staked:
                    try:
                        node = await api.node(p.address)
                    except Exception:  # noqa: BLE001 - replicas between heights: ask again
                        node = None
                    if not node or not node["roles"] & p.stake_roles:
                        missing.append(p.name)
                return missing
            finally:
                await api.aclose()

        while True:
            missing = asyncio.run(check())
            if not missing:
                break
            dead = [e for e in self.state["processes"] if not _alive(e)]
            if dead:
                raise DevnetError(f"{dead[0]['name']} exited; see {dead[0]['log']}:\n{_tail(dead[0]['log'])}")
            if time.monotonic() > deadline:
                raise DevnetError(f"the committee's ledger still lacks the stakes of {', '.join(missing)} after "
                                  f"{self.config.startup_timeout:g}s; see {self.logs}")
            time.sleep(0.5)
        say(f"ready: the ledger knows {len(staked)} stakes")

    # -- fund ---------------------------------------------------------------------------------

    def fund(self, address: str, pot: int, native: int) -> dict[str, Any]:
        """Send ``native`` (gas) and ``pot`` token wei to ``address`` from the deployer; what it holds then."""
        from pot.chain.clients import Contracts
        from pot.chain.deployment import Deployment
        from pot.chain.sender import Sender

        st = self.load()
        if not any(p.get("role") == "chain" and _alive(p) for p in st.get("processes", [])):
            raise DevnetError(f"the devnet in {self.root} is not running: `pot devnet up` first")
        w3 = self._w3()
        c = Contracts(w3, Deployment.load(self.deployment_file, st["chain_id"]))
        deployer = Sender(w3, dev_account(DEPLOYER))
        if native:
            deployer.send(address, b"", value=native, gas=21_000)
        if pot:
            c.token.transfer(deployer, address, pot)
        return {"address": address, "native": w3.eth.get_balance(address), "pot": c.token.balance_of(address)}

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Each process alive or dead, the chain's head, each replica's view/seq/digest."""
        from pot.chain.anvil import rpc

        st = self.load()
        procs = []
        for e in st.get("processes", []):
            row = {"name": e["name"], "role": e.get("role"), "pid": e["pid"], "alive": _alive(e), "log": e["log"]}
            if e.get("retired"):
                row["retired"] = True  # replaced: no member any more (pot devnet replace-aggregator)
            elif e.get("role") == "aggregator":
                try:
                    info = _http_json(e["url"] + "/v1/info", timeout=2.0)
                    row["info"] = {k: info.get(k) for k in ("replicaId", "epoch", "view", "lastExecuted", "ledgerSeq",
                                                             "ledgerDigest", "ledgerTime", "primary")}
                except Exception as exc:  # noqa: BLE001 - a dead or busy replica is part of the status
                    row["info"] = {"error": f"{type(exc).__name__}: {exc}"}
                row["url"] = e["url"]
            procs.append(row)
        chain: dict[str, Any] = {"url": st.get("rpc_url")}
        try:
            chain["block"] = int(rpc(st["rpc_url"], "eth_blockNumber", timeout=2.0), 16)
        except Exception as exc:  # noqa: BLE001
            chain["error"] = f"{type(exc).__name__}: {exc}"
        out = {"root": st["root"], "chain": chain, "processes": procs, "api_urls": st.get("api_urls", []),
               "clients": st.get("clients", {})}
        if "error" not in chain:
            out["balances"] = self._balances(st)
        if out["api_urls"]:
            try:
                page = _http_json(out["api_urls"][0] + "/v1/orders?limit=10", timeout=2.0)
                out["orders"] = [{"orderId": int(o["order"]["orderId"]), "phase": o["phase"], "status": o["status"],
                                  "reward": int(o["order"]["reward"]), "phaseEnd": o.get("phaseEnd"),
                                  "winner": o.get("winner")} for o in page["orders"]]
            except Exception as exc:  # noqa: BLE001 - the replica's health is reported above
                out["orders"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    def _balances(self, st: dict[str, Any]) -> list[dict[str, Any]]:
        """Each devnet account's gas, POT and stake, as the chain has them now."""
        from pot.chain.clients import Contracts
        from pot.chain.deployment import Deployment

        try:
            accounts = json.loads((self.root / "accounts.json").read_text())["accounts"]
            w3 = self._w3()
            c = Contracts(w3, Deployment.load(self.deployment_file, st["chain_id"]))
            return [{"name": name, "role": a["role"], "address": a["address"],
                     "native": w3.eth.get_balance(a["address"]), "pot": c.token.balance_of(a["address"]),
                     "stake": c.stakes.staker(a["address"])["stake"]} for name, a in accounts.items()]
        except (OSError, KeyError, ValueError, ConnectionError) as exc:
            return [{"error": f"{type(exc).__name__}: {exc}"}]

    def problems(self, status: dict[str, Any]) -> list[str]:
        """What is wrong in a ``status()``: each dead process, each replica whose API does not
        answer (alive but stopped or wedged counts as dead too), an unreachable chain."""
        out = []
        if "error" in status["chain"]:
            out.append(f"chain ({status['chain']['error'][:80]})")
        for p in status["processes"]:
            if p.get("retired"):
                continue
            if not p["alive"]:
                out.append(f"{p['name']} (exited; see {p['log']})")
            elif "error" in p.get("info", {}):
                out.append(f"{p['name']} (API not answering: {p['info']['error'][:60]})")
        return out

    # -- restart ------------------------------------------------------------------------------

    def restart(self, name: str, *, timeout: float = 10.0, progress: Progress | None = None) -> dict[str, Any]:
        """Stop node ``name`` (SIGTERM, SIGKILL after ``timeout``; a stopped process is continued
        first) and start it again with the same command, config and log; an aggregator is back when
        its API answers. The chain cannot be restarted: Anvil keeps it in memory only."""
        say = progress or (lambda _msg: None)
        st = self.load()
        entries = st.get("processes", [])
        entry = next((e for e in entries if e["name"] == name), None)
        if entry is None:
            raise DevnetError(f"no node {name!r} in this devnet (nodes: {', '.join(e['name'] for e in entries)})")
        if entry.get("retired"):
            raise DevnetError(f"{name} was replaced: its key is no committee member any more")
        if entry.get("role") == "chain":
            raise DevnetError("the chain cannot be restarted: Anvil keeps it in memory, a new one would be another "
                              "chain; `pot devnet down` and `pot devnet up` start a new devnet")
        if _alive(entry):
            _signal(entry, signal.SIGCONT)
            _signal(entry, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(entry) and time.monotonic() < deadline:
                _reap(entry["pid"])
                time.sleep(0.1)
            if _alive(entry):
                _signal(entry, signal.SIGKILL)
                _reap(entry["pid"])
            say(f"{name}: stopped (pid {entry['pid']})")
        env = None
        account = st.get("accounts", {}).get(name)
        if entry.get("role") != "aggregator" and account is not None:
            env = {"POT_PRIVATE_KEY": "0x" + bytes(dev_account(account["index"]).key).hex()}
        new = _spawn(name, entry["cmd"], Path(entry["log"]), env=env, cwd=self.root)
        entry.update({k: new[k] for k in ("pid", "start_time")})
        self._save()
        if entry.get("role") == "aggregator":
            deadline = time.monotonic() + self.config.startup_timeout
            while True:
                try:
                    _http_json(entry["url"] + "/v1/health", timeout=1.0)
                    break
                except Exception:  # noqa: BLE001 - not serving yet
                    if not _alive(entry):
                        raise DevnetError(f"{name} exited during start-up; see {entry['log']}:\n"
                                          f"{_tail(entry['log'])}") from None
                    if time.monotonic() > deadline:
                        raise DevnetError(f"{name} did not serve within {self.config.startup_timeout:g}s") from None
                    time.sleep(0.25)
        say(f"{name}: started (pid {entry['pid']})")
        return entry

    # -- down ---------------------------------------------------------------------------------

    def down(self, timeout: float = 10.0) -> list[tuple[str, str]]:
        """SIGTERM everything (workers first, the chain last), SIGKILL what is left after
        ``timeout``; returns (name, how it ended) per process."""
        if not self.state:
            self.load()
        order = {"chain": 2, "aggregator": 1}
        procs = sorted(self.state.get("processes", []), key=lambda e: order.get(e.get("role"), 0))
        outcome: list[tuple[str, str]] = []
        # stop in tiers: workers still talking to the committee would log errors if it went first
        for tier in sorted({order.get(e.get("role"), 0) for e in procs}):
            group = [e for e in procs if order.get(e.get("role"), 0) == tier]
            live = [e for e in group if _alive(e)]
            outcome += [(e["name"], "not running") for e in group if e not in live]
            for e in live:
                _signal(e, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while live and time.monotonic() < deadline:
                for e in list(live):
                    _reap(e["pid"])
                    if not _alive(e):
                        live.remove(e)
                        outcome.append((e["name"], "stopped"))
                if live:
                    time.sleep(0.1)
            for e in live:
                _signal(e, signal.SIGKILL)
                _reap(e["pid"])
                outcome.append((e["name"], "killed"))
        if self.state_file.exists() or self.state:
            self.state["stopped_at"] = int(time.time())
            self._save()
        return outcome

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.state.get("processes"):
            self.down()


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _dump_config(cfg: DevnetConfig) -> str:
    """The effective configuration, as a TOML file ``--config`` takes back."""
    devnet = {k: getattr(cfg, k) for k in _SECTIONS["devnet"]}
    chain = {k: (f"{getattr(cfg, k) / TOKEN:g} POT" if k in _AMOUNTS and getattr(cfg, k) % 10**12 == 0
                 else getattr(cfg, k)) for k in _SECTIONS["chain"]}
    tables = {"devnet": devnet, "chain": chain, **{r: t for r, t in cfg.roles.items() if t}}
    tables.update({f'nodes."{n}"': t for n, t in cfg.nodes.items()})
    return "# the configuration this devnet was started with\n" + _toml({}, tables)
