"""Committee changes on a running devnet (docs/COMMITTEE.md): ``pot devnet replace-aggregator``
and ``pot devnet add-aggregator``.

Both do what operators do on a real network, with the devnet's keys:

1. a fresh key per new member (a random account, never a dev-mnemonic one), funded with gas and
   POT and staked as an aggregator like the others;
2. its own data directory and ports, and a config whose ``[committee]`` is the committee the
   change leads to (the members who stay, in order, then the new ones) with ``join = true``: it
   starts at once and joins by state transfer once the change took effect;
3. every live member votes for the change through its own replica's API
   (``pot aggregator propose-member``); k votes decide it, the committee executes it on chain,
   attests the chain's ``EpochChanged`` and switches at the next PBFT checkpoint;
4. it waits until the new members and the members who stay run the new epoch; a replaced member
   is then killed for good (it may already be dead: that is what a replacement is for).

The workers and clients are left alone: the change carries each new member's API URL, and they
follow the committee to it by themselves (``CommitteeClient``, docs/COMMITTEE.md). Only
``network.toml``, what a newcomer's commands start from, is pointed at the new committee.

Replacing a live member is a key rotation: the same role under a new key (on a devnet also a
new data directory and ports, since the old process keeps its own until the switch).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import tomllib
from pathlib import Path
from typing import Any

from pot.devnet.network import (DEPLOYER, Devnet, DevnetError, Progress, _alive, _http_json, _pot_cmd, _reap,
                                _signal, _spawn, _tail, _toml, dev_account)

#: gas money and tokens each new member receives from the deployer
_NATIVE = 10 * 10**18


def _live_aggregators(st: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in st.get("processes", []) if e.get("role") == "aggregator" and not e.get("retired")
            and _alive(e)]


def _status(urls: list[str]) -> dict[str, Any]:
    from pot.roles.epoch_admin import fetch_status

    last: Exception | None = None
    for url in urls:
        try:
            return asyncio.run(fetch_status(url))
        except Exception as exc:  # noqa: BLE001 - ask the next replica
            last = exc
    raise DevnetError(f"no aggregator answered /v1/epoch: {last}")


def _new_member(net: Devnet, name: str, say: Progress) -> tuple[Any, Path]:
    """A fresh account for ``name``: funded, staked as an aggregator, with a keystore."""
    from eth_account import Account

    from pot.chain.clients import Contracts
    from pot.chain.deployment import Deployment
    from pot.chain.sender import Sender
    from pot.devnet.network import ROLE_BITS

    acct = Account.create()
    w3 = net._w3()
    c = Contracts(w3, Deployment.load(net.deployment_file, net.state["chain_id"]))
    deployer = Sender(w3, dev_account(DEPLOYER))
    bits = ROLE_BITS["aggregator"]
    amount = c.stakes.required_stake(bits)
    deployer.send(acct.address, b"", value=_NATIVE, gas=21_000)
    c.token.transfer(deployer, acct.address, amount)
    Sender(w3, acct).send_batch([
        (c.token.address, c.token.encode("approve", c.stakes.address, amount), 200_000),
        (c.stakes.address, c.stakes.encode("register", bits, amount), 400_000)])
    d = net.root / "aggregators" / name.replace("aggregator-", "agg")
    if d.exists():
        raise DevnetError(f"{d} exists: a new member starts with an empty data directory")
    d.mkdir(parents=True)
    keystore = d / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(acct.key, "devnet", kdf="scrypt", iterations=2**10)))
    keystore.chmod(0o600)
    (d / "password").write_text("devnet")
    (d / "password").chmod(0o600)
    net.state.setdefault("accounts", {})[name] = {"address": acct.address, "role": "aggregator", "index": None}
    net._save()
    say(f"{name}: new key {acct.address}, funded and staked")
    return acct, d


def _next_names(st: dict[str, Any], count: int) -> list[str]:
    used = [int(e["name"].rsplit("-", 1)[1]) for e in st.get("processes", []) if e.get("role") == "aggregator"]
    top = max(used, default=-1)
    return [f"aggregator-{top + 1 + k}" for k in range(count)]


def _write_config(net: Devnet, template: str, d: Path, replica_id: int, committee: dict[str, list],
                  api_port: int) -> Path:
    doc = tomllib.loads(Path(template).read_text())
    tables = {k: doc.pop(k) for k in list(doc) if isinstance(doc[k], dict)}
    tables["committee"] = committee
    top = {**doc, "replica_id": replica_id, "data_dir": str(d), "keystore": str(d / "key.json"),
           "password_file": str(d / "password"), "api_port": api_port, "join": True}
    top.pop("store", None)  # its own store under data_dir, as on another machine
    path = d / "aggregator.toml"
    path.write_text(f"# a member that joins epoch {committee.get('epoch', '?')} by state transfer\n"
                    + _toml(top, {k: v for k, v in tables.items()}))
    return path


def change_committee(net: Devnet, *, remove: str | None = None, add: int = 0, threshold: int | None = None,
                     timeout: float = 240.0, progress: Progress | None = None) -> dict[str, Any]:
    """Replace ``remove`` (an aggregator's node name) by a new member, or add ``add`` new
    members; returns the new committee's status (``GET /v1/epoch``)."""
    from pot.ports import free_ports
    from pot.roles.aggregator_config import load_aggregator_config
    from pot.roles.epoch_admin import propose

    say = progress or (lambda _msg: None)
    st = net.load()
    live = _live_aggregators(st)
    if not live:
        raise DevnetError(f"no aggregator of the devnet in {net.root} is running")
    status = _status([e["url"] for e in live])
    members = [m["account"] for m in status["members"]]
    by_name = {e["name"]: e for e in st["processes"] if e.get("role") == "aggregator"}
    old = None
    if remove is not None:
        old = by_name.get(remove)
        if old is None or old.get("retired"):
            raise DevnetError(f"no aggregator {remove!r} in the committee (aggregators: "
                              f"{', '.join(n for n, e in by_name.items() if not e.get('retired'))})")
        if old["address"] not in members:
            raise DevnetError(f"{remove} ({old['address']}) is not a member of epoch {status['epoch']}")
        add = 1
    if add < 1:
        raise DevnetError("nothing to change: name the aggregator to replace, or how many to add")
    names = _next_names(st, add)
    new = [_new_member(net, name, say) for name in names]
    stay = [m for m in status["members"] if old is None or m["account"] != old["address"]]
    host = net.config.host
    chosen = free_ports(2 * len(new), host)
    ports = list(zip(chosen[::2], chosen[1::2]))
    urls = {e["address"]: e["url"] for e in st["processes"] if e.get("role") == "aggregator"}
    committee = {
        "pbft": [m["endpoint"] for m in stay] + [f"{host}:{p}" for p, _ in ports],
        "public_keys": [m["publicKey"].removeprefix("0x") for m in stay]
        + [_pk(a).hex() for a, _ in new],
        "api_urls": [urls.get(m["account"], "") for m in stay] + [f"http://{host}:{a}" for _, a in ports],
    }
    joining = [f"{_pk(a).hex()}@{host}:{p}" for (a, _), (p, _) in zip(new, ports)]
    for k, ((acct, d), (pbft_port, api_port), name) in enumerate(zip(new, ports, names)):
        path = _write_config(net, live[0]["config"], d, len(stay) + k, committee, api_port)
        url = f"http://{host}:{api_port}"
        net._record(_spawn(name, _pot_cmd("aggregator", "run", "--config", str(path)), net.logs / f"{name}.log",
                           cwd=net.root),
                    role="aggregator", address=acct.address, url=url, config=str(path), pbft=f"{host}:{pbft_port}")
        say(f"{name}: started, joining (API {url})")
    kind, args = ("replace", [old["address"], joining[0]]) if old is not None else ("add", joining)
    new_urls = [f"http://{host}:{a}" for _, a in ports]
    votes = 0
    for e in [e for e in live if e["address"] in members]:
        key = bytes(load_aggregator_config(e["config"]).load_account().key)
        res = asyncio.run(propose(e["url"], key, kind, args, threshold=threshold, api_urls=new_urls))["result"]
        say(f"{e['name']}: votes {kind} -> {res.reason_enum.name} {res.text}")
        votes += res.ok
        if votes >= status["threshold"]:
            break  # decided: a further vote is refused
    if votes < status["threshold"]:
        raise DevnetError(f"only {votes} of the {status['threshold']} votes the change needs were accepted; "
                          f"the new members run on and join if enough members vote later")
    target = status["epoch"] + 1
    want = [e for e in net.load()["processes"] if e.get("role") == "aggregator" and not e.get("retired")
            and (e["name"] in names or (e["address"] in members and (old is None or e["name"] != old["name"])
                                        and _alive(e)))]
    deadline = time.monotonic() + timeout
    while True:
        behind = []
        for e in want:
            try:
                info = _http_json(e["url"] + "/v1/info", timeout=2.0)
            except Exception:  # noqa: BLE001 - starting, or busy
                info = {}
            if info.get("epoch") != target or info.get("mode") != "pbft":
                behind.append(f"{e['name']} ({info.get('mode', 'down')}, epoch {info.get('epoch')})")
            if e["name"] in names and not _alive(e):
                raise DevnetError(f"{e['name']} exited; see {e['log']}:\n{_tail(e['log'])}")
        if not behind:
            break
        if time.monotonic() > deadline:
            raise DevnetError(f"epoch {target} not reached within {timeout:g}s: {', '.join(behind)}; see {net.logs}")
        time.sleep(1.0)
    say(f"epoch {target}: every member runs it")
    if old is not None:
        if _alive(old):
            _signal(old, signal.SIGKILL)
            _reap(old["pid"])
        say(f"{old['name']}: killed for good (its key is no member any more)")
    st = net.load()
    for e in st["processes"]:
        if old is not None and e["name"] == old["name"]:
            e["retired"] = True
    st["api_urls"] = [e["url"] for e in st["processes"] if e.get("role") == "aggregator" and not e.get("retired")]
    net.state = st
    net._save()
    _point_network_config(net, say)
    return _status([e["url"] for e in want])


def _point_network_config(net: Devnet, say: Progress) -> None:
    """``network.toml`` names the committee's APIs a newcomer's commands start from: the new
    committee's. Running workers and clients are not touched: they follow on their own."""
    path = net.state.get("network_config")
    if not path:
        return
    doc = tomllib.loads(Path(path).read_text())
    tables = {k: doc.pop(k) for k in list(doc) if isinstance(doc[k], dict)}
    doc["api_urls"] = net.state["api_urls"]
    head = "".join(line + "\n" for line in Path(path).read_text().splitlines() if line.startswith("#"))
    Path(path).write_text(head + _toml(doc, tables))
    say(f"{path} now names the {len(doc['api_urls'])} members' APIs; workers follow the committee themselves")


def _pk(acct) -> bytes:
    from pot.pbft.crypto import public_key

    return public_key(bytes(acct.key))
