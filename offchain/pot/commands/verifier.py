"""``pot verifier``: re-check validations and challenge wrong ones."""

from __future__ import annotations

import click

from pot.roles.cli import build_config, common_options, run_role, settings_epilog
from pot.roles.config import VerifierConfig


@click.group(help="Re-check validations and challenge wrong ones on-chain.")
def group() -> None:
    pass


@group.command(epilog=settings_epilog(VerifierConfig))
@common_options
@click.option("--stake", default=None, help="Stake to register as a verifier, e.g. '100 POT'.")
def run(config_file, **options) -> None:
    """Run the verifier until SIGINT/SIGTERM: recompute every revealed validation and commit,
    then reveal, an on-chain challenge (locking cStake) against a wrong one."""
    from pot.roles.verifier import run as run_verifier

    run_role(run_verifier(build_config(VerifierConfig, config_file, **options)))
