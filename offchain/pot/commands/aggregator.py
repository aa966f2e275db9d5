"""``pot aggregator``: run one PBFT replica of the global ledger; write a local committee's configs."""

from __future__ import annotations

import click

from pot.commands.common import rpc_options, run_service, settings


@click.group(help="Run a PBFT replica of the global ledger (and co-sign settlements).")
def group() -> None:
    pass


@group.command()
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False),
              help="The replica's TOML file (replica_id, data_dir, rpc_url, deployment, store, keystore, "
                   "[committee] pbft/public_keys, [pbft], [params], [admission], [content]); see "
                   "pot.roles.aggregator_config. $POT_<SETTING> variables override it, options override both.")
@rpc_options
@click.option("--api-port", type=int, default=None, help="Override api_port (HTTP API).")
@click.option("--settlement-path", type=click.Choice(["signed", "propose-confirm-execute"]), default=None,
              help="Override settlement_path: one executeSigned, or the paper's propose/confirm/execute.")
@click.option("--log-level", default=None, help="Override log_level: DEBUG, INFO, WARNING or ERROR.")
@click.option("--log-file", default=None, help="Override log_file ('-': stderr only).")
@click.option("--join", is_flag=True, default=None,
              help="A new member: join the config's [committee] (the committee a change adds this key to) "
                   "by state transfer from its members, with an empty data_dir (docs/COMMITTEE.md).")
def run(config_file, **overrides) -> None:
    """Run the replica until SIGINT/SIGTERM: PBFT over the SQLite ledger, the HTTP API (and the
    explorer), the chain follower (attests confirmed events), PoT.Verify, settlement signing and
    submission, and the content its participants upload.

    The key comes from the config's keystore (password in password_file or $POT_KEYSTORE_PASSWORD),
    else from $POT_PRIVATE_KEY (or the variable named by key_env)."""
    from pot.roles.aggregator import run as run_aggregator
    from pot.roles.aggregator_config import load_aggregator_config

    run_service(run_aggregator(load_aggregator_config(config_file, **settings(**overrides))))


@group.command("local-configs")
@click.option("--nodes", "-n", type=int, default=4, show_default=True, help="Replicas (n = 3f+1).")
@click.option("--dir", "base_dir", required=True, type=click.Path(file_okay=False),
              help="Writes <dir>/agg<i>/aggregator.toml with a devnet keystore each.")
@click.option("--deployment", required=True, type=click.Path(dir_okay=False), help="Deployment file.")
@click.option("--rpc-url", default="http://127.0.0.1:8545", show_default=True, help="Chain RPC URL.")
@click.option("--store", default=None,
              help="One content store for every replica (directory or IPFS RPC URL); default: each its own.")
@click.option("--seed", default="devnet", show_default=True,
              help="Seed of the deterministic committee keys (devnets only: never for real value).")
@click.option("--settlement-path", type=click.Choice(["signed", "propose-confirm-execute"]), default="signed",
              show_default=True, help="How settlements go on-chain.")
def local_configs(nodes, base_dir, deployment, rpc_url, store, seed, settlement_path) -> None:
    """Write the configs of an n-replica committee on this machine (free ports, devnet keys).
    The deployment's RewardMultisig must have the members `pot.roles.aggregator.committee_keys`
    gives for the same seed."""
    from pot.roles.aggregator_config import local_committee_configs

    for p in local_committee_configs(nodes, base_dir, deployment, rpc_url, store, seed=seed,
                                     settlement_path=settlement_path):
        click.echo(str(p))
