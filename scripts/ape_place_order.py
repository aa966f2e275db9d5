"""Place a PoT training order with Ape: commit to the test set, approve the reward, placeOrder.

    POT_DEVNET_RPC=http://127.0.0.1:8545 ape run ape_place_order --network ethereum:devnet:node \\
        --account TEST::0 --deployment deployment.json --spec-cid bafy... --test-cid bafy...

The spec and the training data must be on IPFS already (`pot client place-order` prepares them); the
test set's CID stays secret behind the commitment until the release window. Prints the order id, the
salt (keep it: releaseTestData(orderId, testCid, salt) needs it) and the commitment.
"""

from __future__ import annotations

import os

import click
from ape import chain
from ape.cli import ConnectedProviderCommand, account_option, network_option
from eth_abi import encode
from eth_utils import keccak

from scripts._ape_pot import load_deployment

TOKEN = 10**18


def test_commitment(client: str, test_cid: str, salt: bytes) -> bytes:
    """CONVENTIONS.md: keccak256(abi.encode(address client, bytes32 keccak256(bytes(testCid)), bytes32 salt))."""
    return keccak(encode(["address", "bytes32", "bytes32"], [client, keccak(test_cid.encode()), salt]))


@click.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.option("--deployment", default="deployment.json", show_default=True, help="Deployment file.")
@click.option("--spec-cid", required=True, help="CID of the task spec (uploaded with the training data).")
@click.option("--test-cid", required=True, help="CID of the test set (kept secret until the release).")
@click.option("--salt", default=None, help="32-byte hex salt of the commitment (default: random).")
@click.option("--reward", type=float, default=100.0, show_default=True, help="POT escrowed.")
@click.option("--train-duration", type=int, default=3600, show_default=True)
@click.option("--validate-duration", type=int, default=600, show_default=True)
@click.option("--challenge-duration", type=int, default=600, show_default=True)
@click.option("--reveal-duration", type=int, default=600, show_default=True)
@click.option("--model-type", default="classification-accuracy-v1", show_default=True)
def cli(network, account, deployment, spec_cid, test_cid, salt, reward, train_duration, validate_duration,
        challenge_duration, reveal_duration, model_type):
    """Approve the reward and place the order; prints the order id, the salt and the commitment."""
    c = load_deployment(deployment, chain.chain_id)
    salt_b = bytes.fromhex(salt.removeprefix("0x")) if salt else os.urandom(32)
    if len(salt_b) != 32:
        raise click.BadParameter("the salt must be 32 bytes", param_hint="--salt")
    commitment = test_commitment(account.address, test_cid, salt_b)
    amount = int(reward * TOKEN)
    if c["PoTToken"].allowance(account.address, c["OrderBook"].address) < amount:
        c["PoTToken"].approve(c["OrderBook"].address, amount, sender=account)
    params = (amount, train_duration, validate_duration, challenge_duration, reveal_duration,
              model_type.encode().ljust(32, b"\0"), commitment, spec_cid)
    receipt = c["OrderBook"].placeOrder(params, sender=account)
    placed = [log for log in receipt.events if log.event_name == "OrderPlaced"]
    if len(placed) != 1:
        raise click.ClickException(f"placeOrder emitted no OrderPlaced event (tx {receipt.txn_hash})")
    click.echo(f"order {placed[0].orderId} placed in block {receipt.block_number} (tx {receipt.txn_hash})")
    click.echo(f"salt 0x{salt_b.hex()}")
    click.echo(f"commitment 0x{commitment.hex()}")
