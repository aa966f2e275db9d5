"""``pot verifier``: re-check validations and challenge wrong ones."""

from __future__ import annotations

import click

from pot.commands.common import load, run_service, settings_epilog, worker_options
from pot.roles.config import VerifierConfig


@click.group(help="Re-check validations and challenge wrong ones on-chain.")
def group() -> None:
    pass


@group.command(epilog=settings_epilog(VerifierConfig))
@worker_options
@click.option("--stake", default=None, help="Stake to register as a verifier, e.g. '100 POT'.")
def run(config_file, **options) -> None:
    """Run the verifier until SIGINT/SIGTERM: recompute every revealed validation and commit,
    then reveal, an on-chain challenge (locking cStake) against a wrong one. Says whether each
    challenge was upheld and what it paid."""
    from pot.roles.verifier import run as run_verifier

    run_service(run_verifier(load(VerifierConfig, config_file, **options)))
