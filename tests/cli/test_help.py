"""``pot --help`` explains every command: each command and group says what it does, each option what
it means, and docs/CLI.md is what the commands' own help says today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pot.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
cli_reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cli_reference)


def every_command():
    return list(cli_reference.walk(main, click.Context(main, info_name="pot"), ["pot"]))


@pytest.mark.parametrize("path, cmd, ctx", every_command(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_command_and_option_is_explained(path, cmd, ctx):
    assert cli_reference.first_paragraph(cmd).strip(), f"{' '.join(path)} has no help"
    for p in cmd.get_params(ctx):
        if isinstance(p, click.Option) and not p.hidden:
            assert (p.help or "").strip(), f"{' '.join(path)} {p.opts[0]} has no help"
    res = CliRunner().invoke(main, [*path[1:], "--help"], prog_name="pot")
    assert res.exit_code == 0 and "Usage: pot" in res.output, res.output


def test_the_top_level_help_lists_every_command():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for name, (_, text) in COMMANDS.items():
        assert name in res.output and text.split()[0] in res.output


def test_the_reference_in_docs_is_current():
    doc = (ROOT / "docs" / "CLI.md").read_text()
    assert doc.endswith(cli_reference.render()), "docs/CLI.md is stale: run scripts/cli_reference.py"
