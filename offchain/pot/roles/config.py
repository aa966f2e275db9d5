"""Typed configuration of the workers, from a TOML file, the environment and explicit overrides.

Precedence, lowest first: defaults, the file's top-level keys, the file's ``[<role>]`` table,
``POT_<FIELD>`` environment variables (``POT_RPC_URL``, ``POT_API_URLS=a,b``, ``POT_STORE``...),
then overrides (the CLI's options). Example ``miner.toml``::

    rpc_url = "http://127.0.0.1:8545"
    deployment = "deployment.json"
    store = "/var/lib/pot/store"          # or "http://127.0.0.1:5001" (an IPFS node's RPC API)
    api_urls = ["http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://10.0.0.3:8000", "http://10.0.0.4:8000"]

    [miner]
    stake = "100 POT"
    device = "cuda"
    commit_margin_s = 10

The signing key is never in the file: ``keystore`` names an encrypted keystore (password in
``POT_KEYSTORE_PASSWORD``), otherwise ``POT_PRIVATE_KEY`` holds the key.
Token amounts are token wei (an int), or a string such as ``"100 POT"`` or ``"1.5e20"``
(TOML integers stop at 2**63, far below 100 POT in wei).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pot.protocol import units
from pot.protocol.units import TOKEN
from pot.roles.scoring import ScoringLimits

ENV_PREFIX = "POT_"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the field and source."""


