"""The ``pot`` command: a thin front that parses options and hands over to the packages.

Subcommands are imported only when used, so ``pot --help`` is instant and a miner's machine
does not import FastAPI, nor an aggregator PyTorch, unless it runs that command.
"""

from __future__ import annotations

import importlib

import click

#: command name -> "module:attribute" of a click command or group, plus its one-line help.
COMMANDS: dict[str, tuple[str, str]] = {
    "contracts": ("pot.commands.contracts:group", "Compile, export and deploy the PoT contracts."),
    "bench": ("pot.commands.bench:group", "Benchmarks: gas, PBFT latency/throughput, training."),
    "client": ("pot.commands.client:group", "Place orders, release test data, fetch the winning model."),
    "miner": ("pot.commands.miner:group", "Stake, train on GPU/CPU, commit and reveal models."),
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


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="proof-of-training")
def main() -> None:
    """PoT: a decentralized training network (Proof-of-Training).

    Clients escrow tokens for a training order; miners train and commit models; validators
    score them; verifiers challenge wrong scores; a PBFT committee of aggregators keeps the
    global ledger and multisigns the payouts on an EVM chain. Start with ``pot demo``.
    """


if __name__ == "__main__":
    main()
