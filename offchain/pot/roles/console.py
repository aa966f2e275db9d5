"""One console for everything a worker prints: log lines, plain-word outcomes, progress bars.

Log lines and a progress bar written to the same terminal by different writers end up glued
together (``reveal mid=…  63%|██████▎   | 80/127``). Here both go through one rich ``Console``:
a bar is a live display of that console, and a log line printed while it runs is drawn above it.

On a terminal a line is ``HH:MM:SS text``, coloured by level; piped into a file (a devnet's logs)
it is ``YYYY-MM-DD HH:MM:SS LEVEL logger text``, never wrapped, no colour, no bar.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

_console: Console | None = None


def console() -> Console:
    """The process's console (stderr: stdout stays for results a script reads)."""
    global _console
    if _console is None:
        _console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _console


_STYLE = {logging.DEBUG: "dim", logging.INFO: "", logging.WARNING: "yellow", logging.ERROR: "bold red",
          logging.CRITICAL: "bold red"}


class ConsoleHandler(logging.Handler):
    """Log records onto the console (above any live progress bar)."""

    def __init__(self, target: Console | None = None) -> None:
        super().__init__()
        self.console = target or console()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.levelno >= logging.ERROR:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            if self.console.is_terminal:
                stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
                style = getattr(record, "style", None) or _STYLE.get(record.levelno, "")
                body = f"[{style}]{escape(text)}[/]" if style else escape(text)
                self.console.print(f"[dim]{stamp}[/] {body}")
            else:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
                self.console.print(f"{stamp} {record.levelname} {record.name} {text}", markup=False)
        except Exception:  # noqa: BLE001 - logging must never take the worker down
            self.handleError(record)


def setup_logging(level: str = "INFO", target: Console | None = None) -> None:
    """Route every log record through the console, once per process."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, ConsoleHandler):
            root.removeHandler(h)
    root.addHandler(ConsoleHandler(target))
    root.setLevel(level.upper())


class ProgressBar:
    """A tqdm-like bar drawn by the console (what ``pot.ml.train`` asks of its ``progress`` class):
    ``update(n)``, ``set_postfix(**fields)``, ``close()``. Off when the console is not a terminal."""

    def __init__(self, total: int | None = None, *, unit: str = "it", disable: bool = False,
                 desc: str = "training", target: Console | None = None, **_tqdm_options: Any) -> None:
        self.console = target or console()
        self.disable = disable or not self.console.is_terminal
        self.total, self.n = total, 0
        self._progress: Progress | None = None
        if self.disable:
            return
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn(unit), TextColumn("{task.fields[postfix]}"), TimeRemainingColumn(),
                                  console=self.console, transient=True)
        self._task = self._progress.add_task(desc, total=total, postfix="")
        self._progress.start()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._progress is not None:
            self._progress.update(self._task, advance=n)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **fields: Any) -> None:
        if self._progress is not None:
            items = {**(ordered_dict or {}), **fields}
            self._progress.update(self._task, postfix=" ".join(f"{k} {v}" for k, v in items.items()))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def is_terminal() -> bool:
    return console().is_terminal and sys.stderr.isatty()
