"""Content-addressed storage of models, data sets, task specs and cycle records (ARCHITECTURE.md §5).

One interface, :class:`ContentStore`, and its backends:

- :class:`EmbeddedStore`: blocks in a local directory, the default; no daemon needed.
- :class:`KuboStore`: a client of an IPFS node's Kubo RPC API (Kubo, or js-ipfs in the tests).
- :class:`HttpGatewayStore`: read-only fetches from a gateway, e.g. a miner's ``pot storage serve``.

All compute the CID ``ipfs add`` gives (CIDv1 with raw leaves by default, CIDv0 on request), so a
file keeps its CID when its owner moves to a real IPFS node; every read is verified against the
CID it asked for and bounded by a size limit. Use :func:`open_store` to pick a backend from a
string such as a directory, ``http://127.0.0.1:5001`` or ``gateway+http://host:8080``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import DEFAULT_MAX_SIZE, ContentStore
from .cid import CID, parse_cid
from .embedded import EmbeddedStore
from .errors import CorruptObject, InvalidCid, NotFound, StorageError, TooLarge, Unsupported
from .unixfs import CHUNK_SIZE, MAX_LINKS, Importer, compute_cid

__all__ = [
    "CHUNK_SIZE", "CID", "DEFAULT_MAX_SIZE", "MAX_LINKS", "ContentStore", "CorruptObject",
    "EmbeddedStore", "HttpGatewayStore", "Importer", "InvalidCid", "KuboStore", "MirroredStore", "NotFound",
    "StorageError", "TooLarge", "Unsupported", "compute_cid", "compute_file_cid", "follow_mirrors", "open_store",
    "parse_cid",
]


def __getattr__(name: str):
    # httpx is imported only by the users of remote backends.
    if name in ("KuboStore", "HttpGatewayStore"):
        from . import kubo
        return getattr(kubo, name)
    if name == "MirroredStore":
        from .mirror import MirroredStore
        return MirroredStore
    raise AttributeError(name)


def compute_file_cid(path, cid_version: int = 1) -> str:
    """The CID ``ipfs add`` would give the file at ``path``, computed streaming, nothing stored."""
    imp = Importer(cid_version)
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            imp.update(chunk)
    return str(imp.finish())


def follow_mirrors(store: ContentStore, urls: Sequence[str]) -> None:
    """Fetch what ``store`` lacks from ``urls`` from now on (the committee's APIs after a
    committee change), if it is a :class:`MirroredStore` of gateways."""
    from .kubo import HttpGatewayStore
    from .mirror import STALL_S, MirroredStore

    if isinstance(store, MirroredStore) and all(isinstance(r, HttpGatewayStore) for r in store.remotes):
        have = [getattr(r, "base_url", "").rstrip("/") for r in store.remotes]
        if have != [u.rstrip("/") for u in urls]:
            store.set_remotes([HttpGatewayStore(u, max_size=store.max_size, timeout=STALL_S) for u in urls])


def open_store(location: str | None = None, *, max_size: int = DEFAULT_MAX_SIZE,
               mirrors: Sequence[str] = ()) -> ContentStore:
    """A store from one string, as found in a config file or a ``--store`` option.

    ``http(s)://…``: a Kubo RPC API; ``gateway+http(s)://…``: a read-only gateway; anything else a
    directory for an :class:`EmbeddedStore` (default ``$POT_STORE`` or ``~/.pot/store``).
    ``mirrors``: gateways (``/ipfs/<cid>``, e.g. the committee's API URLs) that what the store
    lacks is fetched from, verified, and kept (:class:`MirroredStore`).
    """
    import os

    location = location or os.environ.get("POT_STORE") or os.path.expanduser("~/.pot/store")
    store: ContentStore
    if location.startswith("gateway+"):
        from .kubo import HttpGatewayStore
        store = HttpGatewayStore(location[len("gateway+"):], max_size=max_size)
    elif location.startswith(("http://", "https://")):
        from .kubo import KuboStore
        store = KuboStore(location, max_size=max_size)
    else:
        store = EmbeddedStore(os.path.expanduser(location), max_size=max_size)
    if mirrors:
        from .kubo import HttpGatewayStore
        from .mirror import STALL_S, MirroredStore
        store = MirroredStore(store, [HttpGatewayStore(u, max_size=max_size, timeout=STALL_S) for u in mirrors])
    return store
