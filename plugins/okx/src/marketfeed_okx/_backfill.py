"""REST backfill of OKX candles and trades (after a reconnect gap, and ``marketfeed backfill``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from marketfeed import BackfillRequest, Event, VenueContext

from ._rest import OkxRest
from ._timeframes import bar_duration

__all__ = ["backfill", "instruments_job"]

_CANDLE_PREFIX = "candle"


async def backfill(
    request: BackfillRequest, context: VenueContext
) -> AsyncIterator[Sequence[Event]]:
    """Candles of every ``candle<bar>`` subscription and trades of every ``trades``
    subscription in ``request`` over its window.

    Yields pages of :class:`marketfeed.Candle` (newest to oldest per subscription), each
    candle overlapping ``[request.start, request.end]``. The bar still open at the end of
    the window comes with ``closed=False`` and is replaced by later updates (sinks upsert
    on ``(venue, symbol, timeframe, open_time)``). Then pages of :class:`marketfeed.Trade`
    executed in ``[request.start, request.end]`` (``/market/history-trades``: OKX keeps
    three months), with the WebSocket's ``trade_id`` so sinks keep one row per trade.
    Book and ticker channels have no REST history and are skipped. Progress: candles,
    against the number the window should hold, then one step per trade subscription.

    Source: OKX API v5, "Market data > Get candlesticks (history)", "Get trades history".

    Raises:
        VenueError: OKX refused a request (code and message).
    """
    subs = [s for s in request.subscriptions if s.channel.startswith(_CANDLE_PREFIX)]
    trade_subs = [s for s in request.subscriptions if s.channel == "trades"]
    if not subs and not trade_subs:
        return
    rest = OkxRest(context)
    bars = [s.channel[len(_CANDLE_PREFIX) :] for s in subs]
    window = request.end - request.start
    if subs:
        expected = sum(int(window / bar_duration(bar)) + 1 for bar in bars)
        progress = context.progress(f"{context.venue} candles backfill", expected)
        try:
            for sub, bar in zip(subs, bars, strict=True):
                async for page in rest.iter_candles(sub.symbol, bar, request.start, request.end):
                    yield page
                    progress.advance(len(page))
        finally:
            progress.close()
    if trade_subs:
        progress = context.progress(f"{context.venue} trades backfill", len(trade_subs))
        try:
            for sub in trade_subs:
                async for trades in rest.iter_trades(sub.symbol, request.start, request.end):
                    yield trades
                progress.advance()
        finally:
            progress.close()


_DEFAULT_TYPES = ("SPOT", "SWAP", "FUTURES")


async def instruments_job(
    context: VenueContext, options: Mapping[str, Any]
) -> AsyncIterator[Sequence[Event]]:
    """Scheduled job ``instruments``: reference data of OKX instruments.

    Options: ``inst_types`` (default ``["SPOT", "SWAP", "FUTURES"]``) and
    ``option_families`` (e.g. ``["BTC-USD"]``; OKX needs a family per ``OPTION`` request).
    Yields one batch of :class:`marketfeed.Instrument` per request.

    Raises:
        VenueError: OKX refused a request. ValueError: a bad option.
    """
    types = options.get("inst_types", _DEFAULT_TYPES)
    families = options.get("option_families", ())
    if isinstance(types, str) or isinstance(families, str):
        raise ValueError("inst_types and option_families must be lists of strings")
    rest = OkxRest(context)
    requests: list[tuple[str, str | None]] = [(t, None) for t in types if t != "OPTION"]
    requests += [("OPTION", f) for f in families]
    progress = context.progress(f"{context.venue} instruments", len(requests))
    try:
        for inst_type, family in requests:
            yield await rest.instruments(inst_type, inst_family=family)
            progress.advance()
    finally:
        progress.close()
