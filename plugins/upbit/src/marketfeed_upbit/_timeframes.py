"""Upbit candle units: WebSocket ``candle.*`` types, REST candle paths, marketfeed timeframes.

Sources: Upbit Open API reference, "캔들 (Candle)" (WebSocket types ``candle.1s`` ..
``candle.240m``) and the REST quotation candles: ``/v1/candles/seconds``,
``/v1/candles/minutes/{unit}`` (unit 1, 3, 5, 10, 15, 30, 60, 240), ``/v1/candles/days``,
``/v1/candles/weeks``, ``/v1/candles/months``. Every candle time is given in UTC
(``candle_date_time_utc``); day candles start at 00:00 UTC.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import msgspec
from marketfeed import Candle

__all__ = ["TIMEFRAMES", "Timeframe", "candle_event", "period_end"]


class Timeframe(msgspec.Struct, frozen=True, kw_only=True):
    """One Upbit candle unit.

    Attributes:
        channel: marketfeed channel name (``"candle.1m"``; ``candle.1d``, ``candle.1w`` and
            ``candle.1M`` are REST-only: backfill, not streamable).
        timeframe: marketfeed timeframe (``"1m"``, ``"1h"``, ``"1d"``, ``"1M"``).
        rest_path: REST path of the candles.
        seconds: Length in seconds, ``None`` for months.
        streamable: Upbit's WebSocket offers this unit.
    """

    channel: str
    timeframe: str
    rest_path: str
    seconds: int | None
    streamable: bool


def _minutes(n: int, timeframe: str) -> Timeframe:
    return Timeframe(
        channel=f"candle.{n}m",
        timeframe=timeframe,
        rest_path=f"/v1/candles/minutes/{n}",
        seconds=60 * n,
        streamable=True,
    )


TIMEFRAMES: dict[str, Timeframe] = {
    tf.channel: tf
    for tf in (
        Timeframe(
            channel="candle.1s",
            timeframe="1s",
            rest_path="/v1/candles/seconds",
            seconds=1,
            streamable=True,
        ),
        _minutes(1, "1m"),
        _minutes(3, "3m"),
        _minutes(5, "5m"),
        _minutes(10, "10m"),
        _minutes(15, "15m"),
        _minutes(30, "30m"),
        _minutes(60, "1h"),
        _minutes(240, "4h"),
        Timeframe(
            channel="candle.1d",
            timeframe="1d",
            rest_path="/v1/candles/days",
            seconds=86400,
            streamable=False,
        ),
        Timeframe(
            channel="candle.1w",
            timeframe="1w",
            rest_path="/v1/candles/weeks",
            seconds=7 * 86400,
            streamable=False,
        ),
        Timeframe(
            channel="candle.1M",
            timeframe="1M",
            rest_path="/v1/candles/months",
            seconds=None,
            streamable=False,
        ),
    )
}
"""Channel name -> :class:`Timeframe`, shortest first."""


def period_end(tf: Timeframe, open_time: _dt.datetime) -> _dt.datetime:
    """End (exclusive) of the candle of ``tf`` that opens at ``open_time`` (UTC)."""
    if tf.seconds is not None:
        return open_time + _dt.timedelta(seconds=tf.seconds)
    year, month = divmod(open_time.month, 12)
    return open_time.replace(year=open_time.year + year, month=month + 1)


def candle_event(
    venue: str,
    sym: tuple[str, str],
    tf: Timeframe,
    row: Any,
    receive_time: _dt.datetime,
    closed_by: _dt.datetime | None,
) -> Candle:
    """A :class:`~marketfeed.Candle` from a decoded Upbit candle (WebSocket frame or REST
    row: attributes ``open_time`` (naive UTC), ``open``, ``high``, ``low``, ``close``,
    ``volume``, ``quote_volume`` and ``timestamp`` in ms).

    Args:
        sym: ``(symbol, native code)``.
        closed_by: The candle is ``closed`` when its period ended at or before this time;
            ``None`` uses the candle's own ``timestamp`` (a streamed frame's send time).
    """
    open_time = row.open_time.replace(tzinfo=_dt.UTC)
    event_time = _dt.datetime.fromtimestamp(row.timestamp / 1000, _dt.UTC)
    return Candle(
        venue=venue,
        symbol=sym[0],
        native_symbol=sym[1],
        event_time=event_time,
        receive_time=receive_time,
        timeframe=tf.timeframe,
        open_time=open_time,
        open=row.open,
        high=row.high,
        low=row.low,
        close=row.close,
        volume=row.volume,
        quote_volume=row.quote_volume,
        closed=period_end(tf, open_time) <= (closed_by or event_time),
    )
