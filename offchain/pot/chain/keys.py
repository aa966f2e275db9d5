"""Where a signing key comes from: an encrypted keystore file or an environment variable.

Keys are never stored in the repository. Order: an explicit keystore (password from
``POT_KEYSTORE_PASSWORD``, or asked for), else ``POT_PRIVATE_KEY``; on a local Anvil only, the
first dev key is the fallback.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

KEY_ENV = "POT_PRIVATE_KEY"
PASSWORD_ENV = "POT_KEYSTORE_PASSWORD"


class KeyError_(ValueError):
    """No usable key, or a keystore that does not open."""


def from_keystore(path: str | Path, password: str | None = None) -> LocalAccount:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyError_(f"keystore {path} does not exist") from None
    except ValueError:
        raise KeyError_(f"keystore {path} is not JSON") from None
    if password is None:
        password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = getpass.getpass(f"password for {path}: ")
    try:
        return Account.from_key(Account.decrypt(data, password))
    except ValueError as exc:
        raise KeyError_(f"cannot decrypt {path}: {exc}") from None


def write_keystore(account: LocalAccount, path: str | Path, password: str) -> Path:
    """Encrypt ``account`` into an eth-account (scrypt) keystore at ``path`` (mode 0600)."""
    path = Path(path)
    path.write_text(json.dumps(Account.encrypt(account.key, password)))
    path.chmod(0o600)
    return path


def load_account(keystore: str | Path | None = None, *, allow_dev_key: bool = False) -> LocalAccount:
    """The deployer/operator key: keystore, else $POT_PRIVATE_KEY, else (local Anvil) dev key 0."""
    if keystore:
        return from_keystore(keystore)
    key = os.environ.get(KEY_ENV)
    if key:
        try:
            return Account.from_key(key.strip())
        except ValueError as exc:
            raise KeyError_(f"${KEY_ENV} is not a valid private key: {exc}") from None
    if allow_dev_key:
        from pot.chain.anvil import DEV_KEYS

        return Account.from_key(DEV_KEYS[0])
    raise KeyError_(f"no key: pass --keystore FILE (password in ${PASSWORD_ENV}) or set ${KEY_ENV}")
