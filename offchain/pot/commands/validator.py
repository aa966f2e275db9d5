"""``pot validator``: score revealed models, commit and reveal scores."""

from __future__ import annotations

import click

from pot.commands.common import load, run_service, settings_epilog, worker_options
from pot.roles.config import ValidatorConfig


@click.group(help="Score revealed models, commit and reveal scores.")
def group() -> None:
    pass


@group.command(epilog=settings_epilog(ValidatorConfig))
@worker_options
@click.option("--stake", default=None, help="Stake to register as a validator, e.g. '100 POT'.")
@click.option("--v-stake", default=None, help="vStake behind each validation, e.g. '1 POT' (lost if wrong).")
@click.option("--dishonest-offset", type=int, default=None,
              help="DEMO ADVERSARY ONLY: add this many ppm to every reported score (gets slashed).")
def run(config_file, **options) -> None:
    """Run the validator until SIGINT/SIGTERM: after each test release, score every revealed
    model, commit in the validation window and reveal in the reveal window. Says what each
    settled order paid it, or slashed."""
    from pot.roles.validator import run as run_validator

    run_service(run_validator(load(ValidatorConfig, config_file, **options)))
