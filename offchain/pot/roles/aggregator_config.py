"""Configuration of one aggregator replica, and the configs of a local n-replica committee.

One TOML file per replica (``pot aggregator run --config agg0.toml``)::

    replica_id = 0                         # this replica's index in [committee]
    data_dir = "/var/lib/pot/agg0"         # ledger.sqlite, pbft/ (batch log, checkpoints), logs
    rpc_url = "http://127.0.0.1:8545"      # this replica's OWN chain node: it attests what it sees
    deployment = "deployment.json"
    # chain_id = 31337                     # pick from the deployment file (default: the node's)
    store = "/var/lib/pot/store"           # or http://127.0.0.1:5001 (IPFS RPC)
    keystore = "agg0.key.json"             # encrypted; password from password_file or
    # password_file = "agg0.password"      #   $POT_KEYSTORE_PASSWORD; without a keystore the key
    # key_env = "POT_PRIVATE_KEY"          #   comes from this environment variable
    api_host = "127.0.0.1"
    api_port = 8000
    confirmations = 0                      # chain depth before an event is attested (15 on BSC)
    tick_interval = 1.0                    # seconds between Tick requests (ledger time advances)
    settlement_path = "signed"             # or "propose-confirm-execute" (the paper's path)
    settlement_timeout = 15.0              # seconds before the next replica takes over a submission
    log_file = ""                          # default: <data_dir>/aggregator.log; "-": stderr only
    log_level = "INFO"
    join = false                           # true: a new member (a committee change adds it); it
                                           #   joins [committee] by state transfer (docs/COMMITTEE.md)

    [committee]                            # the same table in every replica's file
    pbft = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
    public_keys = ["02ab…", "03cd…", "…", "…"]   # compressed secp256k1 keys, same order
    api_urls = ["http://127.0.0.1:8000", "…"]     # each replica's public API, same order: the genesis
                                           #   committee's URLs workers follow (GET /v1/committee/members)

    [pbft]                                 # pot.pbft.ReplicaConfig fields
    view_timeout = 2.0

    [params]                               # ledger parameters not read from the chain
    finalize_delay = 0

    [admission]                            # API rate limits (pot.api.admission.AdmissionLimits)
    sender_rate = 20.0                     # messages/s per signer (burst: sender_burst)
    connection_rate = 200.0                # submissions/s per connection (burst: connection_burst)

    [content]                              # uploads this replica keeps (pot.api.content.ContentLimits)
    max_upload_mb = 1024                   # largest single upload
    quota_mb = 8192                        # what one account may keep here at once
    retention_s = 604800                   # kept this long after the order settled (winners: longer)

A replica's chain key is also its PBFT key: the committee table lists public keys only (links
are keyed by ECDH, see ``pot.pbft.crypto``), and the committee's chain addresses follow from
them; they must be RewardMultisig's members. The rest of the ledger configuration (members'
order, threshold, minimum stakes, minimum reveal duration, treasury) is read from the chain, so
the replicas cannot disagree about it by configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pot.roles.config import ConfigError, env_layer, read_toml, resolve_layers

SETTLEMENT_PATHS = ("signed", "propose-confirm-execute")


class AggregatorConfigError(ConfigError):
    """The aggregator's configuration is missing something or malformed (the message says what)."""


