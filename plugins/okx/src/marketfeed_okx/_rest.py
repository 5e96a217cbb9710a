"""OKX REST market data: instruments, candles and trades, rate-limited and retried.

Endpoints (source: OKX API v5, "Public data > Get instruments", "Market data > Get
candlesticks", "Market data > Get candlesticks history", "Market data > Get trades
history"):

========================================  =================  ==========================
path                                      OKX limit (IP)     limiter key
========================================  =================  ==========================
``GET /api/v5/public/instruments``        20 req / 2 s       ``okx:rest:instruments``
``GET /api/v5/market/candles``            40 req / 2 s       ``okx:rest:candles``
``GET /api/v5/market/history-candles``    20 req / 2 s       ``okx:rest:history-candles``
``GET /api/v5/market/books``              40 req / 2 s       ``okx:rest:books``
``GET /api/v5/market/history-trades``     20 req / 2 s       ``okx:rest:history-trades``
========================================  =================  ==========================

Every response is ``{"code": "0", "msg": "", "data": [...]}``; a ``code`` other than
``"0"`` is a :class:`marketfeed.VenueError` with OKX's code and message. HTTP 5xx, 429
and network errors or timeouts are retried with exponential backoff (stamina).

Candle paging: rows come newest first. ``after=ts`` returns rows older than ``ts``,
``before=ts`` rows newer than ``ts``. ``/market/candles`` only reaches back 1,440 rows;
older rows come from ``/market/history-candles``.

Trade paging: ``/market/history-trades`` (the last 3 months) returns up to 100 trades
newest first, the same objects as the WebSocket ``trades`` channel (``instId``,
``tradeId``, ``px``, ``sz``, ``side``, ``ts``). ``type=2&after=ts`` starts before a time;
``type=1&after=tradeId`` (exact, no tie at one millisecond) continues from a page's last
trade.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import msgspec
import stamina
from marketfeed import BookSnapshot, Candle, Instrument, Trade, VenueContext, VenueError

from ._config import OkxConfig
from ._decode import LooseBookData, dec, ms_to_datetime
from ._normalise import candles_from_rows
from ._symbols import instrument_from_rest, normalise_symbol
from ._timeframes import bar_duration

__all__ = ["OkxRest", "datetime_to_ms"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_INSTRUMENTS = "/api/v5/public/instruments"
_CANDLES = "/api/v5/market/candles"
_HISTORY_CANDLES = "/api/v5/market/history-candles"
_BOOKS = "/api/v5/market/books"
_HISTORY_TRADES = "/api/v5/market/history-trades"


class _Envelope(msgspec.Struct):
    code: str
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw(b"[]")


_envelope = msgspec.json.Decoder(_Envelope)
_rows = msgspec.json.Decoder(list[list[str]])
_objects = msgspec.json.Decoder(list[dict[str, Any]])
_books = msgspec.json.Decoder(list[LooseBookData], strict=False)


class _RestTrade(msgspec.Struct):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str


_trades = msgspec.json.Decoder(list[_RestTrade])


class _Retryable(Exception):
    """A response worth retrying (HTTP 5xx or 429)."""


def datetime_to_ms(value: _dt.datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class OkxRest:
    """OKX REST calls for one venue context (shared HTTP client and rate limiters).

    Args:
        context: The venue context: ``endpoints["rest"]`` is the base URL
            (``https://www.okx.com`` live, the replay server in tests), ``http`` the
            shared client, ``limiters`` the process-wide rate limiters.
        config: Rates, timeouts and page sizes; ``context.config`` when omitted.
    """

    def __init__(self, context: VenueContext, config: OkxConfig | None = None) -> None:
        self.context = context
        self.venue = context.venue
        cfg = config if config is not None else context.config
        self.config: OkxConfig = cfg if isinstance(cfg, OkxConfig) else OkxConfig()
        self.base = context.endpoint("rest").rstrip("/")

    def _limiter(self, path: str) -> Any:
        cfg = self.config
        rate = {
            _INSTRUMENTS: ("okx:rest:instruments", cfg.instruments_rate),
            _CANDLES: ("okx:rest:candles", cfg.candles_rate),
            _HISTORY_CANDLES: ("okx:rest:history-candles", cfg.history_candles_rate),
            _BOOKS: ("okx:rest:books", cfg.books_rate),
            _HISTORY_TRADES: ("okx:rest:history-trades", cfg.history_trades_rate),
        }[path]
        return self.context.limiters.get(rate[0], rate[1], cfg.rest_rate_period)

    async def get(self, path: str, params: Mapping[str, str]) -> msgspec.Raw:
        """``GET base + path`` with rate limit and retries; returns the raw ``data``.

        Raises:
            VenueError: OKX answered ``code != "0"`` (its code and message), a 4xx, a
                body that is not an OKX envelope, or 5xx/429 through every attempt.
            httpx.TransportError: network errors persisted through every attempt.
        """
        limiter = self._limiter(path)
        url = self.base + path
        cfg = self.config
        response: httpx.Response | None = None
        try:
            async for attempt in stamina.retry_context(
                on=(httpx.TransportError, _Retryable),
                attempts=cfg.rest_attempts,
                timeout=None,
                wait_initial=0.5,
                wait_max=10.0,
            ):
                with attempt:
                    async with limiter:
                        response = await self.context.http.get(
                            url, params=dict(params), timeout=cfg.rest_timeout
                        )
                    if response.status_code >= 500 or response.status_code == 429:
                        raise _Retryable(f"HTTP {response.status_code}")
        except _Retryable as exc:
            raise VenueError(
                self.venue, f"{path}: {exc} after {cfg.rest_attempts} attempts"
            ) from None
        assert response is not None
        try:
            envelope = _envelope.decode(response.content)
        except msgspec.DecodeError:
            raise VenueError(
                self.venue,
                f"{path}: HTTP {response.status_code}, body is not an OKX response: "
                f"{response.text[:200]!r}",
            ) from None
        if envelope.code != "0":
            raise VenueError(self.venue, f"{path}: {envelope.msg or 'error'}", envelope.code)
        if response.status_code >= 400:
            raise VenueError(self.venue, f"{path}: HTTP {response.status_code}")
        return envelope.data

    # ------------------------------------------------------------------ instruments

    async def instruments(
        self, inst_type: str, *, inst_family: str | None = None, uly: str | None = None
    ) -> list[Instrument]:
        """``GET /api/v5/public/instruments?instType=...`` as :class:`Instrument` s.

        Args:
            inst_type: ``SPOT``, ``MARGIN``, ``SWAP``, ``FUTURES`` or ``OPTION``.
            inst_family, uly: Required by OKX for ``OPTION`` (e.g. ``"BTC-USD"``).

        Raises:
            VenueError: as :meth:`get`; ValueError: a row without ``instId``.
        """
        params = {"instType": inst_type}
        if inst_family:
            params["instFamily"] = inst_family
        if uly:
            params["uly"] = uly
        data = await self.get(_INSTRUMENTS, params)
        now = _dt.datetime.now(_dt.UTC)
        return [
            instrument_from_rest(row, as_of=now, venue=self.venue) for row in _objects.decode(data)
        ]

    # ------------------------------------------------------------------ order book

    async def order_book(self, inst_id: str, depth: int | None = None) -> BookSnapshot:
        """``GET /api/v5/market/books?instId=...&sz=depth``: a one-off L2 snapshot.

        Levels are exact decimals of OKX's ``[px, sz, "0", numOrders]`` strings, best
        first; REST books carry no checksum or sequence, so ``verified`` is ``False``.
        ``depth`` is OKX's ``sz`` (levels per side, at most 400; OKX's default is 1).

        Raises:
            VenueError: as :meth:`get`; ValueError: a body that is not one book.
        """
        params = {"instId": inst_id}
        if depth is not None:
            params["sz"] = str(depth)
        (book,) = _books.decode(await self.get(_BOOKS, params))
        now = _dt.datetime.now(_dt.UTC)
        return BookSnapshot(
            venue=self.venue,
            symbol=normalise_symbol(inst_id),
            native_symbol=inst_id,
            event_time=ms_to_datetime(book.ts),
            receive_time=now,
            bids=tuple((dec(lv[0]), dec(lv[1])) for lv in book.bids),
            asks=tuple((dec(lv[0]), dec(lv[1])) for lv in book.asks),
            depth=depth,
        )

    # ------------------------------------------------------------------ candles

    async def candles(
        self,
        inst_id: str,
        bar: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int | None = None,
        history: bool = False,
    ) -> list[Candle]:
        """One page of candles, newest first, as OKX returns them.

        Args:
            inst_id: OKX ``instId``.
            bar: OKX bar size (``"1m"``, ``"1H"``, ``"1Dutc"``...).
            after: Only rows with open time earlier than this (epoch ms).
            before: Only rows with open time later than this (epoch ms).
            limit: Rows per page (defaults from config; OKX max 300 / 100).
            history: Use ``/market/history-candles`` (older data).

        Raises:
            ValueError: unknown bar. VenueError: as :meth:`get`.
        """
        path = _HISTORY_CANDLES if history else _CANDLES
        cfg = self.config
        n = limit or (cfg.history_candle_page_limit if history else cfg.candle_page_limit)
        params = {"instId": inst_id, "bar": bar, "limit": str(n)}
        if after is not None:
            params["after"] = str(after)
        if before is not None:
            params["before"] = str(before)
        data = await self.get(path, params)
        return candles_from_rows(
            _rows.decode(data),
            venue=self.venue,
            inst_id=inst_id,
            bar=bar,
            receive_time=_dt.datetime.now(_dt.UTC),
        )

    async def iter_candles(
        self, inst_id: str, bar: str, start: _dt.datetime, end: _dt.datetime
    ) -> AsyncIterator[list[Candle]]:
        """Every candle overlapping ``[start, end]`` (UTC), as pages newest to oldest.

        Pages ``/market/candles`` backwards with ``after``; when it runs out (it keeps
        only the latest 1,440 rows) continues on ``/market/history-candles``. A candle
        overlaps when ``open_time <= end`` and ``open_time + bar > start``, so the bar that
        was open at ``start`` is included.

        Raises:
            ValueError: unknown bar. VenueError: as :meth:`get`.
        """
        duration = bar_duration(bar)
        cursor = datetime_to_ms(end) + 1
        history = False
        while True:
            page = await self.candles(inst_id, bar, after=cursor, history=history)
            if not page:
                if history:
                    return
                history = True
                continue
            keep = [c for c in page if c.open_time <= end and c.open_time + duration > start]
            if keep:
                yield keep
            oldest = min(c.open_time for c in page)
            oldest_ms = datetime_to_ms(oldest)
            if oldest + duration <= start or oldest_ms >= cursor:
                return
            cursor = oldest_ms

    # ------------------------------------------------------------------ trades

    async def trades(
        self,
        inst_id: str,
        *,
        after_trade: str | None = None,
        after_ms: int | None = None,
        limit: int | None = None,
    ) -> list[Trade]:
        """One page of ``/market/history-trades``, newest first, as :class:`Trade` s.

        Args:
            inst_id: OKX ``instId``.
            after_trade: Only trades older than this ``tradeId`` (``type=1``).
            after_ms: Only trades before this time, epoch ms (``type=2``); ignored when
                ``after_trade`` is given.
            limit: Rows per page (``trade_page_limit`` by default; OKX maximum 100).

        Events are those of the WebSocket ``trades`` channel: exact decimals of ``px``
        and ``sz``, ``side`` the taker side, ``event_time`` from ``ts`` (UTC), the same
        ``trade_id``, so sinks upserting on ``(venue, symbol, trade_id)`` keep one row.

        Raises:
            VenueError: as :meth:`get`; ValueError: a bad side or timestamp.
        """
        params = {"instId": inst_id, "limit": str(limit or self.config.trade_page_limit)}
        if after_trade is not None:
            params["type"] = "1"
            params["after"] = after_trade
        elif after_ms is not None:
            params["type"] = "2"
            params["after"] = str(after_ms)
        data = await self.get(_HISTORY_TRADES, params)
        now = _dt.datetime.now(_dt.UTC)
        out = []
        for row in _trades.decode(data):
            if row.side not in ("buy", "sell"):
                raise ValueError(f"okx trade {row.tradeId}: side {row.side!r}")
            out.append(
                Trade(
                    venue=self.venue,
                    symbol=normalise_symbol(row.instId),
                    native_symbol=row.instId,
                    event_time=ms_to_datetime(int(row.ts)),
                    receive_time=now,
                    trade_id=row.tradeId,
                    price=dec(row.px),
                    size=dec(row.sz),
                    side=row.side,  # type: ignore[arg-type]
                )
            )
        return out

    async def iter_trades(
        self, inst_id: str, start: _dt.datetime, end: _dt.datetime
    ) -> AsyncIterator[list[Trade]]:
        """Every trade of ``inst_id`` in ``[start, end]`` (UTC), as pages newest to oldest.

        The first page starts before ``end`` + 1 ms by time (``type=2``); the next ones
        continue after the previous page's last (oldest) ``tradeId`` (``type=1``), until
        a page reaches before ``start``, comes back short or empty, or makes no progress.

        Raises:
            VenueError: as :meth:`get`.
        """
        size = self.config.trade_page_limit
        page = await self.trades(inst_id, after_ms=datetime_to_ms(end) + 1, limit=size)
        last: str | None = None
        while page:
            keep = [t for t in page if start <= t.event_time <= end]
            if keep:
                yield keep
            oldest = page[-1].trade_id
            if min(t.event_time for t in page) < start or len(page) < size or oldest == last:
                return
            last = oldest
            page = await self.trades(inst_id, after_trade=oldest, limit=size)
