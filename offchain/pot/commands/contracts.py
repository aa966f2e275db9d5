"""``pot contracts compile|export|deploy``: regenerate the ABI artifacts; export them for dApps (an
npm package folder); deploy to Anvil or any EVM chain.

BSC testnet (chain id 97)::

    export POT_PRIVATE_KEY=0x...          # or --keystore FILE with $POT_KEYSTORE_PASSWORD
    pot contracts deploy --rpc-url https://data-seed-prebsc-1-s1.bnbchain.org:8545 \\
        --member 0xA.. --member 0xB.. --member 0xC.. --member 0xD.. --threshold 3 \\
        --treasury 0xT.. --out deployments.json
"""

from __future__ import annotations

from pathlib import Path

import click

from pot.commands.common import WALLET


@click.group()
def group() -> None:
    """Compile, export and deploy the PoT contracts."""


@group.command("compile")
@click.option("--force", is_flag=True, help="Recompile even when the artifacts are up to date.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing unless it fails.")
def compile_cmd(force: bool, quiet: bool) -> None:
    """Compile contracts/ into pot/chain/artifacts/<Name>.json (abi, bytecode) for dApps."""
    from pot.chain.compile import CompileError, compile_contracts

    try:
        res = compile_contracts(force=force)
    except (CompileError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if not quiet:
        state = "compiled" if res.compiled else "up to date"
        click.echo(f"{state}: {', '.join(res.contracts)} -> {res.out_dir}")


@group.command("export")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write (an npm package: abi/, src/, dist/, deployments.json, package.json).")
@click.option("--deployment", "deployments", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Deployment file of `pot contracts deploy` (repeat); its addresses go in, "
                                   "by chain id.")
@click.option("--name", default="@pot-network/contracts", show_default=True, help="npm package name.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing unless it fails.")
def export_cmd(out: Path, deployments: tuple[Path, ...], name: str, quiet: bool) -> None:
    """Write the ABIs with NatSpec, the deployment addresses per chain id and TypeScript/JavaScript
    modules (`as const` ABIs, declarations) to --out, as an npm package viem and ethers projects install."""
    from pot.chain.export import ExportError, export

    try:
        res = export(out, deployments, name=name)
    except (ExportError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if not quiet:
        chains = ", ".join(map(str, res.chains)) or "none"
        click.echo(f"exported {len(res.written)} files to {out} (deployments on chains: {chains})")
        for rel in res.removed:
            click.echo(f"  removed stale {rel}")


@group.command("deploy")
@click.option("--rpc-url", "url", default=None, metavar="URL", envvar="POT_RPC_URL",
              help="JSON-RPC URL of the chain ($POT_RPC_URL; default: start a local Anvil, deploy, print, "
                   "stop it).")
@click.option("--rpc", "rpc_alias", default=None, hidden=True)  # its name before --rpc-url
@WALLET[0]
@WALLET[1]
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("deployments.json"), show_default=True, help="Deployment file to write/update.")
@click.option("--member", "members", multiple=True, metavar="ADDRESS",
              help="Committee member (repeat). Default on Anvil: dev accounts 1-4.")
@click.option("--threshold", type=int, default=None, help="k (default: 2f+1 for n=3f+1, a majority otherwise).")
@click.option("--treasury", default=None, metavar="ADDRESS", help="Treasury (default: the deployer).")
@click.option("--unbonding-period", type=int, default=14 * 86_400, show_default=True,
              help="Seconds between requestUnregister and withdraw; must exceed max order lifetime + grace.")
@click.option("--min-reveal-duration", type=int, default=600, show_default=True,
              help="Floor of an order's revealDuration, seconds.")
@click.option("--settlement-grace", type=int, default=2 * 86_400, show_default=True,
              help="Seconds after an order's last window before its client may reclaim an unsettled order.")
@click.option("--max-order-lifetime", type=int, default=10 * 86_400, show_default=True,
              help="Bound on train + validate + challenge + 4 x reveal durations of one order, seconds.")
def deploy_cmd(url, rpc_alias, keystore, password_file, out, members, threshold, treasury, unbonding_period, min_reveal_duration,
               settlement_grace, max_order_lifetime) -> None:
    """Deploy PoTToken, StakeRegistry, OrderBook, ChallengeManager and RewardMultisig."""
    from eth_account import Account
    from eth_utils import is_address

    from pot.chain.anvil import DEV_KEYS, Anvil
    from pot.chain.deployment import DeployParams, deploy
    from pot.chain.keys import KeyLoadError, load_account
    from pot.chain.sender import Sender, connect
    from pot.protocol.committee import default_threshold

    for m in members + ((treasury,) if treasury else ()):
        if not is_address(m):
            raise click.BadParameter(f"not an address: {m}")
    url = url or rpc_alias
    node = None
    try:
        if url is None:
            node = Anvil().start()
            url = node.url
        try:
            account = load_account(keystore, password_file=password_file, allow_dev_key=node is not None)
        except KeyLoadError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            w3 = connect(url)
        except ConnectionError as exc:
            raise click.ClickException(str(exc)) from None
        if not members:
            if node is None:
                raise click.UsageError("give the committee with --member ADDRESS (repeat)")
            members = tuple(Account.from_key(k).address for k in DEV_KEYS[1:5])
        n = len(members)
        k = threshold if threshold is not None else default_threshold(n)
        params = DeployParams(members=tuple(members), threshold=k, treasury=treasury or account.address,
                              unbonding_period=unbonding_period, min_reveal_duration=min_reveal_duration,
                              settlement_grace=settlement_grace, max_order_lifetime=max_order_lifetime)
        try:
            params.check()
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        d = deploy(w3, Sender(w3, account), params)
        d.save(out)
        click.echo(f"chain {d.chain_id}, block {d.block}, committee {n} (k={k})")
        for name, addr in d.addresses.items():
            click.echo(f"  {name:17} {addr}")
        click.echo(f"wrote {out}" + (" (the Anvil it used is stopped now)" if node else ""))
    finally:
        if node is not None:
            node.stop()
