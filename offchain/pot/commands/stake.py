"""``pot stake register|add|unbond|withdraw|status``: an account's stake in StakeRegistry.

Amounts are POT (``12.5``, ``"12.5 POT"``). ``register`` approves the registry for the amount
and registers the roles in one go; the committee's ledger learns the stake once f+1 replicas
attested the chain event (``status`` shows both views).
"""

from __future__ import annotations

import time

import click

from pot.commands.accounts import AMOUNT, ROLES, account_address, committee, echo_json, pot, read_chain, role_bits, role_names
from pot.commands.common import API, CONFIG, DEPLOYMENT, JSON, WALLET, chain_options, load, rpc_options
from pot.roles.config import WorkerConfig


@click.group(help="Register a role, add stake, unbond and withdraw (StakeRegistry).")
def group() -> None:
    pass


def _signer(config_file, options):
    """(config, ChainAccess) of the key that signs."""
    from pot.roles.base import ChainAccess

    cfg = load(WorkerConfig, config_file, **options)
    return cfg, ChainAccess.for_config(cfg, cfg.load_account())


def _done(as_json: bool, doc: dict, line: str) -> None:
    if as_json:
        echo_json(doc)
    else:
        click.echo(line)


@group.command()
@chain_options
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(sorted(ROLES)),
              help="Role to register (repeat for several: one account may hold many).")
@click.option("--amount", type=AMOUNT, default=None,
              help="Stake to add, in POT (default: what the roles' minimum needs beyond the stake there).")
@JSON
def register(config_file, roles, amount, as_json, **options) -> None:
    """Register ROLEs for the key's account, staking AMOUNT (approve + register)."""
    cfg, chain = _signer(config_file, options)
    c, me = chain.contracts, chain.sender.address
    info = c.stakes.staker(me)
    bits = role_bits(roles)
    need = max(c.stakes.required_stake(info["roles"] | bits) - info["stake"], 0)
    amount = need if amount is None else amount
    if amount < need:
        raise click.UsageError(f"{', '.join(roles)} need {pot(need)} more stake; --amount {pot(amount)} is short")
    held = c.token.balance_of(me)
    if held < amount:
        raise click.ClickException(f"{me} holds {pot(held)}, registering needs {pot(amount)}: get POT first "
                                   f"(on a devnet: `pot devnet fund {me}`)")
    if amount:
        c.token.ensure_allowance(chain.sender, c.stakes.address, amount)
    res = c.stakes.register(chain.sender, bits, amount)
    after = c.stakes.staker(me)
    _done(as_json, {"address": me, "roles": role_names(after["roles"]), "stake": after["stake"], "added": amount,
                    "txHash": res.tx_hash},
          f"registered {me} as {', '.join(role_names(after['roles']))} with {pot(after['stake'])} stake "
          f"(+{pot(amount)}) in tx {res.tx_hash}")


@group.command()
@chain_options
@click.argument("amount", type=AMOUNT)
@JSON
def add(config_file, amount, as_json, **options) -> None:
    """Add AMOUNT POT to the key's stake (approve + addStake)."""
    cfg, chain = _signer(config_file, options)
    c, me = chain.contracts, chain.sender.address
    if amount <= 0:
        raise click.BadParameter("must be more than 0", param_hint="AMOUNT")
    c.token.ensure_allowance(chain.sender, c.stakes.address, amount)
    res = c.stakes.add_stake(chain.sender, amount)
    after = c.stakes.staker(me)
    _done(as_json, {"address": me, "stake": after["stake"], "added": amount, "txHash": res.tx_hash},
          f"{me} now stakes {pot(after['stake'])} (+{pot(amount)}) in tx {res.tx_hash}")


@group.command()
@chain_options
@JSON
def unbond(config_file, as_json, **options) -> None:
    """Ask to leave (requestUnregister): the stake can be withdrawn once the unbonding period is over,
    long enough for the settlements of every order it took part in to still slash it."""
    cfg, chain = _signer(config_file, options)
    c, me = chain.contracts, chain.sender.address
    res = c.stakes.request_unregister(chain.sender)
    end = c.stakes.staker(me)["unbonding_end"]
    _done(as_json, {"address": me, "unbondingEnd": end, "txHash": res.tx_hash},
          f"{me} is unbonding until {_when(end)}; then `pot stake withdraw` (tx {res.tx_hash})")


@group.command()
@chain_options
@JSON
def withdraw(config_file, as_json, **options) -> None:
    """Withdraw the whole stake after the unbonding period (and with nothing locked)."""
    cfg, chain = _signer(config_file, options)
    c, me = chain.contracts, chain.sender.address
    stake = c.stakes.staker(me)["stake"]
    res = c.stakes.withdraw(chain.sender)
    _done(as_json, {"address": me, "withdrawn": stake, "txHash": res.tx_hash},
          f"withdrew {pot(stake)} to {me} in tx {res.tx_hash}")


@group.command()
@click.argument("address", required=False)
@CONFIG
@rpc_options
@DEPLOYMENT
@WALLET[0]
@API
@JSON
def status(address, config_file, keystore, as_json, **options) -> None:
    """ADDRESS's stake (default: the key's): on-chain (stake, locked, roles, unbonding) and as the
    committee's ledger knows it, with the minimum stake of each role."""
    import asyncio

    cfg = load(WorkerConfig, config_file, keystore=keystore, **options)
    who = account_address(address, cfg)
    w3, c = read_chain(cfg)
    st = c.stakes.staker(who)
    minimum = {name: c.stakes.call("minStake", bit) for name, bit in ROLES.items()}
    ledger = asyncio.run(_ledger_node(cfg, who))
    now = w3.eth.get_block("latest")["timestamp"]
    doc = {"address": who, "stake": st["stake"], "locked": st["locked"], "roles": role_names(st["roles"]),
           "unbondingEnd": st["unbonding_end"] or None,
           "withdrawable": bool(st["unbonding_end"]) and now >= st["unbonding_end"] and not st["locked"],
           "minStake": minimum, "ledger": ledger}
    if as_json:
        echo_json(doc)
        return
    click.echo(f"{who}: {pot(st['stake'])} staked as {', '.join(doc['roles']) or 'nothing'}"
               + (f", {pot(st['locked'])} locked" if st["locked"] else ""))
    if st["unbonding_end"]:
        click.echo("  unbonding: " + ("withdraw now (`pot stake withdraw`)" if doc["withdrawable"]
                                      else f"until {_when(st['unbonding_end'])}"))
    if isinstance(ledger, dict):
        click.echo(f"  the committee's ledger: {pot(int(ledger['stake']))} as {', '.join(role_names(ledger['roles']))}")
    else:
        click.echo(f"  the committee's ledger: {ledger}")
    click.echo("  minimum stake: " + ", ".join(f"{n} {pot(v)}" for n, v in minimum.items()))


async def _ledger_node(cfg, who: str):
    """What the ledger knows of the account (f+1 replicas alike), or why it cannot say."""
    from pot.api.client import ApiError, NoQuorum

    api = committee(cfg)
    try:
        node = await api.node(who)
        return node if node is not None else "no stake known yet (it learns a stake a few blocks after it lands)"
    except (ApiError, NoQuorum) as exc:
        return f"not reachable ({exc})"
    finally:
        await api.aclose()


def _when(ts: int) -> str:
    import datetime as dt

    left = ts - int(time.time())
    stamp = dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return stamp + (f" (in {left // 3600} h {left % 3600 // 60} min)" if left > 0 else "")
