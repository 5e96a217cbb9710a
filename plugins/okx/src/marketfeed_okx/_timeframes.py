"""OKX candle bar sizes and their normalised timeframes.

Source: OKX API v5, "Market data > Get candlesticks" (``bar``) and "WebSocket >
Candlesticks channel" (``candle<bar>`` on ``/ws/v5/business``). Bars of 6 hours and
longer come in two alignments: plain (``6H``, ``1D``, ...) opens at Hong Kong time
(UTC+8) boundaries, the ``utc`` variants (``6Hutc``, ``1Dutc``, ...) at UTC boundaries.
Shorter bars align the same either way (UTC+8 midnight is 16:00 UTC, a multiple of 1, 2
and 4 hours), so they carry no offset.

Normalised timeframe (``Candle.timeframe``): ``<n><unit>`` with ``s m h d w M``, plus
``+08:00`` when OKX aligns the bar to Hong Kong time: ``1H`` -> ``"1h"``,
``1Dutc`` -> ``"1d"``, ``1D`` -> ``"1d+08:00"``.
"""

from __future__ import annotations

import datetime as _dt

__all__ = ["BARS", "bar_duration", "normalise_timeframe"]

_HK = "+08:00"

_UNITS = {"s": 1, "m": 60, "H": 3600, "D": 86400, "W": 7 * 86400, "M": 31 * 86400}
_NORMAL_UNIT = {"s": "s", "m": "m", "H": "h", "D": "d", "W": "w", "M": "M"}

_BASE_BARS = ("1s", "1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H")
_ALIGNED_BARS = ("6H", "12H", "1D", "2D", "3D", "1W", "1M", "3M")

BARS: tuple[str, ...] = _BASE_BARS + _ALIGNED_BARS + tuple(f"{b}utc" for b in _ALIGNED_BARS)
"""Every OKX bar size, e.g. ``"1m"``, ``"1H"``, ``"1D"``, ``"1Dutc"``."""

_TIMEFRAMES_SET = frozenset(BARS)


def _split(bar: str) -> tuple[int, str, bool]:
    utc = bar.endswith("utc")
    core = bar[:-3] if utc else bar
    if bar not in _TIMEFRAMES_SET:
        raise ValueError(f"unknown OKX bar {bar!r}; known: {', '.join(BARS)}")
    return int(core[:-1]), core[-1], utc


def _normalise(bar: str) -> str:
    n, unit, utc = _split(bar)
    suffix = "" if utc or bar in _BASE_BARS else _HK
    return f"{n}{_NORMAL_UNIT[unit]}{suffix}"


_TIMEFRAMES = {bar: _normalise(bar) for bar in BARS}


def normalise_timeframe(bar: str) -> str:
    """The normalised timeframe of an OKX bar size (``"1D"`` -> ``"1d+08:00"``).

    Raises:
        ValueError: ``bar`` is not an OKX bar size.
    """
    try:
        return _TIMEFRAMES[bar]
    except KeyError:
        raise ValueError(f"unknown OKX bar {bar!r}; known: {', '.join(BARS)}") from None


def bar_duration(bar: str) -> _dt.timedelta:
    """Length of one bar; months count as 31 days (an upper bound, for windows).

    Raises:
        ValueError: ``bar`` is not an OKX bar size.
    """
    n, unit, _ = _split(bar)
    return _dt.timedelta(seconds=n * _UNITS[unit])
