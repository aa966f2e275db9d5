"""``pot wallet new|import|list|balance``: keys in encrypted keystores, and what an account holds.

Keystores are eth-account's (scrypt) JSON files, the format geth, ``cast wallet`` and MetaMask
write, kept in ``~/.pot/keystores`` (``$POT_KEYSTORE_DIR``, ``--dir``) under a name, so every other
command takes ``--keystore NAME``. A private key is printed only when asked for with
``--show-private-key``.
"""

from __future__ import annotations

import os
import sys

import click

from pot.commands.accounts import account_address, echo_json, native, pot, read_chain, role_names
from pot.commands.common import CONFIG, DEPLOYMENT, JSON, WALLET, load, rpc_options

_DIR = click.option("--dir", "directory", default=None, metavar="DIR",
                    help="Keystore directory (default: $POT_KEYSTORE_DIR or ~/.pot/keystores).")


@click.group(help="Create, import and list keys (encrypted keystores); show balances.")
def group() -> None:
    pass


def _new_password(password_file: str | None) -> str:
    """The password of a new keystore: the file, $POT_KEYSTORE_PASSWORD, or asked twice."""
    from pot.chain.keys import PASSWORD_ENV, KeyLoadError

    if password_file:
        try:
            return open(os.path.expanduser(password_file)).read().rstrip("\r\n")
        except OSError as exc:
            raise KeyLoadError(f"cannot read the password file {password_file}: {exc.strerror}") from None
    if os.environ.get(PASSWORD_ENV) is not None:
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise KeyLoadError(f"a new keystore needs a password: set ${PASSWORD_ENV}, pass --password-file FILE, "
                           "or run in a terminal to be asked")
    password = click.prompt("password for the new keystore", hide_input=True, confirmation_prompt=True,
                            err=True)
    if not password:
        raise click.UsageError("an empty password protects nothing")
    return password


def _save(account, name: str, directory: str | None, password_file: str | None, show_key: bool,
          as_json: bool, verb: str) -> None:
    from pot.chain.keys import keystore_dir, write_keystore

    if not name or "/" in name or name.startswith("."):
        raise click.BadParameter("a keystore name is a plain file name, e.g. miner", param_hint="NAME")
    path = keystore_dir(directory) / f"{name}.json"
    write_keystore(account, path, _new_password(password_file))
    from pot.pbft.crypto import public_key

    # a committee member's PBFT key is its chain key: `pot aggregator propose-member` takes this
    doc = {"name": name, "address": account.address, "publicKey": "0x" + public_key(bytes(account.key)).hex(),
           "keystore": str(path)}
    if show_key:
        doc["privateKey"] = "0x" + bytes(account.key).hex()
    if as_json:
        echo_json(doc)
        return
    click.echo(f"{verb} {name}: {account.address}")
    click.echo(f"  public key {doc['publicKey']} (what a committee names when it adds this account)")
    click.echo(f"  keystore {path} (encrypted; use it with --keystore {name})")
    if show_key:
        click.echo(f"  private key {doc['privateKey']}  (anyone who sees it owns the account)")


@group.command()
@click.argument("name")
@_DIR
@WALLET[1]
@click.option("--show-private-key", is_flag=True, help="Also print the private key (keep it secret).")
@JSON
def new(name, directory, password_file, show_private_key, as_json) -> None:
    """Create a key and keep it encrypted as keystore NAME (password from --password-file,
    $POT_KEYSTORE_PASSWORD, or asked twice); print its address."""
    from eth_account import Account

    _save(Account.create(), name, directory, password_file, show_private_key, as_json, "created")


@group.command("import")
@click.argument("name")
@_DIR
@WALLET[1]
@JSON
def import_(name, directory, password_file, as_json) -> None:
    """Import an existing private key as keystore NAME: the key comes from $POT_PRIVATE_KEY, else
    from a hidden prompt (or the first line of stdin when it is not a terminal); never from an
    argument, which shell histories keep."""
    from pot.chain.keys import KEY_ENV, parse_private_key

    key = os.environ.get(KEY_ENV)
    where = f"${KEY_ENV}"
    if not key:
        where = "the private key"
        key = (click.prompt("private key (hex)", hide_input=True, err=True) if sys.stdin.isatty()
               else sys.stdin.readline())
    _save(parse_private_key(key, where), name, directory, password_file, False, as_json, "imported")


@group.command("list")
@_DIR
@JSON
def list_(directory, as_json) -> None:
    """Every keystore in the keystore directory: name, address, file (nothing is decrypted)."""
    from pot.chain.keys import keystore_dir, list_keystores

    rows = list_keystores(directory)
    if as_json:
        echo_json([{"name": n, "address": a, "keystore": str(p)} for n, a, p in rows])
        return
    if not rows:
        click.echo(f"no keystores in {keystore_dir(directory)}: create one with `pot wallet new NAME`")
        return
    width = max(len(n) for n, _, _ in rows)
    for n, a, p in rows:
        click.echo(f"{n:<{width}}  {a or '(not a keystore)'}  {p}")


@group.command()
@click.argument("address", required=False)
@CONFIG
@rpc_options
@DEPLOYMENT
@WALLET[0]
@JSON
def balance(address, config_file, keystore, as_json, **options) -> None:
    """What ADDRESS (default: the key's) holds on-chain: the chain's coin for gas, POT, and stake
    (locked part, roles, unbonding)."""
    from pot.roles.config import WorkerConfig

    cfg = load(WorkerConfig, config_file, keystore=keystore, **options)
    who = account_address(address, cfg)
    w3, c = read_chain(cfg)
    st = c.stakes.staker(who)
    doc = {"address": who, "chainId": w3.eth.chain_id, "native": w3.eth.get_balance(who),
           "pot": c.token.balance_of(who), "stake": st["stake"], "locked": st["locked"],
           "roles": role_names(st["roles"]), "unbondingEnd": st["unbonding_end"] or None}
    if as_json:
        echo_json(doc)
        return
    click.echo(f"{who} on chain {doc['chainId']}")
    click.echo(f"  gas      {native(doc['native'])}")
    click.echo(f"  POT      {pot(doc['pot'])}")
    staked = f"  staked   {pot(doc['stake'])}"
    if doc["roles"]:
        staked += f" as {', '.join(doc['roles'])}"
    if doc["locked"]:
        staked += f" ({pot(doc['locked'])} locked by open orders)"
    if doc["unbondingEnd"]:
        staked += f"; unbonding until {_when(doc['unbondingEnd'])}"
    click.echo(staked)


def _when(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
