"""``pot devnet up|status|restart|replace-aggregator|add-aggregator|down|config``: the whole network
on this machine, on loopback."""

from __future__ import annotations

import json
import time

import click

DEFAULT_DIR = ".pot/devnet"

_dir = click.option("--dir", "root", type=click.Path(file_okay=False), default=DEFAULT_DIR, show_default=True,
                    help="Directory of the devnet: state, configs, logs, ledgers, store.")


@click.group(help="Start, inspect and stop a whole local network (chain, committee, workers).")
def group() -> None:
    pass


@group.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Devnet TOML (see `pot devnet config`); missing keys take the defaults.")
@_dir
@click.option("--no-workers", is_flag=True, help="Start the chain and the committee only.")
def up(config_file, root, no_workers) -> None:
    """Start Anvil, deploy the contracts, fund and stake every participant, start the committee of
    aggregators and the workers (each a detached process logging to DIR/logs), wait until the
    network is ready, print its endpoints and return."""
    from pot.devnet import Devnet, DevnetError, load_devnet_config
    from pot.roles.config import ConfigError

    try:
        cfg = load_devnet_config(config_file)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    net = Devnet(root, cfg)
    t0 = time.monotonic()
    try:
        state = net.up(workers=False if no_workers else None,
                       progress=lambda msg: click.echo(f"[{time.monotonic() - t0:5.1f}s] {msg}", err=True))
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    _print_endpoints(net, state)


def _print_endpoints(net, state) -> None:
    click.echo(f"\ndevnet in {state['root']}  (ready in {state['ready_at'] - state['started_at']}s)")
    click.echo(f"  chain        {state['rpc_url']}  chain id {state['chain_id']}")
    click.echo(f"  deployment   {state['deployment']}")
    click.echo("  stores       each node its own; what orders reference goes through the committee")
    for p in state["processes"]:
        where = p.get("url", "")
        if p.get("pbft"):
            where += f"  pbft {p['pbft']}"
        click.echo(f"  {p['name']:<13} pid {p['pid']:<7} {p.get('address', '')[:12]:<12} {where}")
    click.echo(f"  logs         {net.logs}/<node>.log")
    if state.get("network_config"):
        click.echo(f"  join it      POT_CONFIG={state['network_config']}  (the chain and the committee's URLs, "
                   "nothing else)")
    if state.get("api_urls"):
        # every aggregator serves the explorer; the first is as good as any
        click.echo(f"  explorer     {state['api_urls'][0]}/   (API reference: {state['api_urls'][0]}/docs)")
    for name, path in state.get("clients", {}).items():
        key = next(a for n, a in json.loads((net.root / "accounts.json").read_text())["accounts"].items()
                   if n == name)["key"]
        running = any(p["name"] == name for p in state["processes"])
        click.echo(f"\nplace an order as {name} (order defaults in the [client] table of its config):\n"
                   f"  POT_PRIVATE_KEY={key} pot client place-order --config {path}")
        if running:
            click.echo(f"  ({name} runs: it releases the test data in its window and fetches the winner)\n"
                       f"  POT_PRIVATE_KEY={key} pot client fetch ORDER_ID --config {path}")
        else:
            click.echo(f"  POT_PRIVATE_KEY={key} pot client run --config {path}   # release, then fetch the winner")
    click.echo(f"\nthen: pot devnet status --dir {net.root}   |   pot devnet down --dir {net.root}")


@group.command()
@_dir
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(root, as_json) -> None:
    """Each process alive or dead, the chain's head block, each replica's view, sequence and
    ledger digest (GET /v1/info), every account's gas, POT and stake, the latest orders. Exits 1 naming what is dead: an exited process, a replica whose
    API does not answer, an unreachable chain."""
    from pot.devnet import Devnet, DevnetError

    net = Devnet(root)
    try:
        st = net.status()
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    problems = net.problems(st)
    if as_json:
        click.echo(json.dumps({**st, "problems": problems}, indent=2))
        if problems:
            raise SystemExit(1)
        return
    chain = st["chain"]
    click.echo(f"chain {chain['url']}: " + (f"block {chain['block']}" if "block" in chain else chain["error"]))
    if st.get("api_urls"):
        click.echo(f"explorer {st['api_urls'][0]}/")
    for p in st["processes"]:
        line = f"  {p['name']:<13} pid {p['pid']:<7} {'alive' if p['alive'] else 'DEAD ':<5}"
        if p.get("retired"):
            line += "  replaced (no committee member any more)"
        info = p.get("info")
        if info:
            if "error" in info:
                line += f"  api: {info['error'][:60]}"
            else:
                digest = info.get("ledgerDigest") or ""
                line += (f"  epoch {info.get('epoch')}  view {info.get('view')}  seq {info.get('lastExecuted')}  ledger seq "
                         f"{info.get('ledgerSeq')}  digest {digest[:14]}…")
        click.echo(line)
    _print_balances_and_orders(st)
    if problems:
        click.echo(f"not healthy: {'; '.join(problems)}", err=True)
        raise SystemExit(1)


