"""Accounts and amounts shared by the role tests (a module of its own: test files cannot import conftest)."""

from eth_account import Account

from pot.chain.anvil import DEV_KEYS

TOKEN = 10**18
MIN_STAKE = 10 * TOKEN
C_STAKE = 5 * TOKEN

ACCOUNTS = {name: Account.from_key(DEV_KEYS[i]) for i, name in enumerate(
    ["deployer", "member", "client", "miner_a", "miner_b", "validator", "liar", "verifier", "treasury"])}