@dataclass
class AggregatorConfig:
    replica_id: int
    pbft: list[tuple[str, int]]
    public_keys: list[bytes]
    data_dir: Path
    rpc_url: str = "http://127.0.0.1:8545"
    deployment: str = "deployment.json"
    chain_id: int | None = None
    store: str | None = None
    keystore: str | None = None
    password_file: str | None = None
    key_env: str = "POT_PRIVATE_KEY"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_urls: list[str] = field(default_factory=list)
    confirmations: int = 0
    tick_interval: float = 1.0
    chain_poll_interval: float = 0.5
    verify_poll_interval: float = 1.0
    settlement_poll_interval: float = 0.5
    settlement_path: str = "signed"
    settlement_timeout: float = 15.0
    log_file: str = ""
    log_level: str = "INFO"
    join: bool = False
    pbft_options: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    admission: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n(self) -> int:
        return len(self.pbft)

    @property
    def f(self) -> int:
        from pot.protocol.committee import max_faulty

        return max_faulty(self.n)

    @property
    def store_location(self) -> str:
        """The replica's own content store (default ``<data_dir>/store``)."""
        return self.store or str(self.data_dir / "store")

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def pbft_dir(self) -> Path:
        return self.data_dir / "pbft"

    @property
    def log_path(self) -> Path | None:
        if self.log_file == "-":
            return None
        return Path(self.log_file) if self.log_file else self.data_dir / "aggregator.log"

    def load_account(self):
        """The replica's chain key (also its PBFT key), by the one key loader
        (``pot.chain.keys.load_account``): keystore, else ``$<key_env>``."""
        from pot.chain.keys import load_account

        return load_account(self.keystore, password_file=self.password_file, key_env=self.key_env)


_TOP = {f.name for f in fields(AggregatorConfig)} - {"pbft", "public_keys", "api_urls", "pbft_options",
                                                     "params", "admission", "content", "path", "data_dir",
                                                     "replica_id"}
#: the file's tables: the committee, PBFT options, ledger parameters, admission and content limits
_TABLES = ("committee", "pbft", "params", "admission", "content")


def _addr(s: Any, where: str) -> tuple[str, int]:
    if not isinstance(s, str) or ":" not in s:
        raise AggregatorConfigError(f"{where}: expected 'host:port', got {s!r}")
    host, _, port = s.rpartition(":")
    try:
        p = int(port)
    except ValueError:
        raise AggregatorConfigError(f"{where}: port of {s!r} is not a number") from None
    if not 0 < p < 65536:
        raise AggregatorConfigError(f"{where}: port {p} out of range")
    return host, p


def _api_urls(urls: Any, n: int, path: Any) -> list[str]:
    """[committee] api_urls: none, or one public API URL per member ("" where unknown). They are
    the genesis committee's in the replicated ledger, so every member's table must list the same."""
    from pot.protocol.epoch import EpochError, check_api_url

    if not urls:
        return []
    if not isinstance(urls, list) or len(urls) != n:
        raise AggregatorConfigError(f"{path}: [committee] api_urls must list one URL per member ({n}), "
                                    f"in pbft order")
    try:
        return [u and check_api_url(u) for u in urls]
    except EpochError as exc:
        raise AggregatorConfigError(f"{path}: [committee] api_urls: {exc}") from None


