"""``pot miner``: train on GPU/CPU, commit and reveal models; see your orders and earnings."""

from __future__ import annotations

import click

from pot.commands.common import (API, CONFIG, JSON, WALLET, load, run_service, settings_epilog,
                                 worker_options)
from pot.roles.config import MinerConfig


@click.group(help="Train on GPU/CPU, commit and reveal models; see your orders and earnings.")
def group() -> None:
    pass


@group.command(epilog=settings_epilog(MinerConfig))
@worker_options
@click.option("--stake", default=None, help="Stake to register as a miner, e.g. '100 POT' (default: the minimum).")
@click.option("--device", default=None, help="Training device: auto, cuda, cuda:N or cpu.")
@click.option("--max-params", type=int, default=None, help="Skip orders whose model has more parameters.")
@click.option("--commit-margin", "commit_margin_s", type=float, default=None,
              help="Stop training this many seconds before trainEnd so the last commit lands.")
@click.option("--progress/--no-progress", default=None, help="Show a training progress bar (on a terminal).")
def run(config_file, **options) -> None:
    """Run the miner until SIGINT/SIGTERM: pick the best-paying order this hardware can take,
    train, commit every better model before trainEnd, reveal the best after it, and say how each
    order ended ("order 6: you won — 80 POT paid in tx 0x…"). Ctrl-C stops it after the batch
    under way, with its state saved (exit 130)."""
    from pot.roles.miner import run as run_miner

    run_service(run_miner(load(MinerConfig, config_file, **options)))


@group.command()
@CONFIG
@WALLET[0]
@API
@click.option("--address", default=None, metavar="ADDRESS",
              help="Whose orders (default: the key's address, read from the keystore without its password).")
@click.option("--limit", type=int, default=20, show_default=True, help="Most recent orders shown.")
@JSON
def status(config_file, keystore, api_urls, address, limit, as_json) -> None:
    """Your stake, earnings and the orders you mined, current and past, with their outcome
    (won, lost to whom and by how much, what each paid), from the committee's ledger (f+1
    replicas alike)."""
    import asyncio

    from pot.commands.accounts import account_address, echo_json, miner_report, render_miner_report

    cfg = load(MinerConfig, config_file, keystore=keystore, api_urls=api_urls)
    who = account_address(address, cfg)
    report = asyncio.run(miner_report(cfg, who, limit))
    if as_json:
        echo_json(report)
    else:
        render_miner_report(report)
