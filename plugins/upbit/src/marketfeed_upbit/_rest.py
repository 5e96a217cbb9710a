"""Upbit quotation REST: instruments, candles and recent trades, within Upbit's request limits.

Rate limiting, in this order for every request:

1. **Remaining-Req**: every Upbit response carries ``Remaining-Req: group=candles;
   min=600; sec=9`` (``sec`` = requests left in the current second for that group; ``min``
   is deprecated). Once ``sec`` falls to :attr:`UpbitConfig.remaining_req_floor` or below,
   the next request of that group waits until a second has passed.
2. **aiolimiter fallback**: a process-wide limiter per group
   (``context.limiters.get("upbit:rest:<group>", rest_rate, 1.0)``, 10 per second by
   default) keeps the budget even before the first header arrives.
3. **429 Too Many Requests**: back off (``Retry-After`` when sent, else one second) and
   retry with stamina (exponential backoff with jitter), like 5xx and network errors.
   **418** (Upbit blocked the IP for repeating 429s) is not retried.

Sources: Upbit Open API, "요청 수 제한 (Rate Limits)" (groups, ``Remaining-Req``, 429/418),
"페어 목록 조회" (``GET /v1/market/all``, ``is_details``), "분(Minute) 캔들 조회" and the
second/day/week/month candle pages (``market``, ``to`` exclusive, ``count`` <= 200),
"최근 체결 내역" (``GET /v1/trades/ticks``: ``market``, ``to`` = ``HHmmss`` UTC, ``count``,
``cursor`` = a ``sequential_id``, ``days_ago`` 1..7).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import anyio
import httpx
import msgspec
import stamina
from marketfeed import Candle, Instrument, Trade, VenueContext, VenueError

from ._config import UpbitConfig
from ._symbols import split_market
from ._timeframes import Timeframe, candle_event

__all__ = ["RemainingReq", "UpbitRest", "parse_remaining_req", "trades_from_body"]

VENUE = "upbit"
_UTC = _dt.UTC


class RemainingReq(msgspec.Struct, frozen=True):
    """A parsed ``Remaining-Req`` header: rate-limit ``group`` and requests left this
    second (``sec``)."""

    group: str
    sec: int


def parse_remaining_req(value: str | None) -> RemainingReq | None:
    """Parse ``"group=candles; min=600; sec=9"``; ``None`` when absent or unreadable."""
    if not value:
        return None
    fields: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key.strip().lower()] = val.strip()
    group, sec = fields.get("group"), fields.get("sec")
    if not group or sec is None or not sec.lstrip("-").isdigit():
        return None
    return RemainingReq(group, int(sec))


class _Retryable(Exception):
    """A failure worth retrying (429, 5xx, network); ``wait`` = seconds to hold the group."""

    def __init__(self, message: str, wait: float = 0.0) -> None:
        super().__init__(message)
        self.wait = wait


class _RestCandle(msgspec.Struct, kw_only=True):
    market: str
    open_time: _dt.datetime = msgspec.field(name="candle_date_time_utc")
    open: Decimal = msgspec.field(name="opening_price")
    high: Decimal = msgspec.field(name="high_price")
    low: Decimal = msgspec.field(name="low_price")
    close: Decimal = msgspec.field(name="trade_price")
    timestamp: int
    quote_volume: Decimal | None = msgspec.field(name="candle_acc_trade_price", default=None)
    volume: Decimal = msgspec.field(name="candle_acc_trade_volume")


class _RestTrade(msgspec.Struct, kw_only=True):
    market: str
    timestamp: int
    trade_price: Decimal
    trade_volume: Decimal
    ask_bid: str | None = None
    sequential_id: int


class _MarketEvent(msgspec.Struct, kw_only=True):
    warning: bool | None = None
    caution: dict[str, bool] | None = None


class _Market(msgspec.Struct, kw_only=True):
    market: str
    korean_name: str | None = None
    english_name: str | None = None
    market_warning: str | None = None
    market_event: _MarketEvent | None = None


class _ErrorBody(msgspec.Struct, kw_only=True):
    name: str | int | None = None
    message: str | None = None


class _Error(msgspec.Struct, kw_only=True):
    error: _ErrorBody


_candles = msgspec.json.Decoder(list[_RestCandle])
_trades = msgspec.json.Decoder(list[_RestTrade])
_markets = msgspec.json.Decoder(list[_Market])
_error = msgspec.json.Decoder(_Error)

_GUESSED_GROUP = {"market": "market", "candles": "candles", "ticker": "ticker"}


def _group_of(path: str) -> str:
    parts = path.strip("/").split("/")
    kind = parts[1] if len(parts) > 1 else parts[0]
    return _GUESSED_GROUP.get(kind, kind)


class UpbitRest:
    """REST client of one venue context (its ``http`` client, endpoints and limiters).

    Args:
        context: The venue context; ``context.endpoint("rest")`` is the base URL.
        config: Venue options (``context.config`` when ``None``; defaults if that is unset).
    """

    def __init__(self, context: VenueContext, config: UpbitConfig | None = None) -> None:
        self.context = context
        self.config = config or context.config or UpbitConfig()
        self.base = context.endpoint("rest").rstrip("/")
        self._hold_until: dict[str, float] = {}

    # ---------------------------------------------------------------- transport

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        """``GET path`` under the rate limits; returns the response body.

        Raises:
            VenueError: an error answer (its ``error.name`` as code), 418 (blocked), or
                429/5xx/network failures still failing after ``retry_attempts``.
        """
        cfg = self.config
        group = _group_of(path)
        try:
            async for attempt in stamina.retry_context(
                on=_Retryable,
                attempts=cfg.retry_attempts,
                timeout=None,
                wait_initial=cfg.retry_wait_initial,
                wait_max=cfg.retry_wait_max,
                wait_jitter=cfg.retry_wait_initial,
            ):
                with attempt:
                    return await self._once(group, path, params)
        except _Retryable as exc:
            raise VenueError(
                VENUE, f"GET {path} failed after {cfg.retry_attempts} attempts: {exc}"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, group: str, path: str, params: Mapping[str, Any] | None) -> bytes:
        cfg = self.config
        hold = self._hold_until.get(group, 0.0) - anyio.current_time()
        if hold > 0:
            await anyio.sleep(hold)
        limiter = self.context.limiters.get(f"upbit:rest:{group}", cfg.rest_rate, 1.0)
        await limiter.acquire()
        try:
            resp = await self.context.http.get(
                self.base + path, params=dict(params or {}), timeout=cfg.rest_timeout
            )
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        remaining = parse_remaining_req(resp.headers.get("Remaining-Req"))
        if remaining is not None and remaining.sec <= cfg.remaining_req_floor:
            self._hold(group, 1.0)
        status = resp.status_code
        if status == 429:
            wait = _retry_after(resp.headers.get("Retry-After"))
            self._hold(group, wait)
            raise _Retryable(f"429 Too Many Requests ({resp.text[:100]})", wait)
        if status >= 500:
            raise _Retryable(f"HTTP {status}: {resp.text[:200]}")
        if status == 418:
            raise VenueError(VENUE, f"418: Upbit blocked requests: {resp.text[:200]}", "418")
        if status >= 400:
            raise _venue_error(status, resp.content)
        return resp.content

    def _hold(self, group: str, seconds: float) -> None:
        until = anyio.current_time() + seconds
        if until > self._hold_until.get(group, 0.0):
            self._hold_until[group] = until

    # ---------------------------------------------------------------- endpoints

    async def instruments(self, *, details: bool = True) -> list[Instrument]:
        """Every Upbit market as an :class:`~marketfeed.Instrument` (``kind="spot"``).

        ``GET /v1/market/all?is_details=true``. ``extra`` keeps ``korean_name`` and the
        market alerts: ``warning`` (``"true"``/``"false"``, 유의 종목), ``caution`` (the
        caution types that are on, comma-separated) and the legacy ``market_warning``
        (``NONE``/``CAUTION``, removed by Upbit in 2024-11) when present.

        Raises:
            VenueError: see :meth:`get`; msgspec.DecodeError on a malformed body.
        """
        body = await self.get("/v1/market/all", {"is_details": "true" if details else "false"})
        return instruments_from_body(body, _dt.datetime.now(_UTC))

    async def candle_page(
        self, market: str, tf: Timeframe, to: _dt.datetime | None, count: int
    ) -> list[Candle]:
        """One page of candles, newest first: ``count`` (<= 200) candles opening before
        ``to`` (exclusive; ``None`` = now).

        Raises:
            VenueError: see :meth:`get`. ValueError: ``market`` is not an Upbit code.
        """
        params: dict[str, Any] = {"market": market, "count": count}
        if to is not None:
            params["to"] = to.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = await self.get(tf.rest_path, params)
        return candles_from_body(body, tf, _dt.datetime.now(_UTC))

    async def candles(
        self, market: str, tf: Timeframe, start: _dt.datetime, end: _dt.datetime
    ) -> AsyncIterator[list[Candle]]:
        """Candles of ``market`` opening in ``[start, end)``, a page per batch, newest page
        first. Pages walk back with ``to`` = the oldest open time of the previous page;
        stops at ``start``, at an empty page, or when a page makes no progress.

        Raises:
            VenueError: see :meth:`get`.
        """
        to = end
        size = self.config.candle_page_size
        while True:
            page = await self.candle_page(market, tf, to, size)
            if not page:
                return
            batch = [c for c in page if start <= c.open_time < end]
            if batch:
                yield batch
            oldest = min(c.open_time for c in page)
            if oldest <= start or oldest >= to:
                return
            to = oldest

    async def trade_page(
        self,
        market: str,
        *,
        to: _dt.time | None = None,
        cursor: int | None = None,
        days_ago: int = 0,
        count: int | None = None,
    ) -> list[Trade]:
        """One page of recent trades of ``market``, newest first (``GET /v1/trades/ticks``).

        Args:
            market: Upbit code, e.g. ``"KRW-BTC"``.
            to: Only trades before this UTC time of day (sent as ``HHmmss``).
            cursor: Only trades older than the trade with this ``sequential_id``.
            days_ago: ``0`` for the latest trading day (UTC), ``1``..``7`` for an earlier
                one (Upbit keeps 7 days).
            count: Rows (``trade_page_size`` by default; Upbit's maximum is 500).

        Raises:
            VenueError: see :meth:`get`. ValueError: ``market`` is not an Upbit code.
        """
        params: dict[str, Any] = {"market": market, "count": count or self.config.trade_page_size}
        if to is not None:
            params["to"] = to.strftime("%H%M%S")
        if cursor is not None:
            params["cursor"] = str(cursor)
        if days_ago:
            params["days_ago"] = days_ago
        body = await self.get("/v1/trades/ticks", params)
        return trades_from_body(body, _dt.datetime.now(_UTC))

    async def trades(
        self, market: str, start: _dt.datetime, end: _dt.datetime
    ) -> AsyncIterator[list[Trade]]:
        """Trades of ``market`` executed in ``[start, end]``, a page per batch, newest first.

        A first page without parameters tells Upbit's latest trading day ``L`` (UTC); then
        each UTC day of the window, from ``end`` back, is read with ``days_ago`` = days
        before ``L`` (Upbit keeps 7; older days are skipped), paging with ``cursor`` = the
        ``sequential_id`` of the previous page's last (oldest) row, until a page reaches
        back before ``start``, comes back short or empty, or makes no progress. Trades
        carry the same ``trade_id`` (``sequential_id``) as the WebSocket's, so sinks that
        upsert on ``(venue, symbol, trade_id)`` keep one row per trade.

        Raises:
            VenueError: see :meth:`get`.
        """
        start = start.astimezone(_UTC)
        end = end.astimezone(_UTC)
        size = self.config.trade_page_size
        probe = await self.trade_page(market, count=1)
        if not probe:
            return
        latest = probe[0].event_time.date()
        day = min(end.date(), latest)
        while day >= start.date():
            days_ago = (latest - day).days
            if days_ago > 7:
                return
            # `to` is exclusive at second precision: ask up to the next second, trim below
            to = (end + _dt.timedelta(seconds=1)).time() if day == end.date() else None
            cursor: int | None = None
            reached_start = False
            while True:
                page = await self.trade_page(
                    market, to=to, cursor=cursor, days_ago=days_ago, count=size
                )
                batch = [t for t in page if start <= t.event_time <= end]
                if batch:
                    yield batch
                if not page:
                    break
                reached_start = min(t.event_time for t in page) < start
                last = page[-1].sequence  # Upbit's cursor: continue after its last row
                if reached_start or len(page) < size or last == cursor:
                    break
                cursor = last
            if reached_start:
                return
            day -= _dt.timedelta(days=1)


def candles_from_body(body: bytes, tf: Timeframe, receive_time: _dt.datetime) -> list[Candle]:
    """Candles of a REST candle response body (any unit). ``closed`` is true once the
    candle's period ended before ``receive_time``; ``event_time`` is the candle's last
    trade (``timestamp``).

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not an Upbit candle list.
        ValueError: a bad market code.
    """
    out = []
    for row in _candles.decode(body):
        base, quote = split_market(row.market)
        sym = (f"{base}-{quote}", row.market)
        out.append(candle_event(VENUE, sym, tf, row, receive_time, closed_by=receive_time))
    return out


def trades_from_body(body: bytes, receive_time: _dt.datetime) -> list[Trade]:
    """Trades of a ``/v1/trades/ticks`` body, as the WebSocket's ``trade`` type gives them:
    ``trade_id`` = ``str(sequential_id)``, ``sequence`` = ``sequential_id``, exact
    decimals, ``event_time`` from ``timestamp`` (ms, UTC), taker ``side`` from ``ask_bid``
    (``BID`` = buy, ``ASK`` = sell).

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not an Upbit trade list.
        ValueError: a bad market code.
    """
    out = []
    for row in _trades.decode(body):
        base, quote = split_market(row.market)
        ab = row.ask_bid
        out.append(
            Trade(
                venue=VENUE,
                symbol=f"{base}-{quote}",
                native_symbol=row.market,
                event_time=_dt.datetime.fromtimestamp(row.timestamp / 1000, _UTC),
                receive_time=receive_time,
                trade_id=str(row.sequential_id),
                price=row.trade_price,
                size=row.trade_volume,
                side="buy" if ab == "BID" else "sell" if ab == "ASK" else None,
                sequence=row.sequential_id,
            )
        )
    return out


def market_to_instrument(m: _Market, as_of: _dt.datetime) -> Instrument:
    """One ``/v1/market/all`` row as an :class:`~marketfeed.Instrument`."""
    base, quote = split_market(m.market)
    extra: dict[str, str] = {}
    if m.korean_name is not None:
        extra["korean_name"] = m.korean_name
    if m.market_warning is not None:
        extra["market_warning"] = m.market_warning
    if m.market_event is not None:
        if m.market_event.warning is not None:
            extra["warning"] = "true" if m.market_event.warning else "false"
        if m.market_event.caution is not None:
            extra["caution"] = ",".join(k for k, on in m.market_event.caution.items() if on)
    return Instrument(
        venue=VENUE,
        symbol=f"{base}-{quote}",
        native_symbol=m.market,
        kind="spot",
        as_of=as_of,
        base=base,
        quote=quote,
        name=m.english_name,
        extra=extra,
    )


def instruments_from_body(body: bytes, as_of: _dt.datetime) -> list[Instrument]:
    """Instruments of a ``/v1/market/all`` body (with or without details)."""
    return [market_to_instrument(m, as_of) for m in _markets.decode(body)]


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, min(float(value), 60.0)) if value else 1.0
    except ValueError:
        return 1.0


def _venue_error(status: int, body: bytes) -> VenueError:
    try:
        err = _error.decode(body).error
        name = None if err.name is None else str(err.name)
        return VenueError(VENUE, f"HTTP {status}: {err.message or body[:200]!r}", name)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return VenueError(VENUE, f"HTTP {status}: {body[:200]!r}", str(status))
