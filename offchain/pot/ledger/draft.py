"""Copy-on-write views of the ledger's JSON state: run an op against the real state without
changing it (``Ledger.precheck``).

A ``Draft`` reads through to its base container; the first write copies that one container
(shallowly) and writes into the copy. Every dict or list read through a draft is itself a
draft, so no write can reach the base at any depth, and an op pays only for the containers it
writes to (an order record, a node), never for the whole state.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, MutableSequence
from typing import Any


def draft(value: Any) -> Any:
    """``value`` itself, or a copy-on-write view when it is a dict or a list."""
    if type(value) is dict:
        return DraftDict(value)
    if type(value) is list:
        return DraftList(value)
    return value


class DraftDict(MutableMapping):
    __slots__ = ("_base", "_own", "_kids")

    def __init__(self, base: dict) -> None:
        self._base = base
        self._own: dict | None = None
        self._kids: dict[Any, Any] = {}

    def _data(self) -> dict:
        return self._base if self._own is None else self._own

    def _write(self) -> dict:
        if self._own is None:
            self._own = dict(self._base)
        return self._own

    def __getitem__(self, key: Any) -> Any:
        kid = self._kids.get(key)
        if kid is not None:
            return kid
        value = self._data()[key]
        if type(value) is dict or type(value) is list:
            value = self._kids[key] = draft(value)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._write()[key] = value
        self._kids.pop(key, None)

    def __delitem__(self, key: Any) -> None:
        del self._write()[key]
        self._kids.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._data()

    def __iter__(self) -> Iterator:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


class DraftList(MutableSequence):
    __slots__ = ("_base", "_own")

    def __init__(self, base: list) -> None:
        self._base = base
        self._own: list | None = None

    def _write(self) -> list:
        if self._own is None:
            # items that are containers become drafts of their own: the copy must not alias them
            self._own = [draft(v) for v in self._base]
        return self._own

    def __getitem__(self, i: Any) -> Any:
        if self._own is None and _holds_containers(self._base):
            self._write()
        return (self._base if self._own is None else self._own)[i]

    def __setitem__(self, i: Any, value: Any) -> None:
        self._write()[i] = value

    def __delitem__(self, i: Any) -> None:
        del self._write()[i]

    def __len__(self) -> int:
        return len(self._base if self._own is None else self._own)

    def insert(self, i: int, value: Any) -> None:
        self._write().insert(i, value)


def _holds_containers(items: list) -> bool:
    return any(type(v) is dict or type(v) is list for v in items)
