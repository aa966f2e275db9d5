"""What the commands share: option sets, as Foundry's ``RpcOpts``/``WalletOpts`` are shared by
every ``cast`` and ``forge`` command that talks to a chain (one spelling, one meaning, one help
text), and how a long-running command ends.

Every option only overrides a setting; the settings themselves come from the one configuration
loader (``pot.roles.config``): defaults < ``--config`` file (or ``$POT_CONFIG``) < ``$POT_<SETTING>``
< options. ``--rpc`` (the old name of ``--rpc-url``) is accepted, hidden, where scripts used it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

CONFIG = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), default=None, envvar="POT_CONFIG",
    help="TOML file: top-level keys for every command, a [<role>] table for one role ($POT_CONFIG). "
         "$POT_<SETTING> variables override it, options override both.")

RPC = [
    click.option("--rpc-url", default=None, metavar="URL", help="JSON-RPC URL of the chain ($POT_RPC_URL)."),
    click.option("--rpc", "rpc_alias", default=None, hidden=True),  # its name before --rpc-url
    click.option("--chain-id", type=int, default=None, help="Chain id to pick from the deployment file "
                                                            "(default: the node's)."),
]

DEPLOYMENT = click.option(
    "--deployment", default=None, metavar="FILE",
    help="Deployment file of `pot contracts deploy` (default: fetched from the committee's API).")

WALLET = [
    click.option("--keystore", default=None, metavar="NAME|FILE",
                 help="Encrypted keystore: a file, or a name in ~/.pot/keystores ($POT_KEYSTORE_DIR); "
                      "without it the key comes from $POT_PRIVATE_KEY."),
    click.option("--password-file", default=None, metavar="FILE",
                 help="File with the keystore's password (else $POT_KEYSTORE_PASSWORD, else asked for)."),
]

API = click.option("--api", "api_urls", multiple=True, metavar="URL",
                   help="Aggregator API URL; repeat for every replica (reads need f+1 matching answers).")

STORE = click.option("--store", default=None,
                     help="Content store: a directory, an IPFS RPC URL (http://127.0.0.1:5001) or "
                          "gateway+http://host:8080.")

JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON (amounts in token wei, as strings).")


def _apply(fn: Callable, options: list) -> Callable:
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def rpc_options(fn: Callable) -> Callable:
    return _apply(fn, RPC)


def wallet_options(fn: Callable) -> Callable:
    return _apply(fn, WALLET)


def chain_options(fn: Callable) -> Callable:
    """--config, the RPC, the deployment and the wallet: what a command that sends a transaction needs."""
    return _apply(fn, [CONFIG, *RPC, DEPLOYMENT, *WALLET])


def network_options(fn: Callable) -> Callable:
    """chain_options plus the committee's API: what a command that reads the ledger needs."""
    return _apply(fn, [CONFIG, *RPC, DEPLOYMENT, *WALLET, API])


def worker_options(fn: Callable) -> Callable:
    """Every setting a worker command (``pot miner run`` ...) takes from the command line."""
    return _apply(fn, [CONFIG, *RPC, DEPLOYMENT, *WALLET, STORE, API,
                       click.option("--state-dir", default=None,
                                    help="Where salts, models and order state are kept."),
                       click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR.")])


def settings(rpc_url: str | None = None, rpc_alias: str | None = None, api_urls: tuple[str, ...] = (),
             **options: Any) -> dict[str, Any]:
    """The options as config overrides: ``--rpc`` folded into ``rpc_url``, ``--api`` into a list,
    unset ones dropped."""
    if rpc_url and rpc_alias and rpc_url != rpc_alias:
        raise click.UsageError("--rpc is the old name of --rpc-url: give one of them")
    out = {k: v for k, v in options.items() if v is not None}
    if rpc_url or rpc_alias:
        out["rpc_url"] = rpc_url or rpc_alias
    if api_urls:
        out["api_urls"] = list(api_urls)
    return out


def load(cls: type, config_file: str | None, **options: Any):
    """``cls`` (a config dataclass of ``pot.roles.config``) from every layer."""
    from pot.roles.config import load_config

    return load_config(cls, config_file, **settings(**options))


def settings_epilog(cls: type) -> str:
    from pot.roles.config import describe

    return "\b\nSettings (TOML keys; $POT_<NAME> in the environment):\n" + describe(cls)


def run_service(coro) -> None:
    """Run a worker's or replica's coroutine to its end. It stops itself on SIGINT/SIGTERM (the
    current step finishes, state is saved) and returns the signal that stopped it: Ctrl-C exits
    130, as an interrupted command does in a shell; SIGTERM (a service manager's stop) exits 0."""
    import asyncio
    import signal

    stopped_by = asyncio.run(coro)
    if stopped_by == signal.SIGINT:
        from pot.cli import EXIT_INTERRUPTED

        raise SystemExit(EXIT_INTERRUPTED)
