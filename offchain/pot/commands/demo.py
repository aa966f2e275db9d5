"""``pot demo``: one full task cycle, with a dishonest validator and a thief, on a devnet of its own."""

from __future__ import annotations

import click


@click.command(help="Run one full task cycle on a devnet of its own (Anvil, contracts, 4 aggregator "
                    "processes; a client, two miners, a thief, an honest and a dishonest validator, "
                    "a verifier) and print what happens, then a summary.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the summary as JSON to this file.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Keep the devnet's files (logs, ledgers, store, configs) here "
                   "(default: a temporary directory, removed at the end).")
@click.option("--quiet", is_flag=True, help="No live lines, only the summary.")
@click.option("--task", type=click.Choice(["digits", "lm", "images"]), default="digits", show_default=True,
              help="What the client orders: an MLP on the digits set, a byte-level GPT on a generated text "
                   "corpus, or a residual CNN on a folder of generated PNG images (the own-files path).")
def command(json_path, workdir, quiet, task) -> None:
    from pot.devnet.demo import DemoFailed, Display, check, print_summary, run_demo
    from pot.devnet.network import DevnetError

    try:
        res = run_demo(workdir, json_path=json_path, quiet=quiet, task=task)
    except (DemoFailed, DevnetError) as exc:
        hint = f" (logs in {workdir}/devnet/logs)" if workdir else " (run with --workdir DIR to keep the logs)"
        raise click.ClickException(f"{exc}{hint}") from None
    display = Display()
    display.names = res.extra["names"]
    print_summary(res, display)
    problems = check(res.summary, res.extra["honest_miners"])
    if json_path:
        click.echo(f"summary written to {json_path}")
    if problems:
        raise click.ClickException("the cycle went wrong: " + "; ".join(problems))
