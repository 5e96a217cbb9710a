"""REST backfill for Upbit: candles and trades over a time range (``VenueInfo.backfill``).

Used by the supervisor after a reconnect gap and by ``marketfeed backfill``. Candle
subscriptions (``candle.1s`` .. ``candle.240m`` and the REST-only ``candle.1d``,
``candle.1w``, ``candle.1M``) are fetched page by page with ``to``/``count``; ``trade``
subscriptions from ``/v1/trades/ticks`` (the last 7 days only) with ``cursor`` paging.
``ticker`` and ``orderbook`` have no REST history and are skipped.

Source: Upbit Open API, quotation candle pages (``to`` exclusive, ``count`` <= 200) and
"최근 체결 내역" (``/v1/trades/ticks``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from marketfeed import BackfillRequest, Event, VenueContext

from ._rest import UpbitRest
from ._timeframes import TIMEFRAMES

__all__ = ["backfill"]


async def backfill(
    request: BackfillRequest, context: VenueContext
) -> AsyncIterator[Sequence[Event]]:
    """Yield batches of :class:`~marketfeed.Candle` for every candle subscription of
    ``request`` over ``[request.start, request.end)`` and of :class:`~marketfeed.Trade`
    for every ``trade`` subscription over ``[request.start, request.end]``, newest page
    first per market. Progress: one step per subscription.

    Raises:
        VenueError: Upbit keeps failing (after retries) or answers with an error.
    """
    subs = [s for s in request.subscriptions if s.channel in TIMEFRAMES or s.channel == "trade"]
    if not subs:
        return
    rest = UpbitRest(context)
    progress = context.progress(f"upbit backfill {request.start:%Y-%m-%d %H:%M}..", len(subs))
    try:
        for sub in subs:
            pages: AsyncIterator[Sequence[Event]]
            if sub.channel == "trade":
                pages = rest.trades(sub.symbol, request.start, request.end)
            else:
                pages = rest.candles(
                    sub.symbol, TIMEFRAMES[sub.channel], request.start, request.end
                )
            async for batch in pages:
                yield batch
            progress.advance()
    finally:
        progress.close()
