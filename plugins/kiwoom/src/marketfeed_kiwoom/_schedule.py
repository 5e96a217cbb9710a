"""Scheduled jobs (APScheduler in the supervisor, KST) and the KRX trading-day predicate.

Jobs (default crons below, Monday to Friday, KST; ``[[schedules]] cron`` overrides):

* ``daily_bars`` at ``close_time`` (15:30 KST) on trading days: ka10081 raw + adjusted.
* ``investor_flows`` at ``close_time``: ka10059 amounts and quantities (+ ka10086).
* ``minute_bars`` at ``close_time``: the day's ka10080 bars.
* ``instruments`` at ``morning_time`` (08:00 KST): ka10099 lists of ``markets`` and
  ka10001 basic info of ``symbols``.

Job options (``[[schedules]] options``): ``symbols`` (list), ``days`` (lookback in calendar
days), ``date`` (``"YYYY-MM-DD"``, the KST day to collect; default today), ``markets``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import holidays
import msgspec
from marketfeed import Event, Instrument, Job, VenueContext

from ._auth import KST
from ._client import KiwoomClient, Priority, client_for, config_of
from ._config import KiwoomConfig
from ._data import (
    basic_info,
    daily_bars,
    daily_trading,
    investor_flows,
    merge_flows,
    minute_bars,
    stock_list,
)
from ._errors import KiwoomError
from ._parse import native_code

__all__ = ["TIMEZONE", "cron_at", "jobs_for", "trading_day"]

TIMEZONE = "Asia/Seoul"
_log = logging.getLogger("marketfeed.venue.kiwoom.schedule")


@functools.cache
def _krx_calendar() -> holidays.HolidayBase:
    try:
        return holidays.financial_holidays("XKRX")
    except (NotImplementedError, KeyError, AttributeError):  # older holidays releases
        _log.warning("holidays has no XKRX calendar; using South Korean public holidays")
        return holidays.country_holidays("KR")


def trading_day(day: _dt.date) -> bool:
    """Whether KRX trades on ``day`` (KST calendar date): not a weekend and not a KRX
    holiday per the maintained ``holidays`` package (``financial_holidays("XKRX")``, which
    includes exchange-only closures such as the year-end day; South Korean public holidays
    if the release lacks XKRX)."""
    return day.weekday() < 5 and day not in _krx_calendar()


def cron_at(hhmm: str) -> str:
    """A weekday crontab at ``HH:MM``: ``cron_at("15:30") == "30 15 * * mon-fri"``.

    Raises:
        ValueError: not ``HH:MM`` (24 h).
    """
    parsed = _dt.time.fromisoformat(hhmm)
    return f"{parsed.minute} {parsed.hour} * * mon-fri"


def _today() -> _dt.date:
    return _dt.datetime.now(KST).date()


def _day(options: Mapping[str, Any]) -> _dt.date:
    value = options.get("date")
    if value is None:
        return _today()
    if isinstance(value, _dt.date):
        return value
    return _dt.date.fromisoformat(str(value))


def _symbols(options: Mapping[str, Any], config: KiwoomConfig) -> list[str]:
    symbols = options.get("symbols", config.symbols)
    if isinstance(symbols, str):
        symbols = [symbols]
    return [native_code(str(s)) for s in symbols]


PerSymbol = Callable[[KiwoomClient, str, _dt.date, _dt.date, int], Awaitable[list[Event]]]


async def _per_symbol(
    context: VenueContext,
    options: Mapping[str, Any],
    description: str,
    fetch: PerSymbol,
) -> AsyncIterator[Sequence[Event]]:
    config = config_of(context)
    client = client_for(context)
    symbols = _symbols(options, config)
    end = _day(options)
    days = int(options.get("days", config.daily_lookback_days))
    start = end - _dt.timedelta(days=max(days - 1, 0))
    priority = Priority.BULK if days > 31 else Priority.NORMAL
    progress = context.progress(description, len(symbols))
    failures: list[KiwoomError] = []
    try:
        async with client.lease():
            for code in symbols:
                try:
                    events = await fetch(client, code, start, end, priority)
                except KiwoomError as exc:
                    failures.append(exc)
                    _log.error("kiwoom %s failed for %s: %s", description, code, exc)
                    events = []
                progress.advance()
                if events:
                    yield events
    finally:
        progress.close()
    if symbols and len(failures) == len(symbols):
        raise failures[-1]


async def _fetch_daily(
    client: KiwoomClient, code: str, start: _dt.date, end: _dt.date, priority: int
) -> list[Event]:
    return await daily_bars(client, code, start=start, end=end, priority=priority)


def _fetch_flows(sources: Sequence[str]) -> PerSymbol:
    async def fetch(
        client: KiwoomClient, code: str, start: _dt.date, end: _dt.date, priority: int
    ) -> list[Event]:
        events: list[Event] = []
        for measure in ("amount", "quantity"):
            primary: list[Event] = []
            if "ka10059" in sources:
                primary = await investor_flows(
                    client, code, start=start, end=end, measure=measure, priority=priority
                )
            if "ka10086" in sources:
                extra = await daily_trading(
                    client, code, start=start, end=end, measure=measure, priority=priority
                )
                primary = merge_flows(primary, extra)
            events.extend(primary)
        return events

    return fetch


async def run_daily_bars(
    context: VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[Event]]:
    """Job ``daily_bars``: :func:`daily_bars` for every symbol, one batch per symbol."""
    async for batch in _per_symbol(context, options, "kiwoom daily bars", _fetch_daily):
        yield batch


async def run_investor_flows(
    context: VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[Event]]:
    """Job ``investor_flows``: ka10059 amounts (million KRW) and quantities (shares) for
    every symbol (+ ka10086 when in ``flow_sources``), one batch per symbol."""
    fetch = _fetch_flows(config_of(context).flow_sources)
    async for batch in _per_symbol(context, options, "kiwoom investor flows", fetch):
        yield batch


async def run_minute_bars(
    context: VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[Event]]:
    """Job ``minute_bars``: the KST day's ``minute_scope`` bars (ka10080) per symbol."""
    scope = int(options.get("scope", config_of(context).minute_scope))

    async def fetch(
        client: KiwoomClient, code: str, start: _dt.date, end: _dt.date, priority: int
    ) -> list[Event]:
        since = _dt.datetime.combine(start, _dt.time(), KST).astimezone(_dt.UTC)
        return await minute_bars(
            client, code, scope=scope, since=since, base_dt=end, priority=priority
        )

    merged = {"days": 1, **options}
    async for batch in _per_symbol(context, merged, "kiwoom minute bars", fetch):
        yield batch