def load_aggregator_config(path: str | os.PathLike, *, env: Mapping[str, str] | None = None,
                           **overrides: Any) -> AggregatorConfig:
    """Parse and check one replica's TOML file. The settings' layers are the workers' (``pot.roles.config``):
    defaults < the file < ``$POT_<SETTING>`` < ``overrides`` (the command line; None: unset)."""
    path = Path(path)
    doc = read_toml(path)
    tables = {k: doc.pop(k) for k in _TABLES if k in doc}
    settings = resolve_layers(AggregatorConfig, [(str(path), doc, False), env_layer(_TOP, env),
                                                 ("the command line", overrides, False)],
                              known=_TOP | {"replica_id", "data_dir"})
    doc = {**settings, **tables}
    com = doc.get("committee")
    if not isinstance(com, dict):
        raise AggregatorConfigError(f"{path}: missing [committee] table (pbft addresses, public_keys)")
    addrs = com.get("pbft")
    keys = com.get("public_keys")
    if not isinstance(addrs, list) or not addrs:
        raise AggregatorConfigError(f"{path}: [committee] pbft must be a non-empty list of 'host:port'")
    if not isinstance(keys, list) or len(keys) != len(addrs):
        raise AggregatorConfigError(f"{path}: [committee] public_keys must list one key per pbft address")
    pks = []
    for i, k in enumerate(keys):
        try:
            pk = bytes.fromhex(k.removeprefix("0x"))
        except (AttributeError, ValueError):
            raise AggregatorConfigError(f"{path}: [committee] public_keys[{i}] is not hex") from None
        if len(pk) != 33:
            raise AggregatorConfigError(f"{path}: [committee] public_keys[{i}] must be a compressed "
                                        f"secp256k1 key (33 bytes)")
        pks.append(pk)
    rid = doc.get("replica_id")
    if type(rid) is not int or not 0 <= rid < len(addrs):
        raise AggregatorConfigError(f"{path}: replica_id must be an int in [0, {len(addrs)})")
    if not doc.get("data_dir"):
        raise AggregatorConfigError(f"{path}: data_dir is required")
    kw: dict[str, Any] = {k: doc[k] for k in _TOP if k in doc}
    from pot.pbft.replica import ReplicaConfig

    pbft_opts = doc.get("pbft", {})
    bad = sorted(set(pbft_opts) - ({f.name for f in fields(ReplicaConfig)} - {"n"}))
    if bad:
        raise AggregatorConfigError(f"{path}: [pbft] unknown option(s) {bad}")
    from pot.api.admission import AdmissionLimits

    admission = doc.get("admission", {})
    if not isinstance(admission, dict):
        raise AggregatorConfigError(f"{path}: [admission] must be a table")
    try:
        AdmissionLimits.from_dict(admission, f"{path}: [admission]")
    except ValueError as exc:
        raise AggregatorConfigError(str(exc)) from None
    from pot.api.content import ContentLimits

    content = doc.get("content", {})
    if not isinstance(content, dict):
        raise AggregatorConfigError(f"{path}: [content] must be a table")
    try:
        ContentLimits.from_dict(content, f"{path}: [content]")
    except ValueError as exc:
        raise AggregatorConfigError(str(exc)) from None
    cfg = AggregatorConfig(replica_id=rid, pbft=[_addr(a, f"{path}: [committee] pbft[{i}]")
                                                 for i, a in enumerate(addrs)],
                           public_keys=pks, data_dir=Path(os.path.expanduser(str(doc["data_dir"]))),
                           api_urls=_api_urls(com.get("api_urls", []), len(addrs), path),
                           pbft_options=dict(pbft_opts),
                           params=dict(doc.get("params", {})), admission=dict(admission), content=dict(content),
                           path=path, **kw)
    if cfg.settlement_path not in SETTLEMENT_PATHS:
        raise AggregatorConfigError(f"{path}: settlement_path must be one of {SETTLEMENT_PATHS}, "
                                    f"got {cfg.settlement_path!r}")
    for name in ("tick_interval", "chain_poll_interval", "verify_poll_interval", "settlement_poll_interval",
                 "settlement_timeout"):
        if not isinstance(getattr(cfg, name), (int, float)) or getattr(cfg, name) <= 0:
            raise AggregatorConfigError(f"{path}: {name} must be a positive number")
    if type(cfg.join) is not bool:
        raise AggregatorConfigError(f"{path}: join must be true or false")
    if type(cfg.confirmations) is not int or cfg.confirmations < 0:
        raise AggregatorConfigError(f"{path}: confirmations must be an int >= 0")
    if type(cfg.api_port) is not int or not 0 <= cfg.api_port < 65536:
        raise AggregatorConfigError(f"{path}: api_port must be a port number")
    return cfg


# --- a local committee (devnet, demo, tests) ----------------------------------------------------

