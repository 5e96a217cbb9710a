"""Real-time quotes over the WebSocket ``/api/dostk/websocket`` (spec section 7).

* Connect: open the socket with ``context.transport``, send
  ``{"trnm":"LOGIN","token":<token without "Bearer">}`` and wait for
  ``{"trnm":"LOGIN","return_code":0,...}``. A refusal with ``CODE=8005`` (or 8031/8103)
  renews the token and reconnects once.
* Subscribe: ``{"trnm":"REG","grp_no":"1","refresh":"1","data":[{"item":[codes],
  "type":["0B"]}]}``; unsubscribe with ``REMOVE`` (no ``refresh``); resubscribe = REMOVE
  then REG for that one code.
* Frames: ``REAL`` entries keyed by FID numbers become :class:`Trade` (``0B`` 주식체결) and
  :class:`BookSnapshot` (``0D`` 주식호가잔량, 10 levels); ``PING`` is echoed unchanged via
  :class:`SendFrame`; ``REG``/``REMOVE`` acks and ``SYSTEM`` messages become
  :class:`SubscriptionStatus`. An entry that cannot be normalised becomes a
  :class:`DeadLetter` (the other entries of the frame are kept); a frame that is not JSON
  raises (the supervisor dead-letters it).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
import msgspec
from marketfeed import (
    BookSnapshot,
    Connection,
    ConnectionPlan,
    DeadLetter,
    Event,
    Frame,
    SendFrame,
    Side,
    Subscription,
    SubscriptionStatus,
    Trade,
    VenueContext,
)

from ._auth import KST
from ._client import client_for, config_of
from ._config import KiwoomConfig
from ._errors import AUTH_RENEW_CODES, KiwoomAuthError, KiwoomError, classify
from ._parse import RowError, signed, to_symbol

__all__ = [
    "CHANNELS",
    "KiwoomNormaliser",
    "open_connection",
    "plan_connections",
    "subscribe_frames",
]

CHANNELS = {"0B": "trade", "0D": "book_snapshot"}
"""Real-time types the plugin normalises -> event kind."""

VENUE = "kiwoom"
_log = logging.getLogger("marketfeed.venue.kiwoom.realtime")
_encode = msgspec.json.Encoder().encode


# --------------------------------------------------------------------------- plan/subscribe


def plan_connections(
    subscriptions: Sequence[Subscription], context: VenueContext
) -> list[ConnectionPlan]:
    """One connection (one login) carrying every subscription: ``kiwoom/ws/0`` on the
    ``ws`` endpoint, or ``mock_ws`` when ``mock`` is set. The server sends ``PING`` and
    the normaliser echoes it, so no client heartbeat is planned."""
    if not subscriptions:
        return []
    config = config_of(context)
    url = context.endpoint("mock_ws" if config.mock else "ws")
    return [ConnectionPlan(name="kiwoom/ws/0", url=url, subscriptions=tuple(subscriptions))]


def _packet(trnm: str, group: str, channel: str, items: list[str], refresh: bool) -> str:
    packet: dict[str, Any] = {"trnm": trnm, "grp_no": group}
    if refresh:
        packet["refresh"] = "1"
    packet["data"] = [{"item": items, "type": [channel]}]
    return _encode(packet).decode()


def subscribe_frames(
    subscriptions: Sequence[Subscription], action: str, config: KiwoomConfig
) -> list[str]:
    """REG / REMOVE frames for ``subscriptions`` (one frame per channel and chunk of
    ``ws_max_items`` codes; ``refresh="1"`` keeps earlier registrations).

    Raises:
        ValueError: a channel other than ``0B``/``0D`` or an unknown action.
    """
    by_channel: dict[str, list[str]] = {}
    for sub in subscriptions:
        if sub.channel not in CHANNELS:
            raise ValueError(f"kiwoom has no real-time channel {sub.channel!r}; use 0B or 0D")
        items = by_channel.setdefault(sub.channel, [])
        if sub.symbol not in items:
            items.append(sub.symbol)
    steps = {
        "subscribe": (("REG", True),),
        "unsubscribe": (("REMOVE", False),),
        "resubscribe": (("REMOVE", False), ("REG", True)),
    }.get(action)
    if steps is None:
        raise ValueError(f"unknown subscribe action {action!r}")
    frames = []
    size = config.ws_max_items
    for trnm, refresh in steps:
        for channel, items in by_channel.items():
            for i in range(0, len(items), size):
                frames.append(_packet(trnm, config.ws_group, channel, items[i : i + size], refresh))
    return frames


# --------------------------------------------------------------------------- connect


class _RenewToken(Exception):
    pass


async def _login(conn: Connection, token: str, timeout: float) -> None:
    await conn.send(_encode({"trnm": "LOGIN", "token": token}).decode())
    with anyio.fail_after(timeout):
        while True:
            frame = await conn.receive()
            try:
                message = msgspec.json.decode(frame)
            except msgspec.DecodeError:
                if frame in ("PING", b"PING"):
                    await conn.send(frame)
                continue
            if not isinstance(message, dict):
                continue
            trnm = message.get("trnm")
            if trnm == "PING":
                await conn.send(frame)
                continue
            if trnm == "LOGIN":
                top, code, text = classify(message)
                if not top:
                    return
                if code in AUTH_RENEW_CODES:
                    raise _RenewToken(code)
                raise KiwoomAuthError(f"WebSocket LOGIN refused: {text}", code)
            if trnm == "SYSTEM":
                raise KiwoomError(
                    f"WebSocket SYSTEM message before login: {message.get('message', '')}",
                    str(message.get("code") or "") or None,
                )


@asynccontextmanager
async def open_connection(plan: ConnectionPlan, context: VenueContext) -> AsyncIterator[Connection]:
    """Open ``plan.url`` with ``context.transport`` and log in with the REST token.

    The connection holds a lease on the shared client, so the token is not revoked while
    it is open. A LOGIN refused with 8005/8031/8103 renews the token and reconnects once.

    Raises:
        KiwoomAuthError: login refused (after the one renewal).
        KiwoomError: the server sent ``SYSTEM`` before the login answer.
        TimeoutError: no login answer within ``login_timeout``.
        TransportError: the socket could not be opened.
    """
    client = client_for(context)
    config = config_of(context)
    async with client.lease():
        token = await client.auth.token()
        for attempt in (1, 2):
            stack = AsyncExitStack()
            conn: Connection = await stack.enter_async_context(
                context.transport.connect(plan.url, headers=dict(plan.headers))
            )
            try:
                await _login(conn, token, config.login_timeout)
            except _RenewToken as exc:
                await stack.aclose()
                if attempt == 2:
                    raise KiwoomAuthError(
                        "WebSocket LOGIN refused the renewed token", str(exc)
                    ) from None
                _log.info("kiwoom WebSocket login refused the token (code %s); renewing once", exc)
                token = await client.auth.renew(token)
                continue
            except BaseException:
                await stack.aclose()
                raise
            _log.info("kiwoom WebSocket %s logged in", plan.name)
            async with stack:
                yield conn
            return


# --------------------------------------------------------------------------- normalise


class _Entry(msgspec.Struct):
    type: str
    item: str
    values: dict[str, str]
    name: str = ""


class _Message(msgspec.Struct):
    trnm: str = ""
    data: list[_Entry] | None = None
    return_code: int | str | None = None
    return_msg: str | None = None
    code: str | None = None
    message: str | None = None


_decode_typed = msgspec.json.Decoder(_Message).decode
_decode_any = msgspec.json.Decoder().decode

_ASK_FIDS = tuple((str(41 + i), str(61 + i)) for i in range(10))
_BID_FIDS = tuple((str(51 + i), str(71 + i)) for i in range(10))


class KiwoomNormaliser:
    """Per-connection normaliser (see :data:`marketfeed.Normaliser`).

    Trades (``0B``): price FID 10 (sign stripped), size FID 15 (``+`` buy-initiated ->
    side ``buy``, ``-`` -> ``sell``), time FID 20 (``HHmmss`` KST on the receive day),
    ``trade_id`` = ``YYYYMMDD-HHmmss-<cumulative volume FID 13>`` (unique per stock and
    day because the cumulative volume grows with every trade).

    Order book (``0D``): asks FIDs 41-50 / sizes 61-70, bids 51-60 / 71-80, time FID 21,
    totals 121 (ask) / 125 (bid); empty levels (price 0) skipped; a crossed or unordered
    book is dead-lettered, never emitted. Sizes in shares, prices in KRW.
    """

    def __init__(self, plan: ConnectionPlan, venue: str = VENUE) -> None:
        self.venue = venue
        self.plan = plan
        self.channels = tuple(dict.fromkeys(s.channel for s in plan.subscriptions))
        self.pings = 0

    def __call__(self, frame: Frame, receive_time: _dt.datetime) -> Sequence[Event]:
        try:
            message = _decode_typed(frame)
        except msgspec.ValidationError:
            return self._loose(frame, receive_time)
        except msgspec.DecodeError:
            if frame in ("PING", b"PING"):
                return self._ping(frame)
            raise ValueError(f"kiwoom frame is not JSON: {frame[:80]!r}") from None
        trnm = message.trnm
        if trnm == "REAL":
            return self._real(message.data or (), frame, receive_time)
        if trnm == "PING":
            return self._ping(frame)
        return self._control(
            trnm,
            message.return_code,
            message.return_msg,
            message.code,
            message.message,
            receive_time,
        )

    # -- control ---------------------------------------------------------------------

    def _ping(self, frame: Frame) -> list[Event]:
        self.pings += 1
        text = frame.decode() if isinstance(frame, bytes) else frame
        return [SendFrame(venue=self.venue, payload=text, binary=isinstance(frame, bytes))]

    def _loose(self, frame: Frame, receive_time: _dt.datetime) -> Sequence[Event]:
        message = _decode_any(frame)
        if not isinstance(message, dict):
            raise ValueError(f"kiwoom frame is not an object: {frame[:80]!r}")
        trnm = str(message.get("trnm") or "")
        if trnm == "REAL":
            entries: list[_Entry | _Bad] = []
            for raw in message.get("data") or ():
                try:
                    entries.append(msgspec.convert(raw, _Entry, strict=False))
                except msgspec.ValidationError as exc:
                    entries.append(_Bad(raw, str(exc)))
            return self._real(entries, frame, receive_time)
        if trnm == "PING":
            return self._ping(frame)
        code = message.get("code")
        return self._control(
            trnm,
            message.get("return_code"),
            _str_or_none(message.get("return_msg")),
            None if code is None else str(code),
            _str_or_none(message.get("message")),
            receive_time,
        )

    def _control(
        self,
        trnm: str,
        return_code: Any,
        return_msg: str | None,
        code: str | None,
        text: str | None,
        receive_time: _dt.datetime,
    ) -> list[Event]:
        if trnm in ("REG", "REMOVE", "LOGIN"):
            top, specific, msg = classify({"return_code": return_code, "return_msg": return_msg})
            if not top:
                if trnm != "REG":
                    return []
                return self._status("active", receive_time)
            _log.warning("kiwoom %s refused: %s (code %s)", trnm, msg, specific)
            return self._status("failed", receive_time, specific, f"{trnm}: {msg}")
        if trnm == "SYSTEM":
            _log.warning("kiwoom SYSTEM message %s: %s", code, text)
            return self._status("failed", receive_time, code, f"SYSTEM: {text or ''}")
        return []

    def _status(
        self,
        state: Any,
        receive_time: _dt.datetime,
        code: str | None = None,
        message: str | None = None,
    ) -> list[Event]:
        return [
            SubscriptionStatus(
                venue=self.venue,
                channel=channel,
                native_symbol="*",
                state=state,
                time=receive_time,
                code=code,
                message=message,
            )
            for channel in self.channels
        ]

    # -- market data -------------------------------------------------------------------

    def _real(
        self, entries: Sequence[Any], frame: Frame, receive_time: _dt.datetime
    ) -> list[Event]:
        events: list[Event] = []
        for entry in entries:
            try:
                if isinstance(entry, _Bad):
                    raise RowError(f"bad REAL entry: {entry.reason}")
                if entry.type == "0B":
                    events.append(self._trade(entry, receive_time))
                elif entry.type == "0D":
                    events.append(self._book(entry, receive_time))
            except (RowError, ValueError, KeyError) as exc:
                events.append(self._dead(entry, exc, receive_time))
        return events

    def _dead(self, entry: Any, exc: Exception, receive_time: _dt.datetime) -> DeadLetter:
        raw = entry.raw if isinstance(entry, _Bad) else msgspec.structs.asdict(entry)
        kind = raw.get("type", "?") if isinstance(raw, dict) else "?"
        reason = f"{type(exc).__name__}: {exc}"
        return DeadLetter(
            venue=self.venue,
            source=f"normalise:{self.plan.name}:{kind}",
            reason=reason,
            payload=_encode(raw).decode(),
            first_failure=receive_time,
            last_failure=receive_time,
        )

    def _trade(self, entry: _Entry, receive_time: _dt.datetime) -> Trade:
        v = entry.values
        price = abs(_required(v, "10", "price"))
        size = _required(v, "15", "trade volume")
        if price <= 0:
            raise RowError(f"non-positive price {v.get('10')!r}")
        if size == 0:
            raise RowError("zero trade volume")
        hhmmss = v.get("20", "")
        event_time, day = _event_time(hhmmss, receive_time)
        cumulative = v.get("13") or f"{price}x{abs(size)}"
        raw_size = v.get("15", "").lstrip()
        side: Side | None = (
            "buy" if raw_size.startswith("+") else "sell" if raw_size.startswith("-") else None
        )
        return Trade(
            venue=self.venue,
            symbol=to_symbol(entry.item),
            native_symbol=entry.item,
            event_time=event_time,
            receive_time=receive_time,
            trade_id=f"{day}-{hhmmss}-{cumulative}",
            price=price,
            size=abs(size),
            side=side,
        )

    def _book(self, entry: _Entry, receive_time: _dt.datetime) -> BookSnapshot:
        v = entry.values
        asks = _levels(v, _ASK_FIDS)
        bids = _levels(v, _BID_FIDS)
        for i in range(1, len(asks)):
            if asks[i][0] <= asks[i - 1][0]:
                raise RowError(f"asks not ascending at level {i + 1}")
        for i in range(1, len(bids)):
            if bids[i][0] >= bids[i - 1][0]:
                raise RowError(f"bids not descending at level {i + 1}")
        if asks and bids and bids[0][0] >= asks[0][0]:
            raise RowError(f"crossed book: best bid {bids[0][0]} >= best ask {asks[0][0]}")
        event_time, _day = _event_time(v.get("21", ""), receive_time)
        return BookSnapshot(
            venue=self.venue,
            symbol=to_symbol(entry.item),
            native_symbol=entry.item,
            event_time=event_time,
            receive_time=receive_time,
            bids=tuple(bids),
            asks=tuple(asks),
            depth=10,
            total_ask_size=_optional_abs(v.get("121")),
            total_bid_size=_optional_abs(v.get("125")),
        )


class _Bad:
    __slots__ = ("raw", "reason")

    def __init__(self, raw: Any, reason: str) -> None:
        self.raw = raw
        self.reason = reason


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _required(values: dict[str, str], fid: str, label: str) -> Decimal:
    number = signed(values.get(fid))
    if number is None:
        raise RowError(f"missing {label} (FID {fid})")
    return number


def _optional_abs(value: str | None) -> Decimal | None:
    try:
        number = signed(value)
    except RowError:
        return None
    return None if number is None else abs(number)


def _levels(
    values: dict[str, str], fids: tuple[tuple[str, str], ...]
) -> list[tuple[Decimal, Decimal]]:
    levels = []
    for price_fid, size_fid in fids:
        raw = values.get(price_fid)
        if not raw or raw == "0":
            continue
        price = signed(raw)
        if not price:
            continue
        size = signed(values.get(size_fid))
        if size is None or size < 0:
            raise RowError(f"bad size at FID {size_fid}: {values.get(size_fid)!r}")
        if size:
            levels.append((price.copy_abs(), size))
    return levels


def _event_time(hhmmss: str, receive_time: _dt.datetime) -> tuple[_dt.datetime, str]:
    """``HHmmss`` (KST) on the KST day of ``receive_time`` as UTC; a time more than 12 h
    after the receive time belongs to the previous day (frames around midnight)."""
    if len(hhmmss) != 6 or not hhmmss.isdigit():
        raise RowError(f"bad time {hhmmss!r} (expected HHmmss)")
    local_day = receive_time.astimezone(KST).date()
    try:
        local = _dt.datetime(
            local_day.year,
            local_day.month,
            local_day.day,
            int(hhmmss[:2]),
            int(hhmmss[2:4]),
            int(hhmmss[4:]),
            tzinfo=KST,
        )
    except ValueError:
        raise RowError(f"bad time {hhmmss!r}") from None
    if local - receive_time > _dt.timedelta(hours=12):
        local -= _dt.timedelta(days=1)
    return local.astimezone(_dt.UTC), f"{local:%Y%m%d}"
