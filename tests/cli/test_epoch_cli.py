"""``pot aggregator propose-member`` and ``pot aggregator epoch`` against a real API socket over a
ledger: members' votes join one change until it is decided, the status shows it, and expected
errors are one line."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
import uvicorn
from click.testing import CliRunner

from pot.api import LocalNode, create_app, schemas
from pot.cli import main
from pot.ledger import Ledger, LedgerConfig
from pot.pbft.crypto import public_key
from pot.ports import free_port
from pot.protocol import types as T
from pot.protocol.eip712 import address_of_key

KEYS = [hashlib.sha256(f"epoch-cli-{i}".encode()).digest() for i in range(4)]
PUBS = [public_key(k) for k in KEYS]
EPS = [f"127.0.0.1:{7000 + i}" for i in range(4)]
NEW = hashlib.sha256(b"epoch-cli-new").digest()
NOW = 10_000


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    config = LedgerConfig(31337, "0x" + "0b" * 20, "0x" + "ad" * 20, tuple(address_of_key(k) for k in KEYS),
                          member_keys=tuple(PUBS), member_endpoints=tuple(EPS))
    ledger = Ledger(config)
    assert ledger.apply(T.Tick(), NOW).ok
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(LocalNode(ledger, lambda: NOW)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    tmp = tmp_path_factory.mktemp("epoch-cli")
    for i in range(4):
        (tmp / f"agg{i}.toml").write_text(
            f'replica_id = {i}\ndata_dir = "{tmp}/agg{i}"\napi_port = {port}\n[committee]\n'
            f"pbft = {json.dumps(EPS)}\npublic_keys = {json.dumps([p.hex() for p in PUBS])}\n")
    yield tmp, ledger
    server.should_exit = True
    thread.join(timeout=10)


def pot(args, key: bytes | None = None):
    env = {"POT_PRIVATE_KEY": "0x" + key.hex()} if key is not None else {}
    return CliRunner().invoke(main, args, env=env, prog_name="pot")


def test_members_vote_one_change_until_decided_and_the_status_shows_it(api):
    tmp, ledger = api
    old, new = address_of_key(KEYS[3]), "0x" + public_key(NEW).hex()
    # a joining member without its public API URL: workers could not follow the committee to it
    no_url = pot(["aggregator", "propose-member", "replace", old, f"{new}@10.0.0.5:7005", "--config",
                  str(tmp / "agg0.toml")], KEYS[0])
    assert no_url.exit_code == 1 and "--api-url" in no_url.output and "Traceback" not in no_url.output
    bad_url = pot(["aggregator", "propose-member", "replace", old, f"{new}@10.0.0.5:7005", "--api-url",
                   "ftp://10.0.0.5", "--config", str(tmp / "agg0.toml")], KEYS[0])
    assert bad_url.exit_code == 1 and "http(s)://" in bad_url.output and "Traceback" not in bad_url.output
    first = pot(["aggregator", "propose-member", "replace", old, f"{new}@10.0.0.5:7005", "--api-url",
                 "http://10.0.0.5:8005/", "--config", str(tmp / "agg0.toml")], KEYS[0])
    assert first.exit_code == 0 and "vote 1/3" in first.output, first.output
    # the second member gives no endpoint and no deadline: it joins the open change as it stands
    second = pot(["aggregator", "propose-member", "replace", old, new, "--config", str(tmp / "agg1.toml"),
                  "--deadline-in", "900"], KEYS[1])
    assert second.exit_code == 0 and "joined the open change: vote 2/3" in second.output, second.output
    # a key that is not a member: one line, no traceback
    outsider = pot(["aggregator", "propose-member", "replace", old, new, "--config", str(tmp / "agg2.toml")], NEW)
    assert outsider.exit_code == 1 and "not a member of epoch 1" in outsider.output
    assert "Traceback" not in outsider.output and len(outsider.output.strip().splitlines()) == 1
    bad = pot(["aggregator", "propose-member", "add", "0x1234@h:1", "--config", str(tmp / "agg2.toml")], KEYS[2])
    assert bad.exit_code == 1 and "compressed public key" in bad.output and "Traceback" not in bad.output
    third = pot(["aggregator", "propose-member", "replace", old, new, "--config", str(tmp / "agg2.toml"), "--json"],
                KEYS[2])
    out = json.loads(third.output)
    assert out["ok"] and "decided" in out["text"] and out["joined"]

    table = pot(["aggregator", "epoch", "--config", str(tmp / "agg0.toml")])
    assert table.exit_code == 0, table.output
    assert "SETTLING PAUSED" in table.output and "DECIDED" in table.output and "votes 3/3" in table.output
    assert f"+ {address_of_key(NEW)} at 10.0.0.5:7005, API http://10.0.0.5:8005" in table.output
    assert f"- {old}" in table.output
    st = json.loads(pot(["aggregator", "epoch", "--config", str(tmp / "agg0.toml"), "--json"]).output)
    schemas.Epoch.model_validate(st)  # the OpenAPI document describes what is served
    [ch] = st["changes"]
    assert st["epoch"] == 1 and ch["status"] == "decided" and ch["deadline"] == NOW + 3600
    assert ch["voters"] == sorted(address_of_key(k) for k in KEYS[:3])
    assert ch["next"]["apiUrls"] == [None] * 3 + ["http://10.0.0.5:8005"]
    assert [m["endpoint"] for m in st["members"]] == EPS
    assert ledger.committee_changes()[0]["status"] == "decided"
