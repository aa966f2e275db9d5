"""Log lines and a training progress bar share one console: on a terminal every log line is a line
of its own, drawn above the bar, never glued onto it; piped into a file there is no bar at all."""

from __future__ import annotations

import io
import logging
import re

from rich.console import Console

from pot.roles.console import ConsoleHandler, ProgressBar

SGR = re.compile(r"\x1b\[[0-9;]*m")  # colours: drop
MOVE = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z]")  # cursor moves and erases: a line ends there


def run(terminal: bool) -> str:
    out = io.StringIO()
    target = Console(file=out, force_terminal=terminal, width=100, color_system=None if not terminal else "standard")
    log = logging.getLogger("pot.test.console")
    log.propagate = False
    log.handlers[:] = [ConsoleHandler(target)]
    log.setLevel(logging.INFO)
    bar = ProgressBar(total=50, unit="batch", target=target)
    for i in range(50):
        bar.update()
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
        if i % 10 == 5:
            log.info("reveal mid=0x%02x cid=bafy", i)
        if terminal:
            bar._progress.refresh()  # draw now, as the refresh thread would between batches
    bar.close()
    return out.getvalue()


def test_on_a_terminal_log_lines_are_never_glued_to_the_bar():
    text = run(terminal=True)
    assert "batch" in text and "training" in text  # the bar was drawn
    lines = [ln for ln in re.split(r"[\r\n]", MOVE.sub("\n", SGR.sub("", text))) if "reveal mid=" in ln]
    assert len(lines) == 5, lines
    for ln in lines:
        assert re.fullmatch(r"\d\d:\d\d:\d\d reveal mid=0x[0-9a-f]{2} cid=bafy\s*", ln), repr(ln)


def test_into_a_file_only_whole_log_lines():
    text = run(terminal=False)
    lines = text.splitlines()
    assert len(lines) == 5 and all(re.fullmatch(r"\S+ \S+ INFO pot\.test\.console reveal mid=0x.. cid=bafy", ln)
                                   for ln in lines), lines
