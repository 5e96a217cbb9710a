"""REST backfill for Upbit: candles of any unit over a time range (``VenueInfo.backfill``).

Used by the supervisor after a reconnect gap and by ``marketfeed backfill``. Candle
subscriptions (``candle.1s`` .. ``candle.240m`` and the REST-only ``candle.1d``,
``candle.1w``, ``candle.1M``) are fetched page by page with ``to``/``count``; other
channels have no REST history here and are skipped (Upbit's ``/v1/trades/ticks`` only
reaches back a few days and is not used yet).

Source: Upbit Open API, quotation candle pages (``to`` exclusive, ``count`` <= 200).
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
    ``request`` over ``[request.start, request.end)``, newest page first per market.

    Raises:
        VenueError: Upbit keeps failing (after retries) or answers with an error.
    """
    subs = [s for s in request.subscriptions if s.channel in TIMEFRAMES]
    if not subs:
        return
    rest = UpbitRest(context)
    progress = context.progress(f"upbit candles {request.start:%Y-%m-%d %H:%M}..", len(subs))
    try:
        for sub in subs:
            async for batch in rest.candles(
                sub.symbol, TIMEFRAMES[sub.channel], request.start, request.end
            ):
                yield batch
            progress.advance()
    finally:
        progress.close()
