"""Options every worker command shares (click); the commands in pot.commands only parse, build
the config and call the role."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import click

from pot.roles.config import ConfigError, WorkerConfig, describe, load_config

COMMON = [
    click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                 help="TOML file: top-level keys for every role, a [<role>] table for this one. "
                      "$POT_<SETTING> variables override it, options override both."),
    click.option("--rpc-url", default=None, help="JSON-RPC URL of the chain ($POT_RPC_URL)."),
    click.option("--deployment", default=None, help="Deployment file from `pot contracts deploy`."),
    click.option("--chain-id", type=int, default=None, help="Chain id to pick from the deployment file."),
    click.option("--keystore", default=None, help="Encrypted keystore file (password in $POT_KEYSTORE_PASSWORD); "
                                                  "without it the key comes from $POT_PRIVATE_KEY."),
    click.option("--store", default=None, help="Content store: a directory, an IPFS RPC URL "
                                               "(http://127.0.0.1:5001) or gateway+http://host:8080."),
    click.option("--api", "api_urls", multiple=True, help="Aggregator API URL; repeat for every replica "
                                                          "(reads need f+1 matching answers)."),
    click.option("--state-dir", default=None, help="Where salts, models and order state are kept."),
    click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR."),
]


def common_options(fn: Callable) -> Callable:
    for opt in reversed(COMMON):
        fn = opt(fn)
    return fn


def build_config(cls: type[WorkerConfig], config_file: str | None, api_urls: tuple[str, ...] = (),
                 **options: Any) -> WorkerConfig:
    try:
        return load_config(cls, config_file, api_urls=list(api_urls) or None, **options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def run_role(coro) -> None:
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        pass


def settings_epilog(cls: type[WorkerConfig]) -> str:
    return "\b\nSettings (TOML keys; $POT_<NAME> in the environment):\n" + describe(cls)
