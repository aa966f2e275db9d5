"""What the operator commands (``pot wallet``, ``pot stake``, ``pot miner status``) share: whose
address, the chain and the committee a config names, amounts as people type them, the reports."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from pot.protocol import types as T
from pot.protocol.units import format_native, format_pot, parse_amount

ROLES = {name: bit for bit, name in T.ROLE_NAMES.items()}


class Amount(click.ParamType):
    """An amount of POT: ``12.5``, ``"12.5 POT"``, ``"100 POT"``; ``"5e18 wei"`` for token wei."""

    name = "amount"

    def convert(self, value: Any, param, ctx) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_amount(value, "amount", default_unit="POT")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


AMOUNT = Amount()


def role_bits(names: tuple[str, ...]) -> int:
    bits = 0
    for n in names:
        bits |= ROLES[n]
    return bits


def role_names(bits: int) -> list[str]:
    return [name for bit, name in sorted(T.ROLE_NAMES.items()) if bits & bit]


def account_address(address: str | None, cfg) -> str:
    """Whose account a read command shows: ``--address``, else the keystore's address (read from
    the file: a read needs no password), else the key in ``$POT_PRIVATE_KEY``."""
    from eth_utils import is_address, to_checksum_address

    from pot.chain.keys import KEY_ENV, KeyLoadError, list_keystores, parse_private_key, resolve_keystore

    if address:
        if not is_address(address):
            raise click.BadParameter(f"not an address: {address}", param_hint="--address")
        return to_checksum_address(address)
    if cfg.keystore:
        path = resolve_keystore(cfg.keystore)
        for _name, addr, p in list_keystores(path.parent):
            if p == path and addr:
                return to_checksum_address(addr)
        try:
            addr = json.loads(path.read_text()).get("address")
        except (OSError, ValueError, AttributeError):
            addr = None
        if not addr:
            raise KeyLoadError(f"keystore {path} does not exist or names no address: `pot wallet list` shows yours")
        return to_checksum_address("0x" + addr.removeprefix("0x"))
    if os.environ.get(KEY_ENV):
        return parse_private_key(os.environ[KEY_ENV], f"${KEY_ENV}").address
    raise KeyLoadError(f"whose account? pass --address, --keystore NAME (`pot wallet list`) or set ${KEY_ENV}")


def read_chain(cfg):
    """(web3, contracts) for reads: the RPC node and the deployment the config names."""
    from pot.chain.clients import Contracts
    from pot.chain.sender import connect
    from pot.roles.base import load_deployment

    w3 = connect(cfg.rpc_url)
    return w3, Contracts(w3, load_deployment(cfg, w3))


def committee(cfg):
    from pot.api.client import CommitteeClient

    return CommitteeClient(cfg.api_urls, f=cfg.f)


def echo_json(doc: Any) -> None:
    """JSON on stdout; big integers (token wei) as strings, so no reader rounds them."""
    def fix(v: Any) -> Any:
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, int) and abs(v) > 2**53:
            return str(v)
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        return v

    click.echo(json.dumps(fix(doc), indent=2))


def pot(wei: int) -> str:
    return format_pot(wei)


def native(wei: int) -> str:
    return format_native(wei)


# --- pot miner status ---------------------------------------------------------------------------

async def miner_report(cfg, address: str, limit: int) -> dict[str, Any]:
    """The miner's account (stake, earnings) and its orders, newest first, each with its outcome."""
    from pot.roles.outcome import final, miner_outcome

    api = committee(cfg)
    try:
        account = await api.account(address)
        page = await api.orders_page(miner=address, limit=limit)
        orders = []
        for o in page["orders"]:
            oid = int(o["order"]["orderId"])
            row: dict[str, Any] = {"orderId": oid, "phase": o.get("phase"), "status": o.get("status"),
                                   "reward": int(o["order"]["reward"]), "phaseEnd": o.get("phaseEnd")}
            oc = await api.outcome(oid) if o.get("status") not in ("open",) else None
            if final(oc):
                kind, data = miner_outcome(oc, address)[0]
                row.update({"outcome": kind.value, "paid": sum(int(p["amount"]) for p in oc["paid"]
                                                               if p["to"].lower() == address.lower()),
                            "txHash": oc.get("txHash"), "detail": {k: v for k, v in data.items() if k != "tx"}})
            orders.append(row)
        return {"address": address, "time": page.get("time"), "account": account, "orders": orders}
    finally:
        await api.aclose()


def render_miner_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from pot.roles.events import Event, Kind, describe, short

    out = Console(highlight=False, soft_wrap=True)
    acct = report["account"] or {}
    node = acct.get("node") or {}
    roles = ", ".join(node.get("roleNames", [])) or "none"
    out.print(f"[bold]{report['address']}[/]  roles {roles}, stake {pot(int(node.get('stake', 0)))}"
              + (f" ({pot(int(node['locked']))} locked)" if node.get("locked") else ""))
    out.print(f"earned {pot(int(acct.get('earned', 0)))}, pending {pot(int(acct.get('pending', 0)))}, "
              f"slashed {pot(int(acct.get('slashed', 0)))}")
    if not report["orders"]:
        out.print("no orders mined yet (`pot miner run` takes the best-paying order it can train)")
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for col in ("order", "reward", "phase", "outcome", "paid to you", "tx"):
        table.add_column(col, justify="right" if col in ("order", "reward", "paid to you") else "left")
    for o in report["orders"]:
        if "outcome" in o:
            ev = Event("miner", report["address"], Kind(o["outcome"]), None, 0, {**o["detail"], "tx": None})
            what = describe(ev) or o["outcome"]
            paid = pot(o["paid"])
        else:
            what, paid = "in progress", "-"
        table.add_row(str(o["orderId"]), pot(o["reward"]), o["status"] if o["status"] != "open" else o["phase"],
                      what, paid, short(o.get("txHash")) if o.get("txHash") else "-")
    out.print(table)
