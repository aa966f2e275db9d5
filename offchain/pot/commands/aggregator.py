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


def _api_url(config_file: str | None, api: str | None) -> str:
    if api:
        return api
    if not config_file:
        raise click.UsageError("give --config (the replica's file: its API) or --api URL")
    from pot.roles.aggregator_config import load_aggregator_config

    cfg = load_aggregator_config(config_file)
    host = "127.0.0.1" if cfg.api_host in ("0.0.0.0", "::", "") else cfg.api_host
    return f"http://{host}:{cfg.api_port}"


_EPOCH_API = click.option("--api", default=None, metavar="URL",
                          help="The aggregator API to ask (default: the --config replica's own, api_host:api_port).")


@group.command("propose-member")
@click.argument("kind", type=click.Choice(["add", "remove", "replace", "rotate"]))
@click.argument("members", nargs=-1, required=True)
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False),
              help="This member's replica TOML file: its key (keystore, else $POT_PRIVATE_KEY) and its API.")
@_EPOCH_API
@click.option("--threshold", "-k", type=int, default=None,
              help="k of the new committee (default 2f+1 of its size; any strict majority is accepted).")
@click.option("--deadline-in", type=click.IntRange(60, 24 * 3600), default=3600, show_default=True,
              help="Seconds from the ledger's time the change may take to execute on chain; a decided change "
                   "pauses settling until then. Ignored when joining an identical open change.")
@click.option("--api-url", "api_urls", multiple=True, metavar="URL",
              help="A joining member's public API URL (http(s)://host:port), once per joining member in order: "
                   "workers follow the committee there. rotate: OLD's by default; joining an open change: its own.")
@click.option("--json", "as_json", is_flag=True, help="Print the vote's result as JSON.")
def propose_member(kind, members, config_file, api, threshold, deadline_in, api_urls, as_json) -> None:
    """Vote, as this committee member, for a committee change: add, remove, replace or rotate
    members (docs/COMMITTEE.md).

    \b
    KIND MEMBERS...:
      add PUBKEY@HOST:PORT... --api-url URL...   new members (public key, PBFT endpoint, API)
      remove ACCOUNT...           members who leave
      replace OLD PUBKEY@HOST:PORT --api-url URL  a dead member by a new one (new key, machine)
      rotate OLD PUBKEY[@HOST:PORT] a member's new key (endpoint and API: OLD's by default)

    The change is decided once k members voted for the identical change: the first vote opens it,
    the same command run by the other members joins it (its deadline, endpoints and API URLs are
    taken). The committee then executes it on chain and switches at the next PBFT checkpoint; `pot
    aggregator epoch` shows where it stands."""
    import asyncio
    import json

    from pot.roles.aggregator_config import load_aggregator_config
    from pot.roles.epoch_admin import propose

    url = _api_url(config_file, api)
    account = load_aggregator_config(config_file).load_account()
    out = asyncio.run(propose(url, bytes(account.key), kind, list(members), threshold=threshold,
                              deadline_in=deadline_in, api_urls=list(api_urls)))
    res, change = out["result"], out["change"]
    if as_json:
        click.echo(json.dumps({"ok": res.ok, "reason": res.reason_enum.name, "text": res.text,
                               "voter": out["voter"], "joined": out["joined"]["digest"] if out["joined"] else None,
                               "change": change.as_json(), "joins": [j.as_json() for j in out["joins"]]}, indent=2))
    elif res.ok:
        click.echo(("joined the open change: " if out["joined"] else "") + res.text)
    if not res.ok:
        raise click.ClickException(f"the committee refused the vote ({res.reason_enum.name}): {res.text}")


@group.command()
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="A replica's TOML file (its API is asked); or give --api.")
@_EPOCH_API
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (GET /v1/epoch).")
def epoch(config_file, api, as_json) -> None:
    """The committee's epoch: its members (PBFT order, endpoints, keys) and k, and each committee
    change of the epoch with its votes, deadline and status (voting, decided, confirmed, void); once
    confirmed on chain, the committee it switches to and when."""
    import asyncio
    import json

    from pot.roles.epoch_admin import fetch_status, render_status

    st = asyncio.run(fetch_status(_api_url(config_file, api)))
    click.echo(json.dumps(st, indent=2) if as_json else render_status(st))
