"""WebSocket transports behind one seam.

``httpx-ws`` is the default client (pure Python on httpx). ``websockets`` is an optional,
faster client (``pip install "marketfeed[websockets]"``), chosen by measurement: see
``bench/transport`` and the README's performance section. Both satisfy the same
:class:`Connection` contract and pass the same tests (text and binary frames, ping/pong,
close codes, max message size, receive timeout).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
import httpx

from ._contract import Connection, Frame
from ._errors import ConnectionClosed, TransportError

__all__ = [
    "HttpxWsTransport",
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


class HttpxWsTransport:
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


class WebsocketsTransport:
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
        try:
            import websockets  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the installed extra
            raise TransportError(
                'transport "websockets" needs the extra: pip install "marketfeed[websockets]"'
            ) from None
        self.max_message_size = max_message_size
        self.keepalive_interval = keepalive_interval
        self.open_timeout = open_timeout

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


_TRANSPORTS: dict[str, type[Any]] = {
    "httpx-ws": HttpxWsTransport,
    "websockets": WebsocketsTransport,
}


def transport_names() -> list[str]:
    """Names accepted by ``supervisor.transport``."""
    return sorted(_TRANSPORTS)


def get_transport(name: str, **kwargs: Any) -> Transport:
    """Build the transport called ``name`` (``"httpx-ws"`` or ``"websockets"``).

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
