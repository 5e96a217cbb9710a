"""Upbit market codes <-> marketfeed symbols.

Upbit writes markets quote first: ``KRW-BTC`` is bitcoin quoted in won, ``BTC-ETH`` is ether
quoted in bitcoin, ``USDT-ADA`` is ADA quoted in tether. marketfeed symbols are
``BASE-QUOTE``, so ``KRW-BTC`` becomes ``BTC-KRW`` and the native code is kept beside it.

Source: Upbit Open API, "페어 목록 조회" (``GET /v1/market/all``): ``market`` is
``{quote}-{base}``.
"""

from __future__ import annotations

__all__ = ["QUOTE_CURRENCIES", "split_market", "to_native", "to_symbol"]

QUOTE_CURRENCIES: tuple[str, ...] = ("KRW", "BTC", "USDT")
"""Upbit's quote markets (Korea): won, bitcoin and tether."""


def split_market(native: str) -> tuple[str, str]:
    """Split an Upbit market code into ``(base, quote)``: ``"KRW-BTC"`` -> ``("BTC", "KRW")``.

    An orderbook unit suffix (``"KRW-BTC.15"``, Upbit's way to ask for 15 levels) is ignored.

    Raises:
        ValueError: ``native`` is not ``QUOTE-BASE`` with two non-empty upper-case parts.
    """
    code = native.partition(".")[0]
    quote, sep, base = code.partition("-")
    if not sep or not quote or not base or "-" in base or code != code.upper():
        raise ValueError(f"not an Upbit market code (QUOTE-BASE, upper case): {native!r}")
    return base, quote


def to_symbol(native: str) -> str:
    """Normalised ``BASE-QUOTE`` symbol of an Upbit market: ``"BTC-ETH"`` -> ``"ETH-BTC"``.

    Raises:
        ValueError: ``native`` is not an Upbit market code.
    """
    base, quote = split_market(native)
    return f"{base}-{quote}"


def to_native(symbol: str) -> str:
    """Upbit market code of a normalised symbol: ``"BTC-KRW"`` -> ``"KRW-BTC"``.

    Raises:
        ValueError: ``symbol`` is not ``BASE-QUOTE``.
    """
    base, sep, quote = symbol.partition("-")
    if not sep or not base or not quote or "-" in quote:
        raise ValueError(f"not a BASE-QUOTE symbol: {symbol!r}")
    return f"{quote}-{base}"