def _print_balances_and_orders(st: dict) -> None:
    from pot.protocol.units import format_native, format_pot
    from pot.roles.events import short

    rows = [b for b in st.get("balances", []) if "error" not in b]
    if rows:
        click.echo("accounts")
        for b in rows:
            click.echo(f"  {b['name']:<13} {b['address'][:12]:<12} {format_native(b['native']):>16} "
                       f"{format_pot(b['pot']):>16}" + (f"  staked {format_pot(b['stake'])}" if b["stake"] else ""))
    orders = st.get("orders")
    if isinstance(orders, dict):
        click.echo(f"orders: {orders['error'][:80]}")
    elif orders is not None:
        click.echo("orders (newest first)" if orders else "orders: none yet")
        for o in orders:
            click.echo(f"  order {o['orderId']:<5} {format_pot(o['reward']):>12}  {o['phase'] or o['status']:<18}"
                       + (f"  won by {short(o['winner'])}" if o.get("winner") else ""))


@group.command()
@click.argument("node")
@_dir
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
def restart(node, root, timeout) -> None:
    """Restart one node (aggregator-N, miner-N, validator-N, verifier-N, client-N) with its config and
    log: its data stays, so a replica recovers from its own log and its peers."""
    from pot.devnet import Devnet, DevnetError

    try:
        entry = Devnet(root).restart(node, timeout=timeout, progress=lambda msg: click.echo(msg, err=True))
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{node} restarted: pid {entry['pid']}")


def _print_committee(status: dict) -> None:
    click.echo(f"epoch {status['epoch']}: {len(status['members'])} members, k = {status['threshold']}")
    for i, m in enumerate(status["members"]):
        click.echo(f"  {i}  {m['account']}  {m.get('endpoint') or ''}")


@group.command("replace-aggregator")
@click.argument("node")
@_dir
@click.option("--timeout", type=float, default=240.0, show_default=True,
              help="Seconds to wait for the committee to switch to the new epoch.")
def replace_aggregator(node, root, timeout) -> None:
    """Replace aggregator NODE (aggregator-N) by a new member: a fresh key (funded and staked), a new
    data directory and ports, started at once with join = true; every live member votes
    `propose-member replace`; once the new committee runs, NODE is killed for good. NODE may
    already be dead (a lost machine); replacing a live one rotates its key."""
    from pot.devnet import Devnet, DevnetError
    from pot.devnet.committee import change_committee

    try:
        status = change_committee(Devnet(root), remove=node, timeout=timeout,
                                  progress=lambda msg: click.echo(msg, err=True))
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    _print_committee(status)


@group.command("add-aggregator")
@click.option("--count", "-n", type=click.IntRange(1, 16), default=1, show_default=True,
              help="New members (growing 4 -> 7: --count 3).")
@click.option("--threshold", "-k", type=int, default=None,
              help="k of the grown committee (default 2f+1 of its size).")
@_dir
@click.option("--timeout", type=float, default=240.0, show_default=True,
              help="Seconds to wait for the committee to switch to the new epoch.")
def add_aggregator(count, threshold, root, timeout) -> None:
    """Grow the committee by COUNT new members in one change: fresh keys (funded and staked), their
    own data directories and ports, started with join = true; every live member votes
    `propose-member add`, and the command returns once the grown committee runs."""
    from pot.devnet import Devnet, DevnetError
    from pot.devnet.committee import change_committee

    try:
        status = change_committee(Devnet(root), add=count, threshold=threshold, timeout=timeout,
                                  progress=lambda msg: click.echo(msg, err=True))
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    _print_committee(status)


@group.command()
@_dir
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
def down(root, timeout) -> None:
    """Stop every process of the devnet: SIGTERM, then SIGKILL after --timeout."""
    from pot.devnet import Devnet, DevnetError

    try:
        outcome = Devnet(root).down(timeout=timeout)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    for name, how in outcome:
        click.echo(f"  {name:<13} {how}")


@group.command()
@click.argument("address")
@_dir
@click.option("--pot", "pot_amount", default="100 POT", show_default=True,
              help="POT to send (from the devnet's deployer, which holds the supply).")
@click.option("--eth", "eth_amount", default="10", show_default=True, help="ETH to send for gas.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def fund(address, root, pot_amount, eth_amount, as_json) -> None:
    """Send ETH (for gas) and POT to ADDRESS on this devnet's chain, from its deployer account: what a
    new key needs before `pot stake register`. Devnets only: the deployer's key is Anvil's public one."""
    from eth_utils import is_address, to_checksum_address

    from pot.devnet import Devnet, DevnetError
    from pot.protocol.units import format_native, format_pot, parse_amount

    if not is_address(address):
        raise click.BadParameter(f"not an address: {address}", param_hint="ADDRESS")
    try:
        pot_wei = parse_amount(pot_amount, "--pot", default_unit="POT")
        eth_wei = parse_amount(eth_amount.upper().removesuffix("ETH"), "--eth", default_unit="POT")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        got = Devnet(root).fund(to_checksum_address(address), pot_wei, eth_wei)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({k: str(v) if isinstance(v, int) else v for k, v in got.items()}, indent=2))
        return
    click.echo(f"sent {format_native(eth_wei)} and {format_pot(pot_wei)} to {got['address']}: it holds "
               f"{format_native(got['native'])} and {format_pot(got['pot'])} now")


@group.command("config")
def show_config() -> None:
    """Print the default devnet configuration (copy it, edit it, pass it to `up --config`)."""
    from pot.devnet import DEFAULT_CONFIG

    click.echo(DEFAULT_CONFIG.read_text(), nl=False)
