"""Upbit WebSocket request frames, and the bookkeeping Upbit's protocol needs.

An Upbit request is one text frame holding a JSON array: a ticket object, one object per
data type with its market codes, then the format object::

    [{"ticket":"9f1c..."},
     {"type":"trade","codes":["KRW-BTC","BTC-ETH"],"is_only_realtime":true},
     {"type":"orderbook","codes":["KRW-BTC.15"],"level":10000},
     {"format":"SIMPLE"}]

Upbit has **no unsubscribe** and no acknowledgement: each request replaces what the
connection streams. So the plugin remembers, per connection, the full set of
subscriptions it last requested (:class:`RequestBook`). ``unsubscribe`` sends a new full
request for what remains on that connection; when nothing remains there is nothing Upbit
can be told, and the supervisor closes the connection anyway (no frame is returned).
``resubscribe`` sends the connection's full request again, which makes Upbit start with a
fresh ``SNAPSHOT`` frame per market (unless ``is_only_realtime``).

Source: Upbit Open API, "WebSocket 사용 및 에러 안내" (request format: Ticket, Data Type
and Format objects; ``is_only_snapshot``/``is_only_realtime``) and "호가 (Orderbook)"
(``level``, ``KRW-BTC.{units}`` codes with units 1, 5, 15, 30).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from marketfeed import ConfigError, Subscription

from ._config import UpbitConfig
from ._symbols import split_market
from ._timeframes import TIMEFRAMES

__all__ = ["STREAM_CHANNELS", "RequestBook", "build_request", "check_subscription"]

STREAM_CHANNELS: dict[str, str] = {
    "ticker": "ticker",
    "trade": "trade",
    "orderbook": "book_snapshot",
    **{tf.channel: "candle" for tf in TIMEFRAMES.values() if tf.streamable},
}
"""WebSocket channel -> event kind."""

_UNITS = (1, 5, 15, 30)
_encoder = msgspec.json.Encoder()


def check_subscription(sub: Subscription) -> None:
    """Reject what Upbit's WebSocket cannot stream, naming the subscription.

    Raises:
        ConfigError: unknown or REST-only channel, a bad market code, bad ``units``.
    """
    where = f"subscriptions[upbit {sub.channel} {sub.symbol}]"
    if sub.channel not in STREAM_CHANNELS:
        if sub.channel in TIMEFRAMES:
            raise ConfigError(
                where,
                f"{sub.channel} is REST-only on Upbit (backfill it; stream candle.1s .. "
                "candle.240m)",
            )
        raise ConfigError(
            where, f"unknown Upbit channel {sub.channel!r}; channels: {', '.join(STREAM_CHANNELS)}"
        )
    try:
        split_market(sub.symbol)
    except ValueError as exc:
        raise ConfigError(where, f"{exc} (Upbit codes are QUOTE-BASE, e.g. KRW-BTC)") from None
    units = sub.options.get("units")
    if units is not None and (sub.channel != "orderbook" or units not in _UNITS):
        raise ConfigError(where, f"option units must be one of {_UNITS} on orderbook")


def build_request(
    subscriptions: Sequence[Subscription], config: UpbitConfig, ticket: str | None = None
) -> str:
    """The request frame (JSON text) that streams ``subscriptions`` on one connection.

    Orderbook ``units`` (subscription option, else ``config.orderbook_units``) become a
    ``.N`` code suffix; ``config.orderbook_level`` becomes the orderbook ``level``.

    Raises:
        ConfigError: see :func:`check_subscription`.
    """
    realtime, snapshot = (
        ("is_only_realtime", "is_only_snapshot")
        if config.flag_style == "snake"
        else ("isOnlyRealtime", "isOnlySnapshot")
    )
    codes: dict[str, list[str]] = {}
    for sub in subscriptions:
        check_subscription(sub)
        code = sub.symbol
        if sub.channel == "orderbook":
            units = sub.options.get("units", config.orderbook_units)
            if units is not None:
                code = f"{code}.{units}"
        listed = codes.setdefault(sub.channel, [])
        if code not in listed:
            listed.append(code)
    items: list[dict[str, Any]] = [{"ticket": ticket or str(uuid.uuid4())}]
    for channel, market_codes in codes.items():
        item: dict[str, Any] = {"type": channel, "codes": market_codes}
        if channel == "orderbook" and config.orderbook_level is not None:
            level = config.orderbook_level
            item["level"] = int(level) if level == int(level) else level
        if config.is_only_realtime:
            item[realtime] = True
        if config.is_only_snapshot:
            item[snapshot] = True
        items.append(item)
    items.append({"format": config.format})
    return _encoder.encode(items).decode()


_Key = tuple[str, str, str]


class RequestBook:
    """What each connection last requested, so a change can be sent as a full request.

    Subscription keys ``(venue, channel, symbol)`` are unique across a venue, and the
    supervisor subscribes a connection's whole set when it connects, so a group is found
    from any of its keys.
    """

    def __init__(self) -> None:
        self._groups: list[dict[_Key, Subscription]] = []

    def _find(self, subs: Sequence[Subscription]) -> dict[_Key, Subscription] | None:
        keys = {s.key for s in subs}
        return next((g for g in self._groups if not keys.isdisjoint(g)), None)

    def subscribe(self, subs: Sequence[Subscription]) -> list[Subscription]:
        """Record ``subs`` as (part of) a connection's set; returns the full set."""
        group = self._find(subs)
        if group is None:
            group = {}
            self._groups.append(group)
        for sub in subs:
            group[sub.key] = sub
        return list(group.values())

    def unsubscribe(self, subs: Sequence[Subscription]) -> list[Subscription]:
        """Forget ``subs``; returns what remains on their connection (maybe empty)."""
        group = self._find(subs)
        if group is None:
            return []
        for sub in subs:
            group.pop(sub.key, None)
        if not group:
            self._groups.remove(group)
        return list(group.values())

    def resubscribe(self, subs: Sequence[Subscription]) -> list[Subscription]:
        """The full set of the connection carrying ``subs`` (``subs`` if unknown)."""
        group = self._find(subs)
        return list(subs) if group is None else list(group.values())
