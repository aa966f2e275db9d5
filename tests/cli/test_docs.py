"""The repository stands on its own: every relative link in its Markdown resolves inside it, no
text points at files beside it, and every `pot …` command the README and the guides show exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import pytest

from pot.cli import main

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / p for p in out.stdout.split() if (ROOT / p).exists()]


MARKDOWN = [p for p in tracked("*.md") if "node_modules" not in p.parts]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs" / "guides").glob("*.md"))]


def test_the_guides_and_the_architecture_are_there():
    names = {p.stem for p in GUIDES}
    assert {"miner", "validator", "verifier", "client", "aggregator"} <= names
    assert (ROOT / "docs" / "ARCHITECTURE.md").exists()


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_stay_inside_the_repository(doc):
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name}: broken link {target}"


def test_nothing_points_beside_the_repository():
    out = subprocess.run(["git", "grep", "-nI", "-e", "../shared", "-e", "DESIGN.md", "--", ".",
                          ":!tests/cli/test_docs.py"], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout == "", out.stdout


def command_exists(words: list[str]) -> bool:
    cmd, ctx = main, click.Context(main, info_name="pot")
    for w in words:
        if not isinstance(cmd, click.Group):
            return True  # the rest are arguments
        if w.startswith("-"):
            return False
        sub = cmd.get_command(ctx, w)
        if sub is None:
            return False
        cmd, ctx = sub, click.Context(sub, info_name=w, parent=ctx)
    return True


@pytest.mark.parametrize("doc", GUIDES, ids=lambda p: p.name)
def test_every_command_a_guide_shows_exists(doc):
    shown = re.findall(r"(?:^|[\s`/])pot ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", doc.read_text(), re.M)
    assert shown, doc
    missing = {s for s in shown if not command_exists(s.split())}
    assert not missing, f"{doc.name} shows commands pot does not have: {missing}"
