"""docs/FORMATS.md shows the example files CI runs (tests/e2e/test_sdk_example.py,
tests/e2e/test_npm_package.py) verbatim: a reader copies what was tested."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sync = runpy.run_path(str(ROOT / "scripts" / "doc_examples.py"))


def test_every_example_block_in_the_docs_is_its_file():
    assert sync["stale"]() == [], "run .venv/bin/python scripts/doc_examples.py"


def test_the_formats_page_shows_all_three_examples_in_full():
    text = (ROOT / "docs" / "FORMATS.md").read_text()
    for name in ("formats.py", "formats.mjs", "place_order.py"):
        body = (ROOT / "docs" / "examples" / name).read_text().rstrip("\n")
        assert f"<!-- example: docs/examples/{name} -->\n````" in text and body in text, name


def test_a_changed_example_makes_its_block_stale(tmp_path):
    text = (ROOT / "docs" / "FORMATS.md").read_text()
    edited = text.replace("def main(data: str) -> None:", "def main(data: str, extra=1) -> None:", 1)
    assert edited != text and sync["render"](edited) == text
