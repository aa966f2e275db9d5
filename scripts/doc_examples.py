"""Copy the example files into the docs that show them, so a reader sees exactly what CI runs.

A line ``<!-- example: docs/examples/formats.py -->`` in a Markdown file is followed by that file in
a fenced block; this rewrites the block from the file.

    .venv/bin/python scripts/doc_examples.py            # rewrite docs/*.md and README.md
    .venv/bin/python scripts/doc_examples.py --check    # exit 1 naming every stale block
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = {".py": "python", ".mjs": "js", ".ts": "ts"}
#: the marker, then (optionally) the block it owns: a fence of 4 backticks, as examples hold ``` in strings
BLOCK = re.compile(r"^<!-- example: (?P<path>\S+) -->\n(?:````[a-z]*\n.*?\n````\n)?", re.MULTILINE | re.DOTALL)


def render(text: str) -> str:
    def block(m: re.Match) -> str:
        path = ROOT / m["path"]
        body = path.read_text().rstrip("\n")
        return f"<!-- example: {m['path']} -->\n````{LANGUAGES.get(path.suffix, '')}\n{body}\n````\n"

    return BLOCK.sub(block, text)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def stale() -> list[Path]:
    return [p for p in documents() if render(p.read_text()) != p.read_text()]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for p in bad:
            print(f"{p.relative_to(ROOT)}: an example block differs from its file; run scripts/doc_examples.py")
        return 1 if bad else 0
    for p in documents():
        new = render(p.read_text())
        if new != p.read_text():
            p.write_text(new)
            print(f"rewrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
