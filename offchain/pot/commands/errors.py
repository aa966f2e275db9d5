"""What ``pot`` says when a command fails: one red line with what to do about it.

An expected failure (a wrong keystore password, a chain node that does not answer, a missing key
or deployment file, a bad setting, a refused transaction) is explained in one line; only
``pot --debug …`` (or ``$POT_DEBUG=1``) shows the traceback. Each rule matches an exception *type*,
never the text of a message.
"""

from __future__ import annotations

from collections.abc import Callable


def _chain_revert(exc) -> str:
    hints = {
        "InsufficientStake": "stake at least the registry's minimum (`pot stake status` shows it)",
        "Unbonding": "the stake is unbonding: `pot stake withdraw` once the period is over",
        "NotUnbonding": "ask to leave first: `pot stake unbond`",
        "UnbondingNotOver": "the unbonding period is not over yet (`pot stake status` says when)",
        "StakeLocked": "part of the stake is locked by an order not settled yet: wait for its settlement",
        "NotRegistered": "register first: `pot stake register --role miner`",
        "ERC20InsufficientBalance": "the account holds too few POT (`pot wallet balance`; on a devnet "
                                    "`pot devnet fund ADDRESS`)",
        "ERC20InsufficientAllowance": "the token allowance is too small",
        "OutsideWindow": "the order's window for this is not open (or closed already)",
    }
    hint = hints.get(exc.error)
    return f"the chain refused the transaction: {exc}" + (f" — {hint}" if hint else "")


def _rules() -> list[tuple[type, Callable[[BaseException], str]]]:
    """(exception type, message) for every expected failure; the first match wins. Imported
    lazily: a failing `pot --help` must not import web3."""
    rules: list[tuple[type, Callable[[BaseException], str]]] = []
    from pot.chain.keys import KeyLoadError
    from pot.roles.config import ConfigError

    rules += [(KeyLoadError, str),
              (ConfigError, lambda e: f"{e} (fix it in the config file, the environment or the option)")]
    try:
        from pot.chain.errors import ChainRevert
        from pot.chain.sender import ChainUnreachable, TxFailed

        rules += [(ChainUnreachable, str), (ChainRevert, _chain_revert),
                  (TxFailed, lambda e: f"the transaction failed: {e}")]
    except ImportError:  # pragma: no cover - web3 missing: nothing of the chain to explain
        pass
    try:
        import requests

        rules.append((requests.exceptions.ConnectionError,
                      lambda e: "the chain node stopped answering (is it still running? --rpc-url)"))
        rules.append((requests.exceptions.Timeout, lambda e: "the chain node did not answer in time (--rpc-url)"))
    except ImportError:  # pragma: no cover
        pass
    from pot.api.client import ApiError, NoQuorum

    rules += [(NoQuorum, lambda e: f"the committee's API gave no quorum: {e} (check --api / api_urls)"),
              (ApiError, lambda e: f"the committee's API failed: {e} (check --api / api_urls)")]
    from pot.ports import PortInUse

    rules.append((PortInUse, str))
    from pot.storage.errors import StorageError

    rules.append((StorageError, lambda e: f"storage: {e}"))
    rules += [(FileNotFoundError, lambda e: str(e) if e.filename is None else f"{e.filename}: no such file"),
              (PermissionError, lambda e: f"{e.filename or ''}: permission denied"),
              (IsADirectoryError, lambda e: f"{e.filename}: is a directory"),
              (ConnectionError, str), (TimeoutError, lambda e: f"timed out: {e}" if str(e) else "timed out"),
              (ValueError, str)]
    return rules


def explain(exc: BaseException) -> str | None:
    """One line for an expected failure; None for an unexpected one (a bug)."""
    for cls, render in _rules():
        if isinstance(exc, cls):
            text = render(exc) or type(exc).__name__
            return " ".join(text.split())
    return None


def exit_code(exc: BaseException) -> int:
    """2 for a bad setting (like a bad option: the command never ran), 1 for everything else."""
    from pot.roles.config import ConfigError

    return 2 if isinstance(exc, ConfigError) else 1
