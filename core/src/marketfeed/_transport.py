"""WebSocket transports behind one seam.

``httpx-ws`` is the default client (pure Python on httpx). ``websockets``
(``pip install "marketfeed[websockets]"``) and ``picows`` (``pip install
"marketfeed[picows]"``, Cython, asyncio only) are optional, faster clients, chosen by
measurement: see ``bench/transport`` and the README's performance section. All three
satisfy the same :class:`Connection` contract and pass the same tests (text and binary
frames, fragmented messages, ping/pong, close codes, max message size, receive timeout).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
import httpx

from ._contract import Connection, Frame
from ._errors import ConnectionClosed, TransportError

if TYPE_CHECKING:
    import picows

__all__ = [
    "HttpxWsTransport",
    "PicowsTransport",
    "Transport",
    "WebsocketsTransport",
    "get_transport",
    "transport_names",
]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
_READ_SIZE = 64 * 1024
_CLOSE_TIMEOUT = 5.0


class Transport(Protocol):
    """Opens WebSocket connections.

    ``connect`` returns an async context manager yielding a :class:`Connection` whose
    ``receive`` returns whole messages (``str`` text, ``bytes`` binary) and raises
    :class:`ConnectionClosed` when the peer closes (its close code kept) or the network
    fails (code 1006). A message larger than ``max_message_size`` closes the connection
    with code 1009.
    """

    name: str

    def connect(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> Any:  # AbstractAsyncContextManager[Connection]
        """Open ``url``.

        Raises:
            TransportError: the handshake failed (refused, bad status, timeout).
        """
        ...


class _HttpxWsConnection:
    def __init__(self, session: Any, max_message_size: int) -> None:
        self._ws = session
        self._max = max_message_size
        self._closed: ConnectionClosed | None = None

    async def send(self, frame: Frame) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            if isinstance(frame, bytes):
                await self._ws.send_bytes(frame)
            else:
                await self._ws.send_text(frame)
        except Exception as exc:
            raise self._convert(exc) from exc

    async def receive(self) -> Frame:
        import wsproto.events as ev

        if self._closed is not None:
            raise self._closed
        while True:
            try:
                event = await self._ws.receive()
            except Exception as exc:
                raise self._convert(exc) from exc
            if isinstance(event, ev.TextMessage):
                text = str(event.data)
                # httpx-ws assembles whole messages itself: the size is checked after.
                if len(text) > self._max and len(text.encode("utf-8")) > self._max:
                    raise await self._too_big(len(text.encode("utf-8")))
                return text
            if isinstance(event, ev.BytesMessage):
                data = bytes(event.data)
                if len(data) > self._max:
                    raise await self._too_big(len(data))
                return data

    async def _too_big(self, size: int) -> ConnectionClosed:
        reason = f"message of {size} bytes exceeds max_message_size {self._max}"
        await self.aclose(1009, reason)
        assert self._closed is not None
        return self._closed

    async def ping(self, timeout: float = 10.0) -> float:
        """Send a WebSocket ping and return the round trip in seconds.

        Raises:
            TimeoutError: no pong within ``timeout``.
            ConnectionClosed: the connection is closed.
        """
        if self._closed is not None:
            raise self._closed
        start = anyio.current_time()
        with anyio.fail_after(timeout):
            try:
                pong = await self._ws.ping()
            except Exception as exc:
                raise self._convert(exc) from exc
            await pong.wait()
        return anyio.current_time() - start

    def _convert(self, exc: BaseException) -> ConnectionClosed:
        import httpx_ws

        if self._closed is None:
            if isinstance(exc, httpx_ws.WebSocketDisconnect):
                self._closed = ConnectionClosed(exc.code or 1005, exc.reason or "")
            else:
                self._closed = ConnectionClosed(1006, f"{type(exc).__name__}: {exc}")
        return self._closed

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is None:
            self._closed = ConnectionClosed(code, reason)
        try:
            await self._ws.close(code, reason)
        except Exception:  # closing a broken connection is best effort
            pass


class _TransportOptions:
    """Options every transport takes (see :class:`HttpxWsTransport` for their meaning)."""

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        keepalive_interval: float | None = 20.0,
        open_timeout: float = 10.0,
    ) -> None:
        self.max_message_size = max_message_size
        self.keepalive_interval = keepalive_interval
        self.open_timeout = open_timeout


class HttpxWsTransport(_TransportOptions):
    """The default transport: httpx + httpx-ws.

    httpx-ws has no message size limit of its own (its ``max_message_size_bytes`` is the
    socket read size), so a message larger than ``max_message_size`` is refused after
    httpx-ws assembled it: the connection is closed with 1009 and ``receive`` raises
    ``ConnectionClosed(1009)``. Measured receive rate: see ``bench/transport``.

    Args:
        max_message_size: Largest message accepted, bytes.
        keepalive_interval: Seconds between WebSocket pings (``None`` disables).
        open_timeout: Seconds allowed for TCP connect and handshake.
    """

    name = "httpx-ws"

    @asynccontextmanager
    async def connect(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[Connection]:
        import httpx_ws

        url = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
        async with httpx.AsyncClient(timeout=self.open_timeout) as client:
            try:
                cm: Any = httpx_ws.aconnect_ws(
                    url,
                    client,
                    headers=dict(headers or {}),
                    # httpx-ws uses this as the socket read size, not as a message limit
                    # (the limit is checked in receive): keep reads small.
                    max_message_size_bytes=_READ_SIZE,
                    keepalive_ping_interval_seconds=self.keepalive_interval,
                    keepalive_ping_timeout_seconds=self.keepalive_interval,
                    queue_size=4096,
                )
                session = await cm.__aenter__()
            except (httpx.HTTPError, httpx.InvalidURL, httpx_ws.HTTPXWSException, OSError) as exc:
                raise TransportError(f"cannot connect to {url}: {exc!r}") from exc
            conn = _HttpxWsConnection(session, self.max_message_size)
            try:
                yield conn
            finally:
                try:
                    # Our own shielded scope, entered and left here; the session's task
                    # group is left by ``cm.__aexit__`` below, outside any new scope.
                    with anyio.CancelScope(shield=True), anyio.move_on_after(self.open_timeout):
                        await conn.aclose()
                finally:
                    try:
                        await cm.__aexit__(None, None, None)
                    except Exception:  # closing a broken session is best effort
                        pass


def _require_extra(module: str) -> None:
    """Check that the optional package ``module`` (installed by the marketfeed extra of
    the same name) is importable.

    Raises:
        TransportError: it is not installed.
    """
    try:
        importlib.import_module(module)
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise TransportError(
            f'transport "{module}" needs the extra: pip install "marketfeed[{module}]"'
        ) from None


class _WebsocketsConnection:
    def __init__(self, ws: Any) -> None:
        self._ws = ws

    async def send(self, frame: Frame) -> None:
        import websockets

        try:
            await self._ws.send(frame)
        except websockets.ConnectionClosed as exc:
            raise _closed_from_websockets(exc) from exc

    async def receive(self) -> Frame:
        import websockets

        try:
            data: Frame = await self._ws.recv()
        except websockets.ConnectionClosed as exc:
            raise _closed_from_websockets(exc) from exc
        return data

    async def ping(self, timeout: float = 10.0) -> float:
        """Send a WebSocket ping and return the round trip in seconds.

        Raises:
            TimeoutError: no pong within ``timeout``.
            ConnectionClosed: the connection is closed.
        """
        import websockets

        with anyio.fail_after(timeout):
            try:
                waiter = await self._ws.ping()
                latency: float = await waiter
            except websockets.ConnectionClosed as exc:
                raise _closed_from_websockets(exc) from exc
        return latency

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        await self._ws.close(code, reason)


def _closed_from_websockets(exc: Any) -> ConnectionClosed:
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is not None:
        return ConnectionClosed(rcvd.code, rcvd.reason)
    sent = getattr(exc, "sent", None)
    if sent is not None:
        return ConnectionClosed(sent.code, sent.reason)
    return ConnectionClosed(1006, "connection lost")


class WebsocketsTransport(_TransportOptions):
    """Optional faster transport built on the ``websockets`` package (asyncio only).

    Args: as :class:`HttpxWsTransport`.
    """

    name = "websockets"

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        keepalive_interval: float | None = 20.0,
        open_timeout: float = 10.0,
    ) -> None:
        _require_extra("websockets")
        super().__init__(
            max_message_size=max_message_size,
            keepalive_interval=keepalive_interval,
            open_timeout=open_timeout,
        )

    @asynccontextmanager
    async def connect(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[Connection]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        try:
            ws = await connect(
                url,
                additional_headers=dict(headers or {}),
                max_size=self.max_message_size,
                ping_interval=self.keepalive_interval,
                ping_timeout=self.keepalive_interval,
                open_timeout=self.open_timeout,
                compression=None,
                max_queue=4096,
                close_timeout=_CLOSE_TIMEOUT,
            )
        except (WebSocketException, OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect to {url}: {exc!r}") from exc
        conn = _WebsocketsConnection(ws)
        try:
            yield conn
        finally:
            with anyio.CancelScope(shield=True):
                await ws.close()


# ----------------------------------------------------------------------------- picows

_PICOWS_MAX_QUEUE = 4096


def _close_code_value(code: Any) -> int:
    """A picows close code (``WSCloseCode`` member or pseudo-member, or int) as int."""
    return int(getattr(code, "value", code))


@functools.cache
def _picows_connection_type() -> type[Any]:
    """The picows listener that is also the :class:`Connection` (built on first use,
    because picows is an optional extra)."""
    import picows

    text_type = picows.WSMsgType.TEXT
    binary_type = picows.WSMsgType.BINARY
    continuation_type = picows.WSMsgType.CONTINUATION
    pong_type = picows.WSMsgType.PONG
    close_type = picows.WSMsgType.CLOSE

    def closed_from_info(info: Any) -> ConnectionClosed:
        return ConnectionClosed(_close_code_value(info.code), info.reason or "")

    class _PicowsConnection(picows.WSListener):
        """picows calls ``on_ws_*`` per frame on the event loop; whole messages go to a
        bounded deque read by ``receive``. Reading the socket pauses while the deque
        holds ``max_queue`` messages and resumes when it is down to a quarter."""

        def __init__(self, max_message_size: int, max_queue: int) -> None:
            super().__init__()
            self._max = max_message_size
            self._high = max_queue
            self._low = max_queue // 4
            self._loop = asyncio.get_running_loop()
            self._queue: deque[Frame] = deque()
            self._waiter: asyncio.Future[None] | None = None
            self._paused = False
            self._closed: ConnectionClosed | None = None
            self._frag_type: Any = None  # message type of a fragmented message under way
            self._frag_parts: list[bytes] = []
            self._frag_size = 0
            self._pings: dict[bytes, asyncio.Future[None]] = {}
            self._ping_count = 0
            self._writable = asyncio.Event()
            self._writable.set()
            self._gone = asyncio.Event()
            self._transport: picows.WSTransport

        # -- picows callbacks (event loop, synchronous) ---------------------------------

        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            self._transport = transport

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if (
                frame.fin
                and self._frag_type is None
                and self._closed is None
                and frame.payload_size <= self._max
            ):
                kind = frame.msg_type
                try:
                    if kind == text_type:
                        message: Frame = frame.get_payload_as_utf8_text()
                    elif kind == binary_type:
                        message = frame.get_payload_as_bytes()
                    else:
                        self._on_other(transport, frame)
                        return
                except UnicodeDecodeError:
                    self._fail(transport, 1007, "invalid UTF-8 in a text message")
                    return
                # self._push(transport, message), inlined: this is the hot path
                queue = self._queue
                queue.append(message)
                waiter = self._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                if len(queue) >= self._high and not self._paused:
                    self._paused = True
                    transport.underlying_transport.pause_reading()
            else:
                self._on_other(transport, frame)

        def _push(self, transport: picows.WSTransport, message: Frame) -> None:
            queue = self._queue
            queue.append(message)
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if len(queue) >= self._high and not self._paused:
                self._paused = True
                transport.underlying_transport.pause_reading()

        def _on_other(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            """Control frames, fragments, frames over ``max_message_size`` (picows refuses
            them from their header, sending close 1009, but may already be reading one:
            it is never delivered) and data frames after the close."""
            kind = frame.msg_type
            if kind not in (text_type, binary_type, continuation_type):
                self._on_control(transport, frame, kind)
                return
            if self._closed is not None:
                return  # the connection is closing: data is dropped
            if kind == continuation_type:
                if self._frag_type is None:
                    self._fail(transport, 1002, "continuation frame outside a message")
                    return
            elif self._frag_type is not None:
                self._fail(transport, 1002, "new message inside a fragmented message")
                return
            else:  # the first frame of a message
                self._frag_type = kind
            if not self._add_fragment(transport, frame) or not frame.fin:
                return
            data = b"".join(self._frag_parts)
            is_text = self._frag_type == text_type
            self._drop_fragments()
            try:
                self._push(transport, data.decode("utf-8") if is_text else data)
            except UnicodeDecodeError:
                self._fail(transport, 1007, "invalid UTF-8 in a text message")

        def _add_fragment(self, transport: picows.WSTransport, frame: picows.WSFrame) -> bool:
            """Keep one fragment; ``False`` when the message grew too big (closed 1009)."""
            size = self._frag_size + frame.payload_size
            if size > self._max:
                self._fail(transport, 1009, f"message over {self._max} bytes")
                return False
            self._frag_size = size
            self._frag_parts.append(frame.get_payload_as_bytes())
            return True

        def _drop_fragments(self) -> None:
            self._frag_type = None
            self._frag_parts = []
            self._frag_size = 0

        def _on_control(
            self, transport: picows.WSTransport, frame: picows.WSFrame, kind: Any
        ) -> None:
            if kind == pong_type:
                self._on_pong(frame.get_payload_as_bytes())
            elif kind == close_type:
                if self._closed is None:
                    handshake = transport.close_handshake
                    if transport.is_close_frame_sent and handshake.sent is not None:
                        # picows failed the connection first (e.g. 1009): its code counts
                        self._closed = closed_from_info(handshake.sent)
                    else:
                        received = _close_code_value(frame.get_close_code())
                        reason = frame.get_close_reason() or ""
                        self._closed = ConnectionClosed(received or 1005, reason)
                if not transport.is_close_frame_sent:
                    echo = frame.get_close_code()
                    if not _close_code_value(echo):  # no code in the peer's close frame
                        echo = picows.WSCloseCode.OK
                    transport.send_close(echo, frame.get_close_message())
                transport.disconnect()
                self._wake()
            # PING: answered by picows itself (enable_auto_pong), never delivered here.

        def is_user_specific_pong(self, frame: picows.WSFrame) -> bool:
            # Called instead of on_ws_frame while picows' keepalive waits for a pong:
            # any pong proves the peer alive, and may also answer one of our pings.
            if frame.msg_type == pong_type:
                self._on_pong(frame.get_payload_as_bytes())
                return True
            return False

        def _on_pong(self, payload: bytes) -> None:
            pings = self._pings
            if payload in pings:
                # a pong answers its ping and every earlier one (RFC 6455 5.5.3)
                for key, waiter in list(pings.items()):
                    if not waiter.done():
                        waiter.set_result(None)
                    if key == payload:
                        break

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            if self._closed is None:
                handshake = transport.close_handshake
                if handshake is not None and handshake.sent is not None:
                    self._closed = closed_from_info(handshake.sent)
                else:
                    self._closed = ConnectionClosed(1006, "connection lost")
            for waiter in self._pings.values():
                if not waiter.done():
                    waiter.set_exception(self._closed)
            self._gone.set()
            self._writable.set()
            self._wake()

        def pause_writing(self) -> None:
            self._writable.clear()

        def resume_writing(self) -> None:
            self._writable.set()

        def _fail(self, transport: picows.WSTransport, code: int, reason: str) -> None:
            """Fail the connection: close frame ``code`` to the peer, then disconnect;
            messages already queued stay readable, then ``receive`` raises."""
            if self._closed is None:
                self._closed = ConnectionClosed(code, reason)
            self._drop_fragments()
            if not transport.is_close_frame_sent and not transport.is_disconnected:
                transport.send_close(picows.WSCloseCode(code), reason)
            transport.disconnect()
            self._wake()

        def _wake(self) -> None:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        def _current_close(self) -> ConnectionClosed | None:
            """The close that ends the connection, once there is one."""
            if self._closed is None:
                transport = self._transport
                if transport.is_disconnected or transport.is_close_frame_sent:
                    handshake = transport.close_handshake
                    if handshake is not None and handshake.sent is not None:
                        self._closed = closed_from_info(handshake.sent)
                    else:
                        self._closed = ConnectionClosed(1006, "connection lost")
            return self._closed

        # -- Connection ------------------------------------------------------------------

        async def send(self, frame: Frame) -> None:
            closed = self._current_close()
            if closed is not None:
                raise closed
            if not self._writable.is_set():  # the socket's write buffer is full
                await self._writable.wait()
                closed = self._current_close()
                if closed is not None:
                    raise closed
            if isinstance(frame, str):
                self._transport.send(text_type, frame)
            else:
                self._transport.send(binary_type, frame)

        async def receive(self) -> Frame:
            queue = self._queue
            while not queue:
                if self._closed is not None:
                    raise self._closed
                if self._waiter is not None:
                    raise RuntimeError("another task is already waiting in receive()")
                waiter = self._loop.create_future()
                self._waiter = waiter
                try:
                    await waiter
                finally:
                    self._waiter = None
            message = queue.popleft()
            if self._paused and len(queue) <= self._low:
                self._resume_reading()
            return message

        def _resume_reading(self) -> None:
            self._paused = False
            self._transport.underlying_transport.resume_reading()

        async def ping(self, timeout: float = 10.0) -> float:
            """Send a WebSocket ping and return the round trip in seconds.

            Raises:
                TimeoutError: no pong within ``timeout``.
                ConnectionClosed: the connection is closed.
            """
            closed = self._current_close()
            if closed is not None:
                raise closed
            self._ping_count += 1
            payload = self._ping_count.to_bytes(8, "big")
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._pings[payload] = waiter
            start = self._loop.time()
            try:
                self._transport.send_ping(payload)
                with anyio.fail_after(timeout):
                    await waiter
            finally:
                del self._pings[payload]
            return self._loop.time() - start

        async def aclose(self, code: int = 1000, reason: str = "") -> None:
            transport = self._transport
            if self._closed is None:
                self._closed = ConnectionClosed(code, reason)
            self._queue.clear()
            self._drop_fragments()
            self._wake()
            if transport.is_disconnected:
                return
            if not transport.is_close_frame_sent:
                transport.send_close(picows.WSCloseCode(code), reason)
            if self._paused:
                self._resume_reading()  # to read the peer's close reply
            with anyio.move_on_after(_CLOSE_TIMEOUT):
                await self._gone.wait()
            if not transport.is_disconnected:
                transport.disconnect(graceful=False)

    return _PicowsConnection


class PicowsTransport(_TransportOptions):
    """Optional fastest transport built on picows (Cython, asyncio only):
    ``pip install "marketfeed[picows]"``.

    picows hands over frames, not messages: this transport reassembles fragmented
    messages (continuation frames) and checks their total size, so ``receive`` returns
    whole messages like the other transports. A message (or a single frame, refused by
    picows from its header before the payload is read) larger than ``max_message_size``
    closes the connection with 1009. Whole messages wait in a queue of at most
    ``max_queue`` messages; when it is full, reading from the socket pauses (asyncio
    ``pause_reading``) until ``receive`` has drained it to a quarter, so a slow consumer
    pushes back on the peer through TCP instead of growing memory (the queue can exceed
    ``max_queue`` by the messages of the one socket read under way). ``send`` waits while
    the socket's write buffer is above its high-water mark. Server pings are answered by
    picows; keepalive pings go out after ``keepalive_interval`` seconds without incoming
    data and the connection closes (1001) when no pong follows within the same interval.
    picows logs to the ``picows`` logger (INFO per connection, ERROR on protocol errors).

    Args:
        max_message_size: Largest message accepted, bytes.
        keepalive_interval: Seconds of silence before a keepalive ping (``None`` disables).
        open_timeout: Seconds allowed for TCP connect and handshake.
        max_queue: Whole messages buffered before reading pauses.

    Raises:
        TransportError: picows is not installed.
    """

    name = "picows"

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        keepalive_interval: float | None = 20.0,
        open_timeout: float = 10.0,
        max_queue: int = _PICOWS_MAX_QUEUE,
    ) -> None:
        _require_extra("picows")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        super().__init__(
            max_message_size=max_message_size,
            keepalive_interval=keepalive_interval,
            open_timeout=open_timeout,
        )
        self.max_queue = max_queue

    @asynccontextmanager
    async def connect(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[Connection]:
        import picows

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise TransportError('transport "picows" runs on asyncio only') from None
        conn_type = _picows_connection_type()
        max_size, max_queue = self.max_message_size, self.max_queue
        keepalive = self.keepalive_interval
        try:
            with anyio.fail_after(self.open_timeout):
                transport, conn = await picows.ws_connect(
                    lambda: conn_type(max_size, max_queue),
                    url,
                    extra_headers=dict(headers) if headers else None,
                    websocket_handshake_timeout=self.open_timeout,
                    max_frame_size=max_size,
                    enable_auto_ping=bool(keepalive),
                    auto_ping_idle_timeout=keepalive or 20.0,
                    auto_ping_reply_timeout=keepalive or 20.0,
                    enable_auto_pong=True,
                )
        except (picows.WSError, OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect to {url}: {exc!r}") from exc
        connection = cast(Connection, conn)
        try:
            yield connection
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT + 1.0):
                try:
                    await connection.aclose()
                finally:
                    if not transport.is_disconnected:
                        transport.disconnect(graceful=False)
                    try:
                        # re-raises the local failure that ended the connection (a
                        # protocol error, 1009), already reported as ConnectionClosed
                        await transport.wait_disconnected()
                    except Exception:
                        pass


_TRANSPORTS: dict[str, type[Any]] = {
    "httpx-ws": HttpxWsTransport,
    "picows": PicowsTransport,
    "websockets": WebsocketsTransport,
}


def transport_names() -> list[str]:
    """Names accepted by ``supervisor.transport``."""
    return sorted(_TRANSPORTS)


def get_transport(name: str, **kwargs: Any) -> Transport:
    """Build the transport called ``name`` (``"httpx-ws"``, ``"websockets"`` or ``"picows"``).

    ``kwargs`` go to the transport's constructor (``max_message_size``,
    ``keepalive_interval``, ``open_timeout``; ``picows`` also takes ``max_queue``).

    Raises:
        TransportError: unknown name, or its optional extra is not installed.
    """
    try:
        cls = _TRANSPORTS[name]
    except KeyError:
        raise TransportError(
            f"unknown transport {name!r}; choose one of {', '.join(transport_names())}"
        ) from None
    transport: Transport = cls(**kwargs)
    return transport
