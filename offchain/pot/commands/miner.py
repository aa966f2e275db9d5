"""``pot miner``: stake, train on GPU/CPU, commit and reveal models."""

from __future__ import annotations

import click

from pot.roles.cli import build_config, common_options, run_role, settings_epilog
from pot.roles.config import MinerConfig


@click.group(help="Stake, train on GPU/CPU, commit and reveal models.")
def group() -> None:
    pass


@group.command(epilog=settings_epilog(MinerConfig))
@common_options
@click.option("--stake", default=None, help="Stake to register as a miner, e.g. '100 POT' (default: the minimum).")
@click.option("--device", default=None, help="Training device: auto, cuda, cuda:N or cpu.")
@click.option("--max-params", type=int, default=None, help="Skip orders whose model has more parameters.")
@click.option("--commit-margin", "commit_margin_s", type=float, default=None,
              help="Stop training this many seconds before trainEnd so the last commit lands.")
@click.option("--progress/--no-progress", default=None, help="Show a training progress bar.")
def run(config_file, **options) -> None:
    """Run the miner until SIGINT/SIGTERM: pick the best-paying order this hardware can take,
    train, commit every better model before trainEnd, reveal the best after it."""
    from pot.roles.miner import run as run_miner

    run_role(run_miner(build_config(MinerConfig, config_file, **options)))
