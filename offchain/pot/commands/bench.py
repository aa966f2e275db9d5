"""``pot bench``: gas, PBFT and training benchmarks; each prints a table and can write JSON."""

from __future__ import annotations

import click

from pot.cli import LazyGroup

BENCHES = {
    "gas": ("pot.chain.gasbench:command", "Gas of every contract function and the cost of payouts."),
    "pbft": ("pot.pbft.bench:command", "PBFT commit latency and throughput, LAN and emulated WAN."),
    "ledger": ("pot.ledger.bench:command", "Ledger messages/s, checkpoint cost and disk per order as history grows."),
    "train": ("pot.ml.bench:command", "Miner training throughput and PoT's own overhead."),
    "soak": ("pot.devnet.soak:command", "A devnet under steady orders with replicas stopped and restarted."),
    "cycle": ("pot.devnet.soak:cycle_command", "N orders through a devnet: settled once, tokens conserved."),
}


@click.group(cls=LazyGroup, lazy=BENCHES)
def group() -> None:
    """Benchmarks that print a table beside the paper's figures and write JSON (--json FILE)."""