async def run_instruments(
    context: VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[Event]]:
    """Job ``instruments``: the ka10099 list of every market in ``markets`` (one batch per
    market), then ka10001 basic info of ``symbols`` merged with their list entry."""
    config = config_of(context)
    client = client_for(context)
    markets = [str(m) for m in options.get("markets", config.markets)]
    symbols = _symbols(options, config)
    listed: dict[str, Instrument] = {}
    progress = context.progress("kiwoom instruments", len(markets) + len(symbols))
    try:
        async with client.lease():
            for market in markets:
                try:
                    events = await stock_list(client, market)
                except KiwoomError as exc:
                    _log.error("kiwoom stock list of market %s failed: %s", market, exc)
                    events = []
                for event in events:
                    if isinstance(event, Instrument):
                        listed[event.native_symbol] = event
                progress.advance()
                if events:
                    yield events
            batch: list[Event] = []
            for code in symbols:
                try:
                    info = await basic_info(client, code)
                except KiwoomError as exc:
                    _log.error("kiwoom basic info of %s failed: %s", code, exc)
                    progress.advance()
                    continue
                batch.append(_merge_instrument(listed.get(code), info))
                progress.advance()
            if batch:
                yield batch
    finally:
        progress.close()


def _merge_instrument(listed: Instrument | None, info: Instrument) -> Instrument:
    if listed is None:
        return info
    return msgspec.structs.replace(
        listed,
        name=info.name or listed.name,
        status=info.status if info.status == "delisted" else listed.status,
        as_of=info.as_of,
        extra={**listed.extra, **info.extra},
    )


def jobs_for(close_time: str = "15:30", morning_time: str = "08:00") -> tuple[Job, ...]:
    """The venue's jobs: after-close jobs at ``close_time`` and ``instruments`` at
    ``morning_time`` (KST ``HH:MM``, Monday to Friday), each with the :func:`trading_day`
    predicate. Under the supervisor, change a time with ``[[schedules]] cron``.

    Raises:
        ValueError: a time is not ``HH:MM``.
    """
    close, morning = cron_at(close_time), cron_at(morning_time)
    table = (
        ("daily_bars", "ka10081 daily bars, raw OHLCV + adjustment factor, after the close",
         close, run_daily_bars),
        ("investor_flows", "ka10059 net buying by investor type (million KRW and shares)",
         close, run_investor_flows),
        ("minute_bars", "ka10080 minute bars of the day, after the close", close,
         run_minute_bars),
        ("instruments", "ka10099 stock and ETF lists + ka10001 basic info, each morning",
         morning, run_instruments),
    )  # fmt: skip
    return tuple(
        Job(
            name=name,
            description=description,
            cron=cron,
            run=run,
            timezone=TIMEZONE,
            trading_days=trading_day,
        )
        for name, description, cron, run in table
    )
