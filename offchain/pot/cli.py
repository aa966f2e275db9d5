"""The ``pot`` command: a thin front that parses options and hands over to the packages.

Subcommands are imported only when used, so ``pot --help`` is instant and a miner's machine
does not import FastAPI, nor an aggregator PyTorch, unless it runs that command.

Exit codes: 0 done, 1 failed (one red line says why and what to do; ``--debug`` anywhere on the
command line, or ``$POT_DEBUG=1``, shows the traceback instead), 2 bad usage, 130 interrupted
(Ctrl-C; a worker finishes its step and saves its state first).
"""

from __future__ import annotations

import importlib
import os
import sys

import click

#: command name -> "module:attribute" of a click command or group, plus its one-line help.
COMMANDS: dict[str, tuple[str, str]] = {
    "contracts": ("pot.commands.contracts:group", "Compile, export and deploy the PoT contracts."),
    "bench": ("pot.commands.bench:group", "Benchmarks: gas, PBFT latency/throughput, training."),
    "wallet": ("pot.commands.wallet:group", "Create, import and list keys; show balances."),
    "stake": ("pot.commands.stake:group", "Register a role, add stake, unbond and withdraw."),
    "client": ("pot.commands.client:group", "Place orders, release test data, fetch the winning model."),
    "miner": ("pot.commands.miner:group", "Train on GPU/CPU, commit and reveal models; see your orders."),
    "validator": ("pot.commands.validator:group", "Score revealed models, commit and reveal scores."),
    "verifier": ("pot.commands.verifier:group", "Re-check validations and challenge wrong ones."),
    "aggregator": ("pot.commands.aggregator:group", "Run a PBFT replica of the global ledger."),
    "storage": ("pot.commands.storage:group", "Add, fetch and export content-addressed files."),
    "model": ("pot.commands.model:group", "Inspect model files and check them against a task spec."),
    "devnet": ("pot.commands.devnet:group", "Start, inspect and stop a whole local network."),
    "demo": ("pot.commands.demo:command", "Run one full task cycle on a devnet of its own."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands live in other modules and load on first use."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            target, _ = self.lazy[name]
            module_name, attr = target.split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                return None
            return getattr(module, attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in sorted(self.lazy.items())]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


#: exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130


def debug_requested(args: list[str]) -> tuple[bool, list[str]]:
    """(--debug given, the arguments without it). Accepted anywhere before a ``--``, so
    ``pot miner run --debug`` works as well as ``pot --debug miner run``."""
    end = args.index("--") if "--" in args else len(args)
    found = "--debug" in args[:end]
    rest = [a for i, a in enumerate(args) if not (i < end and a == "--debug")]
    return found or os.environ.get("POT_DEBUG", "") not in ("", "0"), rest


def error_line(text: str) -> None:
    """One red line on stderr (plain text when stderr is not a terminal)."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(text)}")


class PotGroup(LazyGroup):
    """The root group: turns failures into one line and Ctrl-C into exit 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        debug, args = debug_requested(args)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            super().main(args, prog_name or "pot", complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - the one place every failure reaches the user
            if debug:
                raise
            from pot.commands.errors import exit_code, explain

            text = explain(exc)
            if text is None:
                error_line(f"{type(exc).__name__}: {exc}")
                click.echo("(unexpected: run again with --debug for the traceback)", err=True)
                sys.exit(1)
            error_line(text)
            sys.exit(exit_code(exc))
        sys.exit(0)


@click.group(cls=PotGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="proof-of-training")
def main() -> None:
    """PoT: a decentralized training network (Proof-of-Training).

    Clients escrow tokens for a training order; miners train and commit models; validators
    score them; verifiers challenge wrong scores; a PBFT committee of aggregators keeps the
    global ledger and multisigns the payouts on an EVM chain. Start with ``pot demo``.

    Add --debug anywhere to see the traceback of a failure.
    """


if __name__ == "__main__":
    main()
