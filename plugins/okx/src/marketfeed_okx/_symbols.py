"""OKX instrument ids: normalised symbols, instrument kinds, and REST instrument rows.

OKX ``instId`` values are already readable ``BASE-QUOTE`` forms, with a suffix for
derivatives (source: OKX API v5, "Public data > Get instruments"):

=================================  ==========  ==========================================
``instId``                         kind        meaning
=================================  ==========  ==========================================
``BTC-USDT``                       spot        BTC quoted in USDT
``BTC-USDT-SWAP``                  swap        perpetual, USDT-margined (linear)
``BTC-USD-SWAP``                   swap        perpetual, coin-margined (inverse)
``BTC-USD-220527``                 futures     expires 2022-05-27 08:00 UTC
``BTC-USD-210924-42000-P``         option      put, strike 42000, expires 2021-09-24
=================================  ==========  ==========================================

So the normalised symbol is the ``instId`` itself (upper-cased): it already starts with
``BASE-QUOTE`` and keeps the derivative suffix readable. ``native_symbol`` is the
``instId`` exactly as OKX sent it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from marketfeed import Instrument, InstrumentKind

__all__ = [
    "InstrumentId",
    "instrument_from_rest",
    "instrument_kind",
    "normalise_symbol",
    "parse_inst_id",
]

_KIND_BY_INST_TYPE: dict[str, InstrumentKind] = {
    "SPOT": "spot",
    "MARGIN": "spot",
    "SWAP": "swap",
    "FUTURES": "futures",
    "OPTION": "option",
}

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class InstrumentId:
    """The parts of an OKX ``instId``.

    Attributes:
        inst_id: The id as given.
        kind: ``spot``, ``swap``, ``futures`` or ``option`` (``other`` if unrecognised).
        base, quote: ``BTC`` and ``USDT`` of ``BTC-USDT-SWAP``.
        expiry_code: ``YYMMDD`` of futures and options, else ``None``.
        strike: Option strike as a string, else ``None``.
        option_type: ``"C"`` or ``"P"`` for options, else ``None``.
    """

    __slots__ = ("base", "expiry_code", "inst_id", "kind", "option_type", "quote", "strike")

    def __init__(self, inst_id: str) -> None:
        self.inst_id = inst_id
        parts = inst_id.split("-")
        self.base = parts[0]
        self.quote = parts[1] if len(parts) > 1 else ""
        self.expiry_code: str | None = None
        self.strike: str | None = None
        self.option_type: str | None = None
        kind: InstrumentKind = "other"
        if len(parts) == 2:
            kind = "spot"
        elif len(parts) == 3 and parts[2] == "SWAP":
            kind = "swap"
        elif len(parts) == 3 and parts[2].isdigit() and len(parts[2]) == 6:
            kind = "futures"
            self.expiry_code = parts[2]
        elif len(parts) == 5 and parts[4] in ("C", "P") and parts[2].isdigit():
            kind = "option"
            self.expiry_code = parts[2]
            self.strike = parts[3]
            self.option_type = parts[4]
        self.kind = kind

    def __repr__(self) -> str:
        return f"InstrumentId({self.inst_id!r}, kind={self.kind!r})"


def parse_inst_id(inst_id: str) -> InstrumentId:
    """Split an OKX ``instId`` into base, quote, kind and derivative details.

    Never raises: an id of an unknown shape gets kind ``"other"``.
    """
    return InstrumentId(inst_id)


def normalise_symbol(inst_id: str) -> str:
    """The normalised symbol of an OKX ``instId``: the id itself, upper-cased.

    ``BTC-USDT`` -> ``BTC-USDT``; ``btc-usdt-swap`` -> ``BTC-USDT-SWAP``;
    ``BTC-USD-210924-42000-P`` stays as is.

    Raises:
        ValueError: ``inst_id`` is not of the ``BASE-QUOTE[...]`` shape.
    """
    if inst_id.count("-") < 1 or inst_id.startswith("-") or "--" in inst_id:
        raise ValueError(f"not an OKX instId: {inst_id!r}")
    return inst_id.upper()


def instrument_kind(inst_type: str | None, inst_id: str) -> InstrumentKind:
    """Instrument kind from OKX ``instType`` (``SPOT``, ``MARGIN``, ``SWAP``,
    ``FUTURES``, ``OPTION``), falling back to the shape of ``inst_id``."""
    if inst_type:
        kind = _KIND_BY_INST_TYPE.get(inst_type.upper())
        if kind is not None:
            return kind
    return InstrumentId(inst_id).kind


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a decimal: {value!r}") from None


def _ms(value: Any) -> _dt.datetime | None:
    if value is None or value == "":
        return None
    return _EPOCH + _dt.timedelta(milliseconds=int(value))


_CORE_KEYS = frozenset(
    {
        "instId",
        "instType",
        "baseCcy",
        "quoteCcy",
        "settleCcy",
        "tickSz",
        "lotSz",
        "minSz",
        "ctVal",
        "expTime",
        "stk",
        "optType",
        "state",
    }
)


def instrument_from_rest(
    row: Mapping[str, Any], *, as_of: _dt.datetime, venue: str = "okx"
) -> Instrument:
    """One ``data`` row of ``GET /api/v5/public/instruments`` as an :class:`Instrument`.

    Base and quote come from ``baseCcy``/``quoteCcy`` (spot), else from ``instFamily`` or
    ``uly`` (``BTC-USD``), else from the ``instId``. Decimals are exact (``tickSz``,
    ``lotSz``, ``minSz``, ``ctVal``, ``stk``); ``""`` means absent. ``expTime`` (epoch ms)
    becomes a UTC ``expiry``. Other non-empty keys are kept as strings in ``extra``.

    Source: OKX API v5, "Public data > REST API > Get instruments".

    Raises:
        ValueError: ``instId`` is missing or a numeric field is not a decimal.
    """
    inst_id = row.get("instId")
    if not isinstance(inst_id, str) or not inst_id:
        raise ValueError(f"instrument row without instId: {dict(row)!r}")
    parsed = InstrumentId(inst_id)
    base = row.get("baseCcy") or None
    quote = row.get("quoteCcy") or None
    family = row.get("instFamily") or row.get("uly") or ""
    if (base is None or quote is None) and family.count("-") == 1:
        fam_base, fam_quote = family.split("-")
        base = base or fam_base
        quote = quote or fam_quote
    base = base or parsed.base or None
    quote = quote or parsed.quote or None
    extra = {
        key: str(value)
        for key, value in row.items()
        if key not in _CORE_KEYS and value not in ("", None)
    }
    return Instrument(
        venue=venue,
        symbol=normalise_symbol(inst_id),
        native_symbol=inst_id,
        kind=instrument_kind(row.get("instType"), inst_id),
        as_of=as_of,
        base=base,
        quote=quote,
        settle=row.get("settleCcy") or None,
        tick_size=_dec(row.get("tickSz")),
        lot_size=_dec(row.get("lotSz")),
        min_size=_dec(row.get("minSz")),
        contract_value=_dec(row.get("ctVal")),
        expiry=_ms(row.get("expTime")),
        strike=_dec(row.get("stk")),
        option_type=row.get("optType") or None,
        status=row.get("state") or None,
        extra=extra,
    )