def committee_keys(n: int, seed: str = "devnet") -> list:
    """Deterministic committee accounts for a local devnet (never for real value): deploy the
    RewardMultisig with their addresses, then write the configs with the same keys."""
    from eth_account import Account
    from eth_utils import keccak

    return [Account.from_key(keccak(text=f"pot-aggregator-{seed}-{i}")) for i in range(n)]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def local_committee_configs(n: int, base_dir: str | os.PathLike, deployment_path: str | os.PathLike,
                            rpc_url: str, store: str | os.PathLike | None, *, keys: list | None = None,
                            seed: str = "devnet", host: str = "127.0.0.1", pbft_ports: list[int] | None = None,
                            api_ports: list[int] | None = None, password: str = "devnet",
                            settlement_path: str = "signed", confirmations: int = 0,
                            settlement_timeout: float = 15.0, tick_interval: float = 1.0,
                            pbft: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                            admission: dict[str, Any] | None = None, content: dict[str, Any] | None = None,
                            extra: dict[str, Any] | None = None) -> list[Path]:
    """Write ``base_dir/agg<i>/aggregator.toml`` (plus an encrypted keystore and its password
    file, mode 0600) for replicas ``0..n-1`` on one machine; returns the config paths in
    replica order. Start each with ``pot aggregator run --config PATH``.

    ``keys``: the members' accounts or private keys (default ``committee_keys(n, seed)``); the
    deployment's RewardMultisig must have exactly their addresses. Ports default to free ones.
    ``store``: one content store for every replica (a shared directory, an IPFS node), or None: each
    keeps its own under its data directory, as replicas on different machines do.
    ``extra`` adds top-level settings to every file (e.g. ``{"log_level": "DEBUG"}``)."""
    from eth_account import Account

    from pot.ports import free_ports
    from pot.pbft.crypto import public_key

    if n < 1:
        raise ValueError("a committee needs at least one replica")
    if settlement_path not in SETTLEMENT_PATHS:
        raise ValueError(f"settlement_path must be one of {SETTLEMENT_PATHS}")
    accounts = [Account.from_key(k) if isinstance(k, (bytes, str)) else k
                for k in (keys if keys is not None else committee_keys(n, seed))]
    if len(accounts) != n:
        raise ValueError(f"{len(accounts)} keys for {n} replicas")
    if not pbft_ports or not api_ports:
        chosen = free_ports(2 * n, host)
        pbft_ports = list(pbft_ports) if pbft_ports else chosen[:n]
        api_ports = list(api_ports) if api_ports else chosen[n:]
    if len(pbft_ports) != n or len(api_ports) != n:
        raise ValueError("one pbft port and one api port per replica")
    base = Path(base_dir).resolve()
    committee = [
        "[committee]",
        "pbft = " + _toml_value([f"{host}:{p}" for p in pbft_ports]),
        "public_keys = " + _toml_value([public_key(bytes(a.key)).hex() for a in accounts]),
        "api_urls = " + _toml_value([f"http://{host}:{p}" for p in api_ports]),
    ]
    tables = ["", *committee]
    if pbft:
        tables += ["", "[pbft]", *(f"{k} = {_toml_value(v)}" for k, v in pbft.items())]
    if params:
        tables += ["", "[params]", *(f"{k} = {_toml_value(v)}" for k, v in params.items())]
    if admission:
        tables += ["", "[admission]", *(f"{k} = {_toml_value(v)}" for k, v in admission.items())]
    if content:
        tables += ["", "[content]", *(f"{k} = {_toml_value(v)}" for k, v in content.items())]
    paths = []
    for i, acct in enumerate(accounts):
        d = base / f"agg{i}"
        d.mkdir(parents=True, exist_ok=True)
        keystore = d / "key.json"
        # a devnet key: cheap scrypt so n replicas start in well under a second each
        import json

        keystore.write_text(json.dumps(Account.encrypt(acct.key, password, kdf="scrypt", iterations=2**10)))
        keystore.chmod(0o600)
        pw = d / "password"
        pw.write_text(password)
        pw.chmod(0o600)
        top = {"replica_id": i, "data_dir": str(d), "rpc_url": rpc_url,
               "deployment": str(Path(deployment_path).resolve()),
               **({"store": str(store)} if store is not None else {}), "keystore": str(keystore), "password_file": str(pw), "api_host": host, "api_port": api_ports[i],
               "confirmations": confirmations, "settlement_path": settlement_path,
               "settlement_timeout": settlement_timeout, "tick_interval": tick_interval, **(extra or {})}
        text = "\n".join([f"# aggregator replica {i} of a local {n}-replica committee",
                          *(f"{k} = {_toml_value(v)}" for k, v in top.items()), *tables]) + "\n"
        path = d / "aggregator.toml"
        path.write_text(text)
        paths.append(path)
    return paths