def parse_amount(value: Any, where: str = "amount") -> int:
    """Token wei from an int or a string: ``"250"``, ``"1.5e20"``, ``"100 POT"`` (``pot.protocol.units``)."""
    try:
        return units.parse_amount(value, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _amount(default: int = 0, doc: str = "") -> Any:
    return field(default=default, metadata={"amount": True, "doc": doc})


def _opt(default: Any, doc: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class WorkerConfig:
    rpc_url: str = _opt("http://127.0.0.1:8545", "JSON-RPC URL of the chain (Anvil, BSC testnet, ...)")
    deployment: str | None = _opt(None, "deployment file written by `pot contracts deploy` (default: fetched "
                                        "from the committee's API, f+1 replicas alike)")
    chain_id: int | None = _opt(None, "chain id to pick from the deployment file (default: the node's)")
    keystore: str | None = _opt(None, "encrypted keystore: a file, or a name in ~/.pot/keystores "
                                      "($POT_KEYSTORE_DIR); without it the key comes from $POT_PRIVATE_KEY")
    password_file: str | None = _opt(None, "file holding the keystore's password (else $POT_KEYSTORE_PASSWORD, "
                                           "else asked for)")
    store: str | None = _opt(None, "content store: a directory (embedded store), an IPFS RPC URL "
                                   "http://host:5001, or gateway+http://host:8080 (read-only)")
    api_urls: list[str] = _opt(["http://127.0.0.1:8000"], "aggregator API URLs (reads need f+1 alike)")
    f: int | None = _opt(None, "faulty replicas tolerated (default: (len(api_urls)-1)//3)")
    poll_interval: float = _opt(2.0, "seconds between two looks at the network")
    stake: int = _amount(0, "stake to register for the role (0: the registry's minimum)")
    state_dir: str = _opt("~/.pot", "where the worker keeps models, salts and order state")
    log_level: str = _opt("INFO", "DEBUG, INFO, WARNING or ERROR")

    ROLE: typing.ClassVar[str] = "worker"

    @property
    def state_path(self) -> Path:
        return Path(os.path.expanduser(self.state_dir)) / self.ROLE

    def load_account(self):
        """The signing account (``pot.chain.keys.load_account``): keystore, else $POT_PRIVATE_KEY."""
        from pot.chain.keys import load_account

        return load_account(self.keystore, password_file=self.password_file)


@dataclass
class MinerConfig(WorkerConfig):
    ROLE: typing.ClassVar[str] = "miner"
    device: str = _opt("auto", "training device: auto (CUDA when present), cuda, cuda:N or cpu")
    max_params: int | None = _opt(None, "largest model (parameters) this hardware takes on")
    archs: list[str] = _opt([], "architectures this miner trains (empty: all)")
    hints: dict[str, Any] = _opt({}, "the miner's own training settings over the spec's hints (epochs, "
                                     "batch_size, lr, optimizer, weight_decay): only the score counts")
    min_reward_per_second: float = _opt(0.0, "ignore orders paying less (token wei per second of training)")
    commit_margin_s: float = _opt(5.0, "stop training this many seconds before trainEnd so the last "
                                       "commit lands in time")
    commit_interval_s: float = _opt(1.0, "send at most one ClaimCommit per this many seconds; a better "
                                         "model in between waits for the next one, the best is always sent")
    min_train_s: float = _opt(5.0, "skip orders with less training time than this left")
    progress: bool = _opt(False, "show a training progress bar")
    train_seed: int | None = _opt(None, "seed of batch order and holdout split (default: random, so two "
                                        "miners on one spec do not produce the same model)")


@dataclass
class ScoringConfig(WorkerConfig):
    """What validators and verifiers share: the limits of the process that scores models."""
    scoring_memory_mb: int = _opt(4096, "memory (MiB) the scoring process may use beyond PyTorch itself; "
                                        "a model that needs more is abstained from, never scored 0")
    scoring_timeout_s: float = _opt(300.0, "seconds one model may take to score; past it the scoring "
                                           "process is restarted and the model abstained from")

    @property
    def scoring_limits(self) -> ScoringLimits:
        return ScoringLimits(memory_mb=self.scoring_memory_mb, timeout_s=self.scoring_timeout_s)


@dataclass
class ValidatorConfig(ScoringConfig):
    ROLE: typing.ClassVar[str] = "validator"
    v_stake: int = _amount(10**18, "vStake put behind each validation (lost if the score is wrong)")
    dishonest_offset: int = _opt(0, "DEMO ADVERSARY ONLY: add this many ppm to every reported score "
                                    "(an honest validator keeps 0; a non-zero value gets slashed)")


@dataclass
class VerifierConfig(ScoringConfig):
    ROLE: typing.ClassVar[str] = "verifier"


@dataclass
class ClientConfig(WorkerConfig):
    ROLE: typing.ClassVar[str] = "client"
    dataset: str = _opt("digits", "built-in data set (digits, digits-flat, digits-seq, iris, wine, "
                                  "breast-cancer)")
    data: str | None = _opt(None, "your own data instead of a built-in set: an image folder (one sub-folder "
                                  "per class), .npz/.safetensors arrays, .csv, or a text file or folder")
    data_kind: str = _opt("auto", "kind of `data`: auto, images, arrays, csv or text")
    image_size: int = _opt(32, "images are resized to image_size x image_size")
    channels: int | None = _opt(None, "image channels: 1 (grey) or 3 (RGB); default: 1 if every image is grey")
    context: int = _opt(64, "text: bytes of context per window")
    label_column: str | None = _opt(None, "csv: the label column (default: the last)")
    test_fraction: float = _opt(0.25, "share of the data the client keeps as its hidden test set")
    data_seed: int = _opt(0, "seed of the train/test split")
    arch: str | None = _opt(None, "architecture: mlp, cnn, lstm, resnet or gpt (default: resnet for images, "
                                  "gpt for text, else mlp)")
    model: dict[str, Any] = _opt({}, "extra architecture fields (e.g. hidden = [64])")
    init_seed: int = _opt(0, "seed of the initial weights every miner starts from")
    init_weights: str | None = _opt(None, "a model file every miner starts from (fine-tuning); must be of the "
                                          "order's architecture")
    epochs: int = _opt(30, "training hint: epochs")
    batch_size: int = _opt(64, "training hint: batch size")
    lr: float = _opt(1e-3, "training hint: learning rate")
    model_type: str | None = _opt(None, "validation function (modelType); default: the one for the architecture")
    reward: int = _amount(100 * TOKEN, "reward escrowed for the winner")
    train_duration: int = _opt(3600, "seconds of training [t0, trainEnd)")
    validate_duration: int = _opt(600, "seconds validators have after the test release")
    challenge_duration: int = _opt(600, "seconds verifiers have to challenge")
    reveal_duration: int = _opt(600, "seconds of each reveal window and of the test release window")


C = TypeVar("C", bound=WorkerConfig)


def _coerce(tp: Any, value: Any, where: str, from_env: bool) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (from_env and value.strip().lower() in ("", "none", "null")):
            return None
        return _coerce(args[0], value, where, from_env)
    if origin is list:
        if from_env:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        return [_coerce(typing.get_args(tp)[0], v, where, from_env) for v in value]
    if origin is dict or tp is dict:
        if from_env:
            import json
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a JSON object") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return dict(value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a ConfigError naming it."""
    try:
        return tomllib.loads(Path(os.path.expanduser(str(path))).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


Layer = tuple[str, Mapping[str, Any], bool]  # (source, {setting: value}, values are env strings)


def env_layer(names: typing.Iterable[str], env: Mapping[str, str] | None = None,
              prefix: str = ENV_PREFIX) -> Layer:
    """The ``$POT_<NAME>`` variables among ``names``, as a layer."""
    env = os.environ if env is None else env
    return ("the environment", {n: env[prefix + n.upper()] for n in names if prefix + n.upper() in env}, True)


def resolve_layers(cls: type, layers: list[Layer], known: typing.Collection[str] | None = None) -> dict[str, Any]:
    """The keyword arguments of dataclass ``cls`` from ``layers``, lowest first: each value is
    checked against its field's type (amounts parsed), and an error names the setting and the
    layer it came from. Values equal to None are skipped (an option left unset hides nothing).
    Every config of the project goes through here: workers, aggregators, the devnet.
    ``known``: the settings a file may hold (default: every field)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if known is None or f.name in known}
    chosen: dict[str, tuple[Any, str, bool]] = {}
    for source, values, from_env in layers:
        for name, v in values.items():
            if name not in fields:
                raise ConfigError(f"{source}: unknown setting {name!r} (known: {', '.join(sorted(fields))})")
            if v is not None:
                where = f"${ENV_PREFIX}{name.upper()}" if from_env else source
                chosen[name] = (v, where, from_env)
    kwargs: dict[str, Any] = {}
    for name, (v, source, from_env) in chosen.items():
        where = f"{name} (from {source})"
        if fields[name].metadata.get("amount"):
            kwargs[name] = parse_amount(v, where)
        else:
            kwargs[name] = _coerce(hints[name], v, where, from_env)
    return kwargs


def load_config(cls: type[C], path: str | os.PathLike | None = None, *, env: Mapping[str, str] | None = None,
                **overrides: Any) -> C:
    """Build ``cls`` from defaults < TOML file < ``[role]`` table < $POT_* < ``overrides``
    (overrides equal to None are ignored, so CLI options left unset do not hide the file)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    layers: list[Layer] = []
    if path is not None:
        doc = read_toml(path)
        section = doc.get(cls.ROLE, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{cls.ROLE}] must be a table")
        # other roles' tables are theirs; a table-valued setting (model = {...}) is ours
        top = {k: v for k, v in doc.items() if not isinstance(v, dict) or k in fields}
        top.pop(cls.ROLE, None)
        layers += [(str(path), top, False), (f"{path} [{cls.ROLE}]", section, False)]
    layers.append(env_layer(fields, env))
    layers.append(("the command line", overrides, False))
    return cls(**resolve_layers(cls, layers))


def describe(cls: type[WorkerConfig]) -> str:
    """One line per setting (name, default, meaning): the CLI's --help epilog."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"{f.name} = {default!r}: {f.metadata.get('doc', '')}")
    return "\n".join(lines)
