"""The Upbit venue's own options (``[venues.upbit]`` in the marketfeed config)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["UpbitConfig"]

_Positive = Annotated[float, msgspec.Meta(gt=0)]


class UpbitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the ``upbit`` venue. Every key is optional; the defaults follow Upbit's docs.

    Example::

        [venues.upbit]
        format = "SIMPLE"
        is_only_realtime = false
        orderbook_units = 15

    Attributes:
        format: WebSocket response format, ``"SIMPLE"`` (abbreviated keys such as ``ty``,
            ``cd``, ``tms``: smaller frames) or ``"DEFAULT"`` (long keys). The normaliser
            decodes both whatever is configured. Source: "WebSocket 사용 및 에러 안내",
            Format Object.
        is_only_realtime: Ask for the real-time stream only (no ``SNAPSHOT`` frame when a
            subscription starts). Default ``False``: the first frame of each subscription is
            a snapshot, so books and tickers are known at once.
        is_only_snapshot: Ask for one snapshot per subscription and no stream.
        flag_style: Spelling of those two request keys: ``"snake"`` (``is_only_realtime``,
            as in Upbit's current docs) or ``"camel"`` (``isOnlyRealtime``, as the 2021
            recording and older clients sent it). Both are accepted by Upbit.
        orderbook_units: Levels per side of ``orderbook`` frames (Upbit accepts 1, 5, 15, 30;
            ``None`` = Upbit's default, 30 today, 15 in 2021). Sent as a ``KRW-BTC.15`` code
            suffix. A subscription option ``units`` overrides it per market.
        orderbook_level: Price aggregation unit of ``orderbook`` (호가 모아보기, KRW markets
            only); ``None`` = no aggregation.
        max_codes_per_connection: ``plan`` opens another connection when one would carry
            more channel-market pairs than this.
        heartbeat_interval: Seconds of silence before the supervisor sends the text
            ``PING`` (Upbit answers ``{"status":"UP"}``; it closes a connection idle for
            120 s).
        heartbeat_timeout: Seconds to wait for any frame after a ``PING``.
        ws_connect_rate: WebSocket connections per second (Upbit: 5 per second per IP).
        ws_message_rate: Request messages per second (Upbit: 5 per second...).
        ws_message_rate_per_minute: ...and 100 per minute.
        rest_rate: REST requests per second and rate-limit group (Upbit quotation: 10).
        remaining_req_floor: Wait for the next second once a response's ``Remaining-Req``
            header says this many requests or fewer are left in the current second.
        rest_timeout: Seconds per REST request before it counts as failed (and retried).
        retry_attempts: Attempts per REST request on HTTP 429, 5xx and network errors.
        retry_wait_initial, retry_wait_max: Backoff of those retries, seconds (stamina,
            exponential with jitter).
        candle_page_size: Rows per candle page (``count``; Upbit's maximum is 200).
        trade_page_size: Rows per ``/v1/trades/ticks`` page (``count``; Upbit's maximum
            is 500), used by the trade gap backfill.
        dedup_window: Trades remembered per market to drop repeats (a snapshot after a
            reconnect, a replayed segment). Memory is about 100 bytes per id.
    """

    format: Literal["SIMPLE", "DEFAULT"] = "SIMPLE"
    is_only_realtime: bool = False
    is_only_snapshot: bool = False
    flag_style: Literal["snake", "camel"] = "snake"
    orderbook_units: Literal[1, 5, 15, 30] | None = None
    orderbook_level: Annotated[float, msgspec.Meta(ge=0)] | None = None
    max_codes_per_connection: Annotated[int, msgspec.Meta(ge=1)] = 200
    heartbeat_interval: _Positive = 60.0
    heartbeat_timeout: _Positive = 10.0
    ws_connect_rate: _Positive = 5.0
    ws_message_rate: _Positive = 5.0
    ws_message_rate_per_minute: _Positive = 100.0
    rest_rate: _Positive = 10.0
    remaining_req_floor: Annotated[int, msgspec.Meta(ge=0)] = 1
    rest_timeout: _Positive = 10.0
    retry_attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    retry_wait_initial: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    retry_wait_max: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    candle_page_size: Annotated[int, msgspec.Meta(ge=1, le=200)] = 200
    trade_page_size: Annotated[int, msgspec.Meta(ge=1, le=500)] = 500
    dedup_window: Annotated[int, msgspec.Meta(ge=1)] = 1000

    def __post_init__(self) -> None:
        if self.is_only_realtime and self.is_only_snapshot:
            raise ValueError("is_only_realtime and is_only_snapshot exclude each other")
