"""Worker configuration (TOML < [role] < $POT_* < options), the thin CLI, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from click.testing import CliRunner
from eth_account import Account

from pot.chain.anvil import DEV_KEYS
from pot.cli import main
from pot.ledger import Ledger, LedgerConfig
from pot.roles.base import serve
from pot.roles.config import (ClientConfig, ConfigError, MinerConfig, ValidatorConfig, load_config,
                              parse_amount)
from pot.roles.gateway import LocalGateway
from pot.roles.validator import Validator


def test_precedence_file_section_env_options(tmp_path):
    f = tmp_path / "pot.toml"
    f.write_text('rpc_url = "http://file:8545"\nstake = "100 POT"\napi_urls = ["http://a", "http://b"]\n'
                 '[miner]\ndevice = "cpu"\ncommit_margin_s = 7\n[validator]\nv_stake = "2.5e18"\n')
    cfg = load_config(MinerConfig, f, env={"POT_RPC_URL": "http://env:8545", "POT_MAX_PARAMS": "1000"},
                      device="cuda", progress=None)
    assert cfg.rpc_url == "http://env:8545" and cfg.device == "cuda" and cfg.commit_margin_s == 7.0
    assert cfg.stake == 100 * 10**18 and cfg.max_params == 1000 and cfg.api_urls == ["http://a", "http://b"]
    assert cfg.progress is False  # an unset option does not hide the file or the default
    v = load_config(ValidatorConfig, f, env={"POT_API_URLS": "http://x, http://y"})
    assert v.v_stake == 25 * 10**17 and v.api_urls == ["http://x", "http://y"]
    c = load_config(ClientConfig, None, env={"POT_MODEL": '{"hidden": [8]}'})
    assert c.model == {"hidden": [8]}


@pytest.mark.parametrize("text, env, match", [
    ('[miner]\nbogus = 1\n', {}, "unknown setting 'bogus'"),
    ('commit_margin_s = "soon"\n', {}, "commit_margin_s"),
    ('', {"POT_STAKE": "lots"}, "not an amount"),
    ('', {"POT_STAKE": "0.5"}, "whole number"),
    ('rpc_url = [1\n', {}, "pot.toml"),
])
def test_bad_settings_name_field_and_source(tmp_path, text, env, match):
    f = tmp_path / "pot.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(MinerConfig, f, env=env)


def test_amounts():
    assert parse_amount("100 POT") == 100 * 10**18
    assert parse_amount("1.5e20") == 150 * 10**18
    assert parse_amount(7) == 7
    with pytest.raises(ConfigError):
        parse_amount(-1)


@pytest.mark.parametrize("args", [["miner", "run"], ["validator", "run"], ["verifier", "run"],
                                  ["client", "place-order"], ["client", "release"], ["client", "fetch"],
                                  ["client", "run"]])
def test_every_command_explains_its_options(args):
    res = CliRunner().invoke(main, [*args, "--help"])
    assert res.exit_code == 0, res.output
    assert "--config" in res.output and "--api" in res.output and "Settings" in res.output


def test_cli_reports_config_errors(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[miner]\nnope = 1\n")
    res = CliRunner().invoke(main, ["miner", "run", "--config", str(f)])
    assert res.exit_code == 2 and "unknown setting 'nope'" in res.output


def test_sigterm_stops_a_worker_gracefully():
    account = Account.from_key(DEV_KEYS[5])
    ledger = Ledger(LedgerConfig(31337, "0x" + "11" * 20, "0x" + "22" * 20, ("0x" + "33" * 20,)))
    worker = Validator(ValidatorConfig(poll_interval=0.05), account=account, gateway=LocalGateway(ledger),
                       domain=ledger.config.message_domain)

    async def go():
        task = asyncio.ensure_future(serve(worker))
        await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 5)

    asyncio.run(go())
    kinds = [e.kind for e in worker.events]
    assert kinds[0] == "started" and kinds[-1] == "stopped" and "error" not in kinds
