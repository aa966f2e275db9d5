"""Deploy PoTToken, StakeRegistry, OrderBook, ChallengeManager and RewardMultisig with Ape, and write
the deployment file every PoT tool reads (the format of `pot contracts deploy`).

    # a devnet or any local Anvil (test accounts = Anvil's dev accounts)
    POT_DEVNET_RPC=http://127.0.0.1:8545 ape run ape_deploy --network ethereum:devnet:node \\
        --account TEST::0 --out deployment.json
    # BSC testnet, with an account imported into Ape (`ape accounts import deployer`)
    POT_BSC_TESTNET_RPC=https://... ape run ape_deploy --network ethereum:bsc-testnet:node \\
        --account deployer --member 0xA.. --member 0xB.. --member 0xC.. --member 0xD.. --threshold 3

The contracts take each other's addresses as constructor arguments (immutables): the addresses are
predicted from the deployer's nonce and every prediction is checked, as `pot contracts deploy` does.
"""

from __future__ import annotations

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand, account_option, network_option

from scripts._ape_pot import create_address, save_deployment

DAY = 86_400
TOKEN = 10**18


@click.command(cls=ConnectedProviderCommand)
@network_option()
@account_option()
@click.option("--out", default="deployment.json", show_default=True, help="Deployment file to write/update.")
@click.option("--member", "members", multiple=True, help="Committee member (repeat); default: test accounts 1-4.")
@click.option("--threshold", type=int, default=None, help="k (default: a majority, 2f+1 for n = 3f+1).")
@click.option("--treasury", default=None, help="Treasury (default: the deployer).")
@click.option("--unbonding-period", type=int, default=14 * DAY, show_default=True)
@click.option("--min-reveal-duration", type=int, default=600, show_default=True)
@click.option("--settlement-grace", type=int, default=2 * DAY, show_default=True)
@click.option("--max-order-lifetime", type=int, default=10 * DAY, show_default=True)
@click.option("--min-stake", type=int, default=100, show_default=True, help="POT per role (aggregator: 10x).")
@click.option("--challenge-stake", type=int, default=50, show_default=True, help="POT a verifier locks.")
@click.option("--supply", type=int, default=1_000_000_000, show_default=True, help="POT minted to the deployer.")
def cli(network, account, out, members, threshold, treasury, unbonding_period, min_reveal_duration,
        settlement_grace, max_order_lifetime, min_stake, challenge_stake, supply):
    """Deploy the five PoT contracts and write the deployment file."""
    members = list(members) or [a.address for a in accounts.test_accounts[1:5]]
    n = len(members)
    k = threshold or (2 * ((n - 1) // 3) + 1 if n % 3 == 1 else n // 2 + 1)
    if max_order_lifetime + settlement_grace >= unbonding_period:
        raise click.BadParameter("max order lifetime + settlement grace must stay below the unbonding period")
    treasury = treasury or account.address
    min_stakes = [min_stake * TOKEN] * 3 + [10 * min_stake * TOKEN]
    nonce = account.nonce
    predicted = {name: create_address(account.address, nonce + i) for i, name in enumerate(
        ("PoTToken", "StakeRegistry", "OrderBook", "ChallengeManager", "RewardMultisig"))}
    block = chain.blocks.head.number + 1
    steps = [
        ("PoTToken", [account.address, supply * TOKEN]),
        ("StakeRegistry", [predicted["PoTToken"], predicted["RewardMultisig"], predicted["OrderBook"], min_stakes,
                           unbonding_period]),
        ("OrderBook", [predicted["PoTToken"], predicted["RewardMultisig"], predicted["StakeRegistry"],
                       min_reveal_duration, settlement_grace, max_order_lifetime]),
        ("ChallengeManager", [predicted["PoTToken"], predicted["OrderBook"], predicted["StakeRegistry"],
                              predicted["RewardMultisig"], challenge_stake * TOKEN]),
        ("RewardMultisig", [predicted["OrderBook"], predicted["StakeRegistry"], predicted["ChallengeManager"],
                            members, k, treasury]),
    ]
    addresses = {}
    for name, args in steps:
        contract = account.deploy(getattr(project, name), *args)
        if contract.address != predicted[name]:
            raise click.ClickException(f"{name} landed at {contract.address}, expected {predicted[name]}: another "
                                       f"transaction from {account.address} interleaved; redeploy from an idle account")
        addresses[name] = contract.address
    params = {"members": members, "threshold": k, "treasury": treasury, "min_stakes": min_stakes,
              "unbonding_period": unbonding_period, "min_reveal_duration": min_reveal_duration,
              "settlement_grace": settlement_grace, "max_order_lifetime": max_order_lifetime,
              "challenge_stake": challenge_stake * TOKEN, "token_supply": supply * TOKEN}
    path = save_deployment(out, chain.chain_id, addresses, block, account.address, params)
    click.echo(f"chain {chain.chain_id}, committee {n} (k={k})")
    for name, addr in addresses.items():
        click.echo(f"  {name:17} {addr}")
    click.echo(f"wrote {path}")
