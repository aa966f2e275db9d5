"""Reverts decoded into the contracts' custom error names (``ChainRevert('NonceUsed', (5,))``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak


class ChainRevert(Exception):
    """A call or transaction reverted; ``error`` is the custom error name when known."""

    def __init__(self, error: str, args: tuple = (), data: str = "", message: str = ""):
        self.error = error
        self.args_ = args
        self.data = data
        super().__init__(f"{error}{args!r}" + (f": {message}" if message else ""))


def _sig(item: dict) -> str:
    def t(inp: dict) -> str:
        if inp["type"].startswith("tuple"):
            return "(" + ",".join(t(c) for c in inp["components"]) + ")" + inp["type"][5:]
        return inp["type"]

    return f"{item['name']}(" + ",".join(t(i) for i in item["inputs"]) + ")"


@lru_cache(maxsize=1)
def error_table() -> dict[bytes, tuple[str, list[str]]]:
    """Selector -> (name, input types) over every artifact's ABI (plus OpenZeppelin's, inherited)."""
    from pot.chain.compile import ARTIFACTS_DIR

    import json

    table: dict[bytes, tuple[str, list[str]]] = {}
    for path in list(ARTIFACTS_DIR.glob("*.json")) + list((ARTIFACTS_DIR / "test").glob("*.json")):
        if path.name == "stamp.json":
            continue
        for item in json.loads(path.read_text()).get("abi", []):
            if item.get("type") == "error":
                sig = _sig(item)
                types = [s for s in sig[sig.index("(") + 1:-1].split(",") if s]
                table[keccak(text=sig)[:4]] = (item["name"], types)
    table[keccak(text="Error(string)")[:4]] = ("Error", ["string"])
    table[keccak(text="Panic(uint256)")[:4]] = ("Panic", ["uint256"])
    return table


def decode_error_data(data: str | bytes) -> ChainRevert:
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else bytes(data)
    if len(raw) < 4:
        return ChainRevert("Revert", (), "0x" + raw.hex())
    entry = error_table().get(raw[:4])
    if entry is None:
        return ChainRevert("UnknownError", (), "0x" + raw.hex())
    name, types = entry
    try:
        args: tuple[Any, ...] = tuple(abi_decode(types, raw[4:])) if types else ()
    except Exception:  # noqa: BLE001 - malformed error data: keep the name
        args = ()
    return ChainRevert(name, args, "0x" + raw.hex())


def decode_revert(exc: Exception) -> ChainRevert:
    """web3's ContractCustomError / ContractLogicError -> ChainRevert with the error's name."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, (str, bytes)) and data and data != "0x":
        return decode_error_data(data)
    return ChainRevert("Revert", (), "", str(exc))
