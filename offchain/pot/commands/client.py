"""``pot client``: place orders, release test data, fetch the winning model."""

from __future__ import annotations

import asyncio

import click

from pot.commands.common import load, run_service, settings_epilog, worker_options
from pot.roles.config import ClientConfig


@click.group(help="Place orders, release test data, fetch the winning model.")
def group() -> None:
    pass


def _client(config_file, options):
    from pot.roles.client import build

    return build(load(ClientConfig, config_file, **options))


@group.command("place-order", epilog=settings_epilog(ClientConfig))
@worker_options
@click.option("--dataset", default=None, help="Built-in data set: digits, digits-flat, digits-seq, iris, wine, "
                                              "breast-cancer.")
@click.option("--data", default=None, type=click.Path(exists=True),
              help="Your own data: an image folder (one sub-folder of PNG/JPEG per class), .npz or .safetensors "
                   "arrays x and y, a .csv with a header, or a text file or folder (a language model).")
@click.option("--data-kind", type=click.Choice(["auto", "images", "arrays", "csv", "text"]), default=None,
              help="What --data is (default: guessed from the path).")
@click.option("--image-size", type=int, default=None, help="Images are resized to N x N pixels (default 32).")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None,
              help="Image channels, 1 (grey) or 3 (RGB) (default: 1 if every image is grey).")
@click.option("--context", type=int, default=None, help="Text: bytes of context per window (default 64).")
@click.option("--label-column", default=None, help="CSV: the label column (default: the last).")
@click.option("--test-fraction", type=float, default=None,
              help="Share of the data kept as the hidden test set (default 0.25).")
@click.option("--data-seed", type=int, default=None,
              help="Seed of the train/test split: which samples the hidden test set takes (default 0).")
@click.option("--arch", default=None, help="Architecture: mlp, cnn, lstm, resnet or gpt "
                                           "(default: resnet for images, gpt for text, else mlp).")
@click.option("--init-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A model file (from `pot client fetch` or a miner) every miner starts from: fine-tuning.")
@click.option("--model-type", default=None, help="Validation function (default: the one for the architecture).")
@click.option("--epochs", type=int, default=None, help="Training hint for miners: epochs.")
@click.option("--reward", default=None, help="Reward escrowed for the winner, e.g. '100 POT'.")
@click.option("--train-duration", type=int, default=None, help="Seconds of training.")
@click.option("--validate-duration", type=int, default=None, help="Seconds of validation after the test release.")
@click.option("--challenge-duration", type=int, default=None, help="Seconds of the challenge window.")
@click.option("--reveal-duration", type=int, default=None, help="Seconds of each reveal window.")
def place_order(config_file, **options) -> None:
    """Upload the task spec and training data, commit to the test set, approve and place the
    order on-chain. Keeps the test set and its salt in the state directory; prints the order id
    (and, on stderr, what was ordered)."""
    from pot.roles.client import build, build_task

    if options.get("channels") is not None:
        options["channels"] = int(options["channels"])
    config = load(ClientConfig, config_file, **options)
    try:
        # the data first, before any connection: a bad file is reported at once
        built = build_task(config)
        click.echo(built.summary, err=True)
        client = build(config)
        order_id = asyncio.run(_place(client, built))
    except ValueError as exc:  # bad data, weights or windows: one line with the fix
        raise click.ClickException(str(exc)) from None
    click.echo(order_id)


async def _place(client, built) -> int:
    return await client.place_order(await client.prepare_task(built))


@group.command(epilog=settings_epilog(ClientConfig))
@worker_options
@click.argument("order_id", type=int)
def release(config_file, order_id, **options) -> None:
    """Upload the test set of ORDER_ID and open its commitment on-chain (only inside
    [revealEnd, releaseEnd)); prints t3."""
    client = _client(config_file, options)
    click.echo(asyncio.run(client.release(order_id)))


@group.command(epilog=settings_epilog(ClientConfig))
@worker_options
@click.argument("order_id", type=int)
def fetch(config_file, order_id, **options) -> None:
    """After the settlement of ORDER_ID: fetch the winning model, check it against its mid,
    score it on the client's own test set and save it in the state directory."""
    client = _client(config_file, options)
    result = asyncio.run(client.fetch_result(order_id))
    if result is None:
        raise click.ClickException(f"order {order_id} is not settled yet")
    if result.mid is None:
        click.echo(f"order {order_id}: no winner (refunded)")
        return
    click.echo(f"winner {result.winner} model 0x{result.mid.hex()} cid {result.model_cid}\n"
               f"score here {result.local_score} ppm, network {result.ledger_score} ppm -> {result.model_path}")
    if not result.ok:
        raise click.ClickException("the model's score here differs from the network's")


@group.command(epilog=settings_epilog(ClientConfig))
@worker_options
def run(config_file, **options) -> None:
    """Run until SIGINT/SIGTERM: release the test data of every order in the state directory
    when its window opens and fetch each winner after its settlement."""
    from pot.roles.client import run as run_client

    run_service(run_client(load(ClientConfig, config_file, **options)))
