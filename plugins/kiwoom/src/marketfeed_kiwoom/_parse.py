"""Lenient parsing of Kiwoom rows: numbers as strings with direction signs, renamed fields.

Source: spec section 3 (body conventions) and 4 (row fields). Numbers are strings; prices
carry a direction sign relative to the previous close (``"+70100"``, ``"-78800"``) that is
stripped; signed quantities (``pred_pre``, net buying) keep it; the documented ka10086
example has double signs (``"--714"`` means ``-714``); some fields are zero-padded
(``"0000000123759593"``); empty strings mean absent.

The ka10081/ka10080 row field set changed in autumn 2025 (recorded 2025 rows carry
``upd_stkpc_tp``, ``upd_rt``, ``upd_stkpc_event``, ``pred_close_pric``...; the current guide
``pred_pre``, ``pred_pre_sig``, ``trde_tern_rt``). Both parse: unknown fields are ignored,
missing optional fields are ``None``. A row that lacks a required field or has impossible
values raises :class:`RowError` with the reason (the caller dead-letters it); nothing here
crashes on odd input.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from ._auth import KST

__all__ = [
    "Bar",
    "RowError",
    "bar_row",
    "check_ohlcv",
    "kst_date",
    "kst_datetime",
    "native_code",
    "optional",
    "signed",
    "text",
    "to_symbol",
    "unsigned",
]


_LEAD = frozenset("+-0123456789.")
_DIGITS = frozenset("0123456789")


class RowError(ValueError):
    """A row cannot become an event; ``str(error)`` is the reason."""


def text(row: Mapping[str, Any], *names: str) -> str | None:
    """The first non-empty value among ``names`` as a stripped string, else ``None``."""
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        s = value.strip() if isinstance(value, str) else str(value)
        if s:
            return s
    return None


def signed(value: Any) -> Decimal | None:
    """A signed Kiwoom number: ``"+61300"`` -> 61300, ``"-500"`` -> -500, ``"--714"`` ->
    -714 (any ``-`` among the leading signs makes it negative), ``"0000000123"`` -> 123,
    ``""``/``None`` -> ``None``.

    Raises:
        RowError: not a number.
    """
    if value.__class__ is str and value and value[0] in _LEAD and value[-1] in _DIGITS:
        try:  # fast path: one optional sign, which Decimal parses itself
            number = Decimal(value)
        except InvalidOperation:
            pass  # double signs and the like: the careful path below
        else:
            return number.copy_abs() if not number and number.is_signed() else number
    if value is None:
        return None
    if isinstance(value, bool):
        raise RowError(f"not a number: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    s = value.strip() if isinstance(value, str) else str(value)
    if not s:
        return None
    i = 0
    negative = False
    while i < len(s) and s[i] in "+-":
        negative = negative or s[i] == "-"
        i += 1
    body = s[i:]
    if not body or not (body[0].isdigit() or body[0] == "."):
        raise RowError(f"not a number: {s!r}")
    try:
        number = Decimal(body)
    except InvalidOperation:
        raise RowError(f"not a number: {s!r}") from None
    if not number.is_finite():
        raise RowError(f"not a number: {s!r}")
    return -number if negative and number else number


def unsigned(value: Any) -> Decimal | None:
    """A price with its direction sign stripped: ``"-78800"`` -> 78800 (spec section 3).

    Raises:
        RowError: not a number.
    """
    number = signed(value)
    return None if number is None else abs(number)


def kst_date(value: str | None) -> _dt.date:
    """``YYYYMMDD`` as a date.

    Raises:
        RowError: missing or malformed.
    """
    if not value or len(value) != 8 or not value.isdigit():
        raise RowError(f"bad date {value!r} (expected YYYYMMDD)")
    try:
        return _dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise RowError(f"bad date {value!r}") from None


def kst_datetime(value: str | None) -> _dt.datetime:
    """``YYYYMMDDHHmmss`` in KST as a UTC datetime.

    Raises:
        RowError: missing or malformed.
    """
    if not value or len(value) != 14 or not value.isdigit():
        raise RowError(f"bad time {value!r} (expected YYYYMMDDHHmmss)")
    try:
        local = _dt.datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        raise RowError(f"bad time {value!r}") from None
    return local.replace(tzinfo=KST).astimezone(_dt.UTC)


def native_code(symbol: str) -> str:
    """A stock code from a native or normalised symbol: ``"005930-KRW"`` -> ``"005930"``;
    ``"005930"`` and ``"005930_NX"`` are kept."""
    return symbol[:-4] if symbol.endswith("-KRW") else symbol


def to_symbol(code: str) -> str:
    """Normalised ``BASE-QUOTE`` symbol of a KRX code: ``"005930"`` -> ``"005930-KRW"``
    (the ``_NX``/``_AL`` suffix of NXT/SOR codes is kept in the base)."""
    return f"{code}-KRW"


def check_ohlcv(
    open_: Decimal, high: Decimal, low: Decimal, close: Decimal, volume: Decimal
) -> str | None:
    """The reason an OHLCV set is impossible, or ``None`` when it is plausible.

    Rejected: negative volume; negative or zero prices on a day with volume; high < low;
    open or close outside ``[low, high]``. A row with zero volume and zero open/high/low
    (no trade that day, e.g. a halted stock) is accepted as sent.
    """
    if volume < 0:
        return f"negative volume {volume}"
    if min(open_, high, low, close) < 0:
        return "negative price"
    if volume == 0 and open_ == high == low == 0:
        return None
    if high < low:
        return f"high {high} < low {low}"
    if low <= 0:
        return f"low price {low} on a traded bar"
    if not low <= open_ <= high:
        return f"open {open_} outside [low {low}, high {high}]"
    if not low <= close <= high:
        return f"close {close} outside [low {low}, high {high}]"
    return None


class Bar(NamedTuple):
    """One parsed chart row (ka10081 daily or ka10080 minute), prices unsigned.

    ``time`` is the bar date (daily: ``dt``) or bar time (minute: ``cntr_tm``, UTC).
    ``turnover`` is in million KRW (``trde_prica``; daily only). ``adjustment`` holds the
    2025 field set's adjustment markers (``upd_stkpc_tp``, ``upd_rt``, ``upd_stkpc_event``)
    when the venue filled them.
    """

    time: _dt.date | _dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: Decimal | None
    change: Decimal | None
    adjustment: dict[str, str]


_ADJUSTMENT_FIELDS = ("upd_stkpc_tp", "upd_rt", "upd_stkpc_event")


def bar_row(row: Any, *, minute: bool) -> Bar:
    """Parse one chart row, either field set (2025 recorded or current documented).

    Required: date (``dt``; ``cntr_tm`` for minute bars), close (``cur_prc``, or
    ``close_pric``), open, high, low, volume (``trde_qty``). Optional: ``trde_prica``,
    ``pred_pre`` (change vs the previous close).

    Raises:
        RowError: not an object, a required field missing or malformed, or impossible
            values (see :func:`check_ohlcv`).
    """
    if not isinstance(row, Mapping):
        raise RowError(f"row is not an object: {type(row).__name__}")
    when: _dt.date | _dt.datetime
    if minute:
        when = kst_datetime(text(row, "cntr_tm"))
    else:
        when = kst_date(text(row, "dt", "date", "stck_bsop_date"))
    values = []
    for label, names in (
        ("open", ("open_pric",)),
        ("high", ("high_pric",)),
        ("low", ("low_pric",)),
        ("close", ("cur_prc", "close_pric")),
        ("volume", ("trde_qty",)),
    ):
        raw = text(row, *names)
        if raw is None:
            raise RowError(f"missing {label} ({'/'.join(names)})")
        number = signed(raw) if label == "volume" else unsigned(raw)
        assert number is not None
        values.append(number)
    open_, high, low, close, volume = values
    reason = check_ohlcv(open_, high, low, close, volume)
    if reason:
        raise RowError(reason)
    adjustment = {k: v for k in _ADJUSTMENT_FIELDS if (v := text(row, k)) is not None}
    turnover = optional(signed, text(row, "trde_prica"))
    return Bar(
        when,
        open_,
        high,
        low,
        close,
        volume,
        None if turnover is None else abs(turnover),
        optional(signed, text(row, "pred_pre")),
        adjustment,
    )


def optional(parse: Callable[[Any], Decimal | None], value: Any) -> Decimal | None:
    """``parse(value)``, or ``None`` when the optional value is malformed."""
    try:
        return parse(value)
    except RowError:
        return None
