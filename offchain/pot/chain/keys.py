"""Where a signing key comes from: the one key loader every command and worker uses.

Keys are never stored in the repository, and never printed unless a command is asked to with an
explicit flag (``pot wallet new --show-private-key``). In order:

1. a keystore: ``keystore`` is a file path or the name of a file in the keystore directory
   (``$POT_KEYSTORE_DIR``, default ``~/.pot/keystores``; ``pot wallet new NAME`` writes one there).
   Its password comes from ``password_file``, else ``$POT_KEYSTORE_PASSWORD``, else a prompt when
   a terminal is attached;
2. else the private key in ``$POT_PRIVATE_KEY`` (or the variable ``key_env`` names);
3. else, only where the caller allows it (a local Anvil the command started itself), dev key 0.

Every failure is a :class:`KeyLoadError` whose message says what to do about it.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

KEY_ENV = "POT_PRIVATE_KEY"
PASSWORD_ENV = "POT_KEYSTORE_PASSWORD"
KEYSTORE_DIR_ENV = "POT_KEYSTORE_DIR"
DEFAULT_KEYSTORE_DIR = "~/.pot/keystores"


class KeyLoadError(ValueError):
    """No usable key, or a keystore that does not open; the message says how to fix it."""


def keystore_dir(path: str | os.PathLike | None = None) -> Path:
    """The keystore directory: ``path``, else ``$POT_KEYSTORE_DIR``, else ``~/.pot/keystores``."""
    chosen = path or os.environ.get(KEYSTORE_DIR_ENV) or DEFAULT_KEYSTORE_DIR
    return Path(os.path.expanduser(str(chosen)))


def resolve_keystore(keystore: str | os.PathLike, directory: str | os.PathLike | None = None) -> Path:
    """A keystore named by path, or by name in the keystore directory (``miner`` ->
    ``~/.pot/keystores/miner.json``)."""
    path = Path(os.path.expanduser(str(keystore)))
    if path.exists() or path.parent != Path(".") or path.suffix == ".json":
        return path
    named = keystore_dir(directory) / f"{path.name}.json"
    return named if named.exists() else path


def list_keystores(directory: str | os.PathLike | None = None) -> list[tuple[str, str | None, Path]]:
    """(name, address or None when unreadable, path) of every keystore in the directory, by name.
    The address is read from the file; nothing is decrypted."""
    d = keystore_dir(directory)
    out = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            address = json.loads(p.read_text()).get("address")
            address = "0x" + address.removeprefix("0x") if isinstance(address, str) else None
        except (OSError, ValueError, AttributeError):
            address = None
        out.append((p.stem, address, p))
    return out


def read_password(path: Path, password_file: str | os.PathLike | None = None, *, prompt: bool = True) -> str:
    """The password of keystore ``path``: the file, else ``$POT_KEYSTORE_PASSWORD``, else asked for
    on the terminal. Without any of them: a KeyLoadError that names all three."""
    if password_file:
        try:
            return Path(os.path.expanduser(str(password_file))).read_text().rstrip("\r\n")
        except OSError as exc:
            raise KeyLoadError(f"cannot read the password file {password_file}: {exc.strerror or exc}") from None
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env
    if prompt and sys.stdin.isatty():
        return getpass.getpass(f"password for {path}: ")
    raise KeyLoadError(f"keystore {path} needs its password: set ${PASSWORD_ENV}, pass --password-file FILE, "
                       "or run in a terminal to be asked")


def from_keystore(path: str | os.PathLike, password: str | None = None, *,
                  password_file: str | os.PathLike | None = None, prompt: bool = True) -> LocalAccount:
    """Decrypt one keystore file (eth-account's, as geth, cast and MetaMask write them)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyLoadError(f"keystore {path} does not exist: create one with `pot wallet new`, see yours with "
                           "`pot wallet list`") from None
    except IsADirectoryError:
        raise KeyLoadError(f"keystore {path} is a directory: name a keystore file in it") from None
    except (OSError, ValueError) as exc:
        raise KeyLoadError(f"{path} is not a keystore (not readable JSON: {exc})") from None
    if not isinstance(data, dict) or "crypto" not in {k.lower() for k in data}:
        raise KeyLoadError(f"{path} is not a keystore (no 'crypto' section)")
    if password is None:
        password = read_password(path, password_file, prompt=prompt)
    try:
        return Account.from_key(Account.decrypt(data, password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeyLoadError(f"wrong password for keystore {path}: give its password in ${PASSWORD_ENV} "
                               "or --password-file") from None
        raise KeyLoadError(f"cannot decrypt keystore {path}: {exc}") from None


def write_keystore(account: LocalAccount, path: str | os.PathLike, password: str, *,
                   overwrite: bool = False, iterations: int | None = None) -> Path:
    """Encrypt ``account`` into an eth-account (scrypt) keystore at ``path``, mode 0600, created
    exclusively unless ``overwrite`` (a key is never lost to a name clash). ``iterations``: the
    scrypt cost (default eth-account's 2**18; devnets use less)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = json.dumps(Account.encrypt(account.key, password, kdf="scrypt", iterations=iterations)
                     if iterations else Account.encrypt(account.key, password))
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyLoadError(f"{path} exists already: choose another name (a keystore is never overwritten)") from None
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(doc)
    return path


def parse_private_key(key: str, where: str = "private key") -> LocalAccount:
    try:
        return Account.from_key(key.strip())
    except (ValueError, TypeError) as exc:
        raise KeyLoadError(f"{where} is not a valid private key (32 bytes of hex): {exc}") from None


def load_account(keystore: str | os.PathLike | None = None, *, password_file: str | os.PathLike | None = None,
                 key_env: str = KEY_ENV, allow_dev_key: bool = False, prompt: bool = True) -> LocalAccount:
    """The signing key: keystore (path or name), else ``$<key_env>``, else (local Anvil) dev key 0."""
    if keystore:
        path = resolve_keystore(keystore)
        if not path.exists() and path.parent == Path(".") and path.suffix != ".json":
            raise KeyLoadError(f"no keystore {keystore!r} here nor in {keystore_dir()}: create it with "
                               f"`pot wallet new {keystore}`, see yours with `pot wallet list`")
        return from_keystore(path, password_file=password_file, prompt=prompt)
    key = os.environ.get(key_env)
    if key:
        return parse_private_key(key, f"${key_env}")
    if allow_dev_key:
        from pot.chain.anvil import DEV_KEYS

        return Account.from_key(DEV_KEYS[0])
    raise KeyLoadError(f"no key: pass --keystore NAME or FILE (`pot wallet new NAME` creates one) or set ${key_env}")
