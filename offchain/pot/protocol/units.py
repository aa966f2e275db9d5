"""Token amounts as people write them: ``"12.5 POT"`` in, ``"12.5 POT"`` out.

The chain and the ledger count token wei (PoTToken has 18 decimals); a person counts POT. Every
command parses and prints amounts through these two functions, so ``pot stake add 2.5`` and the
``2.5 POT`` that ``pot wallet balance`` prints mean the same thing, and nothing rounds: an amount
with more than 18 decimals is refused, never cut.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

DECIMALS = 18
TOKEN = 10**DECIMALS
#: the chain's native token (gas): ETH on Anvil, BNB on BSC; also 18 decimals
NATIVE_DECIMALS = 18


def parse_amount(value: Any, where: str = "amount", *, default_unit: str = "wei") -> int:
    """Token wei from an int or a string: ``"250"``, ``"1.5e20"``, ``"100 POT"``, ``"12.5 POT"``,
    ``"3 wei"``. A bare number is in ``default_unit`` (``"wei"`` in config files, where amounts were
    always wei; ``"POT"`` on the command line, where a person types ``pot stake add 12.5``).
    ``ValueError`` names ``where`` and shows what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected an amount, got {value!r}")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str):
        text = value.strip().replace("_", "").replace(",", "")
        unit = default_unit
        for suffix in ("POT", "WEI"):
            if text.upper().endswith(suffix):
                text, unit = text[: -len(suffix)].strip(), suffix.lower()
                break
        scale = TOKEN if unit.lower() == "pot" else 1
        try:
            d = Decimal(text) * scale
        except InvalidOperation:
            raise ValueError(f"{where}: {value!r} is not an amount (e.g. '12.5 POT', '100 POT', or wei: "
                             "250, 1.5e20)") from None
        if not d.is_finite():
            raise ValueError(f"{where}: {value!r} is not an amount")
        if d != d.to_integral_value():
            raise ValueError(f"{where}: {value!r} has more than {DECIMALS} decimals: POT has {DECIMALS}"
                             if scale == TOKEN else f"{where}: {value!r} is not a whole number of token wei")
        amount = int(d)
    else:
        raise ValueError(f"{where}: expected an amount, got {type(value).__name__}")
    if amount < 0:
        raise ValueError(f"{where}: must not be negative")
    return amount


def format_amount(wei: int, unit: str = "POT", decimals: int = DECIMALS) -> str:
    """``12500000000000000000`` -> ``"12.5 POT"``: exact (no float), thousands separated, no
    trailing zeros; a negative amount keeps its sign."""
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(int(wei)), 10**decimals)
    text = f"{whole:,}"
    if frac:
        text += "." + f"{frac:0{decimals}d}".rstrip("0")
    return f"{sign}{text} {unit}" if unit else sign + text


def format_pot(wei: int) -> str:
    """An amount of POT for people: ``"80 POT"``, ``"1.25 POT"``."""
    return format_amount(wei, "POT")


def format_native(wei: int, symbol: str = "ETH") -> str:
    """The chain's own coin (gas money), e.g. ``"10,000 ETH"``."""
    return format_amount(wei, symbol, NATIVE_DECIMALS)
