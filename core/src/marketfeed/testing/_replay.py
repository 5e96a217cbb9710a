"""A loopback fake venue: replays WebSocket captures and recorded HTTP responses.

One TCP port speaks HTTP/1.1 (h11) and WebSocket (wsproto) and routes by URL path, so one
server can stand in for several endpoints of several venues (OKX ``/ws/v5/public`` and
``/api/v5/...``, Upbit ``/websocket/v1`` and ``/v1/...``). Faults (dropped connection,
corrupted, skipped or stalled frames) are injected on request. See architecture section 8.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import anyio.abc
import h11
import msgspec
import wsproto
import wsproto.events as wse
from wsproto.connection import ConnectionState

from .._contract import Frame
from .._errors import ConnectionClosed
from ._capture import CaptureFrame, HttpRecord

__all__ = [
    "Faults",
    "HttpRequest",
    "HttpResponse",
    "ReplayServer",
    "ReplaySession",
    "ReplayWebSocket",
]

log = logging.getLogger("marketfeed.testing.replay")

_READ_SIZE = 65536


class Faults(msgspec.Struct, frozen=True, kw_only=True):
    """Faults injected into the **first** connection on a WebSocket path.

    Indices count the capture's ``"in"`` frames from 0, in file order.

    Attributes:
        drop_after: After sending this many replayed frames, drop the connection: the TCP
            connection is closed without a WebSocket close frame (the client sees 1006), or,
            when ``close_code`` is set, a close frame with that code is sent.
        corrupt: Frame index -> replacement sent instead (``str``: same message kind as
            the original, a binary original gets the UTF-8 bytes; ``bytes``: binary).
        skip: Frame indices not sent (e.g. to break a sequence or checksum chain).
        stall_after: After sending this many replayed frames, pause the replay for
            ``stall_for`` seconds, then continue. The connection stays alive meanwhile:
            WebSocket pings, application pings and ``on_message`` replies are answered.
        stall_for: Seconds of the stall.
        close_code: Close code sent at ``drop_after`` (``None``: drop without a close).
    """

    drop_after: int | None = None
    corrupt: Mapping[int, str | bytes] = msgspec.field(default_factory=dict)
    skip: AbstractSet[int] = frozenset()
    stall_after: int | None = None
    stall_for: float = 0.0
    close_code: int | None = None


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request received by the replay server (logged in ``server.requests``).

    Attributes:
        method: Upper-case method.
        path: URL path, percent-decoded (``"/api/v5/market/books"``).
        query: Query parameters, name -> values in order (percent-decoded).
        headers: Request headers with lower-case names (last value wins).
        body: Raw request body.
        time: Epoch seconds when the request was complete.
        target: The raw request target (path and query as sent).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    time: float
    target: str = ""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: the body is not JSON.
        """
        return json.loads(self.body)


@dataclass(frozen=True)
class HttpResponse:
    """What an HTTP handler answers.

    Attributes:
        status: HTTP status code.
        body: Body; ``str`` is sent as UTF-8.
        headers: Response headers; ``content-type`` defaults to ``application/json``
            (``content-length`` is always computed).
    """

    status: int = 200
    body: str | bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> HttpResponse:
        """A JSON response of ``data`` (encoded with msgspec)."""
        return cls(status=status, body=msgspec.json.encode(data))


HttpHandler = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]
WsHandler = Callable[["ReplayWebSocket"], Awaitable[Any]]
OnMessage = Callable[[str, "ReplaySession"], Any]


class ReplaySession:
    """One WebSocket connection accepted by the replay server (``server.ws_sessions``).

    Attributes:
        path: URL path connected to.
        query: Query parameters of the handshake URL.
        headers: Handshake request headers (lower-case names).
        index: 0 for the first connection on ``path``, 1 for the next, ...
        sent: Number of messages the server sent (replayed, injected and pongs).
        frames_sent: Those messages, in order (``str`` text, ``bytes`` binary).
        received: Messages received from the client, in order.
        replayed: Capture frames sent on this connection (``add_ws`` routes).
        next_frame: Index of the next capture ``"in"`` frame to replay.
        closed: Whether the connection is closed.
        close_code: Close code (from the client's or the server's close frame; 1006
            when the TCP connection ended without one).
        closed_by: ``"client"``, ``"server"`` (close frame) or ``"dropped"`` (no close
            frame, a fault or a broken connection), ``None`` while open.
        error: Exception raised by a WebSocket handler, if any.
        connected_at: Epoch seconds of the handshake.
    """

    def __init__(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str], index: int
    ) -> None:
        self.path = path
        self.query = query
        self.headers = headers
        self.index = index
        self.sent = 0
        self.frames_sent: list[Frame] = []
        self.received: list[Frame] = []
        self.replayed = 0
        self.next_frame = 0
        self.closed = False
        self.close_code: int | None = None
        self.closed_by: Literal["client", "server", "dropped"] | None = None
        self.error: BaseException | None = None
        self.connected_at = time.time()
        self._closed_event = anyio.Event()
        self._replay_done = anyio.Event()
        self._started = anyio.Event()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait until the connection is closed.

        Raises:
            TimeoutError: still open after ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            await self._closed_event.wait()

    @property
    def replay_done(self) -> bool:
        """Whether every capture frame was sent on this connection (``add_ws`` routes)."""
        return self._replay_done.is_set()

    async def wait_replayed(self, timeout: float = 10.0) -> None:
        """Wait until every capture frame was sent on this connection (``add_ws``).

        Raises:
            TimeoutError: not done after ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            await self._replay_done.wait()

    def __repr__(self) -> str:
        state = f"closed {self.close_code} by {self.closed_by}" if self.closed else "open"
        return (
            f"<ReplaySession {self.path} #{self.index} sent={self.sent} "
            f"received={len(self.received)} replayed={self.replayed} {state}>"
        )


class ReplayWebSocket:
    """The server end of one WebSocket connection, given to ``add_ws_handler`` handlers.

    ``receive`` returns whole messages (``str`` text, ``bytes`` binary) and raises
    :class:`marketfeed.ConnectionClosed` once the client closed. Protocol pings are
    answered automatically.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        conn: wsproto.WSConnection,
        session: ReplaySession,
        close_timeout: float = 2.0,
    ) -> None:
        self._stream = stream
        self._conn = conn
        self.session = session
        self.close_timeout = close_timeout
        self._lock = anyio.Lock()
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[Frame](math.inf)
        self._reader_done = anyio.Event()
        self._close_reason = ""
        self._eof_sent = False
        self._handshake_closed = anyio.Event()

    @property
    def path(self) -> str:
        """URL path of the connection."""
        return self.session.path

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by either side or dropped)."""
        return self.session.closed

    def _mark_closed(
        self, code: int, by: Literal["client", "server", "dropped"], reason: str = ""
    ) -> None:
        s = self.session
        if not s.closed:
            s.closed = True
            s.close_code = code
            s.closed_by = by
            self._close_reason = reason
            s._closed_event.set()
            self._inbox_send.close()

    def _state(self) -> ConnectionState:
        return self._conn.state

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.session.close_code or 1006, self._close_reason)

    async def send(self, frame: Frame) -> None:
        """Send one message: ``str`` as text, ``bytes`` as binary.

        Raises:
            ConnectionClosed: the connection is closed.
        """
        event: wse.Event
        if isinstance(frame, str):
            event = wse.TextMessage(data=frame)
        else:
            event = wse.BytesMessage(data=bytes(frame))
        async with self._lock:
            if self.session.closed:
                raise self._closed_error()
            data = self._conn.send(event)
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._mark_closed(1006, "dropped", "connection lost")
                raise self._closed_error() from None
            self.session.sent += 1
            self.session.frames_sent.append(frame)

    async def receive(self) -> Frame:
        """Wait for the client's next message.

        Raises:
            ConnectionClosed: the client closed (its code) or the connection broke (1006).
        """
        try:
            return await self._inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise self._closed_error() from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame with ``code`` and wait (at most ``close_timeout`` seconds)
        for the client's reply; idempotent."""
        async with self._lock:
            if self.session.closed:
                return
            self._mark_closed(code, "server", reason)
            if not self._eof_sent and self._conn.state is ConnectionState.OPEN:
                try:
                    await self._stream.send(self._conn.send(wse.CloseConnection(code, reason)))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
        with anyio.move_on_after(self.close_timeout):
            await self._handshake_closed.wait()

    async def abort(self) -> None:
        """Drop the connection without a close frame: everything sent so far is
        delivered, then the TCP connection ends (the client sees code 1006)."""
        async with self._lock:
            self._mark_closed(1006, "dropped", "dropped by the replay server")
            await self._send_eof()

    async def _send_eof(self) -> None:
        if not self._eof_sent:
            self._eof_sent = True
            try:
                await self._stream.send_eof()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass

    async def _reader(self, initial: bytes) -> None:
        """Read until the TCP connection ends; dispatch WebSocket events while open."""
        text_parts: list[str] = []
        byte_parts: list[bytes] = []
        data = initial
        try:
            while True:
                if data and self._conn.state in (
                    ConnectionState.OPEN,
                    ConnectionState.LOCAL_CLOSING,
                ):
                    self._conn.receive_data(data)
                    for event in self._conn.events():
                        if isinstance(event, wse.Message):
                            if isinstance(event, wse.TextMessage):
                                text_parts.append(event.data)
                                if not event.message_finished:
                                    continue
                                message: Frame = "".join(text_parts)
                                text_parts.clear()
                            else:
                                byte_parts.append(bytes(event.data))
                                if not event.message_finished:
                                    continue
                                message = b"".join(byte_parts)
                                byte_parts.clear()
                            if not self.session.closed:
                                self.session.received.append(message)
                                self._inbox_send.send_nowait(message)
                        elif isinstance(event, wse.Ping):
                            await self._reply(event.response())
                        elif isinstance(event, wse.CloseConnection):
                            if self._state() is ConnectionState.REMOTE_CLOSING:
                                await self._reply(event.response())
                            self._mark_closed(event.code, "client", event.reason or "")
                            self._handshake_closed.set()
                try:
                    data = await self._stream.receive(_READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self._mark_closed(1006, "dropped", "connection lost")
                    return
        except wsproto.utilities.RemoteProtocolError as exc:
            log.warning("replay server: WebSocket protocol error on %s: %s", self.path, exc)
            self._mark_closed(1002, "dropped", "protocol error")
        except Exception as exc:  # never let one connection take the server down
            log.exception("replay server: WebSocket reader on %s failed", self.path)
            self.session.error = exc
            self._mark_closed(1011, "dropped", "replay server error")
        finally:
            self._handshake_closed.set()
            self._reader_done.set()

    async def _reply(self, event: wse.Event) -> None:
        async with self._lock:
            if not self._eof_sent and self._conn.state in (
                ConnectionState.OPEN,
                ConnectionState.REMOTE_CLOSING,
            ):
                try:
                    await self._stream.send(self._conn.send(event))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self._mark_closed(1006, "dropped", "connection lost")

    async def _finish(self, timeout: float) -> None:
        """Half-close the TCP connection and wait for the client to close its side."""
        async with self._lock:
            await self._send_eof()
        with anyio.move_on_after(timeout):
            await self._reader_done.wait()


@dataclass
class _WsRoute:
    """One WebSocket path: a replay (``frames`` and options) or a scripted ``handler``."""

    frames: list[tuple[float | None, Frame]] = field(default_factory=list)
    handler: WsHandler | None = None
    speed: float | None = None
    wait_for_client: bool = True
    on_message: OnMessage | None = None
    faults: Faults | None = None
    on_reconnect: Literal["restart", "continue"] = "restart"
    answer_pings: bool = True
    connections: int = 0  # connections accepted so far
    position: int = 0  # next frame for on_reconnect="continue"


def _query_key(query: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def _body_key(body: str | bytes) -> str:
    """Request bodies compare as JSON when both parse, else as text."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return text


_RecordKey = tuple[str, str, tuple[tuple[str, str], ...]]


class ReplayServer:
    """A fake venue on loopback: WebSocket replays, recorded HTTP responses and scripted
    handlers on one port, routed by URL path.

    Use ``async with ReplayServer() as server:``; then point plugins at ``server.ws_url +
    "/ws/v5/public"`` and ``server.http_url``. Routes may be added before or after entering.
    On exit every connection is closed (WebSocket clients get close code 1001) and every
    task ends.

    Args:
        port: TCP port (``0``: a free port chosen by the OS, read it from :attr:`port`).
        host: Interface to listen on (loopback by default).

    Raises:
        OSError: the port cannot be bound (on entering).
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._ws_routes: dict[str, _WsRoute] = {}
        self._http_handlers: dict[tuple[str, str], HttpHandler] = {}
        self._records: dict[_RecordKey, list[HttpRecord]] = {}
        self._record_counters: dict[tuple[_RecordKey, str | None], int] = {}
        self.requests: list[HttpRequest] = []
        """Every HTTP request received (WebSocket handshakes are in :attr:`ws_sessions`)."""
        self.ws_sessions: list[ReplaySession] = []
        """Every WebSocket connection accepted, in order."""
        self.errors: list[BaseException] = []
        """Exceptions raised by handlers (also logged)."""
        self.connections = 0
        """TCP connections accepted (HTTP keep-alive reuses one for many requests)."""
        self._sockets: list[ReplayWebSocket] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._session_added = anyio.Event()

    # ---------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._port is None:
            raise RuntimeError("ReplayServer is not started: use `async with ReplayServer()`")
        return self._port

    @property
    def ws_url(self) -> str:
        """``"ws://127.0.0.1:PORT"`` (append the path)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """``"http://127.0.0.1:PORT"`` (append the path)."""
        return f"http://{self.host}:{self.port}"

    # ---------------------------------------------------------------- routes

    def add_ws(
        self,
        path: str,
        frames: Iterable[CaptureFrame | Frame],
        *,
        speed: float | None = None,
        wait_for_client: bool = True,
        on_message: OnMessage | None = None,
        faults: Faults | None = None,
        on_reconnect: Literal["restart", "continue"] = "restart",
        answer_pings: bool = True,
    ) -> None:
        """Replay a capture's ``"in"`` frames to every client connecting to ``path``.

        Text frames are sent as text, binary frames (``binary: true``) as binary with
        payload ``frame.encode("utf-8")``; ``"out"`` frames are not replayed. After the
        last frame the connection stays open (idle) until the client closes.

        Args:
            path: URL path (``"/ws/v5/public"``); the query string is ignored for routing.
            frames: Capture frames (``read_capture``), or plain ``str``/``bytes`` messages.
            speed: ``None`` sends as fast as the client reads; ``1.0`` keeps the recorded
                pacing (from ``t``); ``10.0`` is ten times faster.
            wait_for_client: Start the replay after the client's first message (its
                subscribe request), not at connect. Answered pings do not count.
            on_message: ``on_message(text, session)`` is called for every client message
                (binary decoded as UTF-8); it may return a frame or a list of frames
                (``str`` or ``bytes``; or an awaitable of them) sent at once, before the
                replay continues.
            faults: Faults for the first connection on ``path`` (:class:`Faults`).
            on_reconnect: ``"restart"`` replays from the beginning on every connection;
                ``"continue"`` resumes after the last frame sent on the previous one.
            answer_pings: Answer a text ``"ping"`` with ``"pong"`` (OKX) and ``"PING"``
                with a binary ``{"status":"UP"}`` (Upbit).

        Raises:
            ValueError: ``speed`` is not positive or ``on_reconnect`` is unknown.
        """
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive or None, got {speed!r}")
        if on_reconnect not in ("restart", "continue"):
            raise ValueError(f"on_reconnect must be 'restart' or 'continue', not {on_reconnect!r}")
        plan: list[tuple[float | None, Frame]] = []
        for item in frames:
            if isinstance(item, CaptureFrame):
                if item.dir == "in":
                    plan.append((item.t, item.payload))
            else:
                plan.append((None, item))
        self._ws_routes[_norm_path(path)] = _WsRoute(
            frames=plan,
            speed=speed,
            wait_for_client=wait_for_client,
            on_message=on_message,
            faults=faults,
            on_reconnect=on_reconnect,
            answer_pings=answer_pings,
        )

    def add_ws_handler(self, path: str, handler: WsHandler) -> None:
        """Serve ``path`` with a scripted peer: ``await handler(ws)`` per connection, where
        ``ws`` is a :class:`ReplayWebSocket` (``send``, ``receive``, ``close``, ``abort``).

        When the handler returns, the connection is closed with code 1000 (unless it was
        closed already); when it raises, with 1011 (the error is logged and kept in
        :attr:`errors` and the session).
        """
        self._ws_routes[_norm_path(path)] = _WsRoute(handler=handler)

    def add_http(self, records: Iterable[HttpRecord]) -> None:
        """Serve recorded HTTP responses.

        A request matches a record by method, path and query (compared as a sorted
        multiset of decoded pairs; the recorded host is ignored). Records sharing a key
        are served in order, the last one repeating. When records carry
        ``request_body``, a request whose body equals one (as JSON when both parse)
        gets those records. ``status`` ``None`` is 200; bodies are UTF-8 with
        ``content-type: application/json`` unless the record's headers say otherwise.
        Handlers added with :meth:`add_http_handler` take precedence.
        """
        for record in records:
            split = urlsplit(record.url)
            key = (record.method.upper(), _norm_path(unquote(split.path)), _query_key(split.query))
            self._records.setdefault(key, []).append(record)

    def add_http_handler(self, method: str, path: str, handler: HttpHandler) -> None:
        """Answer ``method path`` (any query) with ``handler(request)``, which returns an
        :class:`HttpResponse` or an awaitable of one. An exception gives a 500 (logged,
        kept in :attr:`errors`)."""
        self._http_handlers[(method.upper(), _norm_path(path))] = handler

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> ReplayServer:
        if self._tg is not None:
            raise RuntimeError("ReplayServer is already running")
        listener = await anyio.create_tcp_listener(
            local_host=self.host, local_port=self._requested_port, reuse_port=False
        )
        self._port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._listener = listener
        tg.start_soon(self._serve, listener, tg)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        if tg is None:
            return None
        self._tg = None
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            for ws in list(self._sockets):
                if not ws.closed:
                    with anyio.move_on_after(0.2):
                        await ws.close(1001, "replay server shutting down")
        tg.cancel_scope.cancel()
        try:
            await tg.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await self._listener.aclose()
        return None

    async def serve_forever(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled, entering the server first if needed (for ``marketfeed
        replay``). With ``port = await task_group.start(server.serve_forever)`` the caller
        resumes once the port is listening.

        Raises:
            OSError: the port cannot be bound.
        """
        if self._tg is None:
            async with self:
                task_status.started(self.port)
                await anyio.sleep_forever()
        else:
            task_status.started(self.port)
            await anyio.sleep_forever()

    async def wait_for_sessions(
        self, count: int, *, path: str | None = None, timeout: float = 10.0
    ) -> list[ReplaySession]:
        """Wait until at least ``count`` WebSocket connections were accepted (on ``path``
        if given) and return those sessions.

        Raises:
            TimeoutError: fewer after ``timeout`` seconds.
        """
        norm = _norm_path(path) if path is not None else None
        with anyio.fail_after(timeout):
            while True:
                found = [s for s in self.ws_sessions if norm is None or s.path == norm]
                if len(found) >= count:
                    return found
                await self._session_added.wait()

    # ---------------------------------------------------------------- connections

    async def _serve(
        self, listener: anyio.abc.Listener[anyio.abc.SocketStream], tg: anyio.abc.TaskGroup
    ) -> None:
        await listener.serve(self._handle_connection, task_group=tg)

    async def _handle_connection(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        async with stream:
            try:
                if await self._http_loop(stream):
                    # Deliver what is buffered, then wait for the client to close its side.
                    await stream.send_eof()
                    with anyio.move_on_after(1.0):
                        while await stream.receive(_READ_SIZE):
                            pass
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
                pass
            except Exception as exc:  # never let one connection take the server down
                self.errors.append(exc)
                log.exception("replay server: connection failed")

    async def _http_loop(self, stream: anyio.abc.SocketStream) -> bool:
        """Serve HTTP requests; return ``True`` when the TCP connection still needs a
        graceful close (``False`` after a WebSocket session, which closes itself)."""
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                event = await _next_event(stream, conn)
                if not isinstance(event, h11.Request):
                    if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                        return True
                    continue
                headers = [(bytes(k), bytes(v)) for k, v in event.headers]
                target = event.target.decode("latin-1")
                if _is_ws_upgrade(event):
                    # a refused handshake (unknown path) still needs the graceful close
                    return not await self._handle_ws(stream, conn, event, headers, target)
                body = bytearray()
                while not isinstance(part := await _next_event(stream, conn), h11.EndOfMessage):
                    if not isinstance(part, h11.Data):  # the client went away mid-request
                        return True
                    body += part.data
            except h11.RemoteProtocolError as exc:
                await self._send_error(stream, conn, 400, f"bad request: {exc}")
                return True
            request = _make_request(event.method.decode("ascii"), target, headers, bytes(body))
            self.requests.append(request)
            response = await self._respond(request)
            await self._send_response(stream, conn, response)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return True
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return True

    async def _respond(self, request: HttpRequest) -> HttpResponse:
        handler = self._http_handlers.get((request.method, request.path))
        if handler is not None:
            try:
                result = handler(request)
                if inspect.isawaitable(result):
                    result = await result
                if not isinstance(result, HttpResponse):
                    raise TypeError(
                        f"HTTP handler for {request.method} {request.path} returned "
                        f"{type(result).__name__}, not HttpResponse"
                    )
                return result
            except Exception as exc:
                self.errors.append(exc)
                log.exception(
                    "replay server: HTTP handler %s %s failed", request.method, request.path
                )
                return HttpResponse.json(
                    {"error": f"handler failed: {type(exc).__name__}: {exc}"}, status=500
                )
        key = (request.method, request.path, _query_key(urlsplit(request.target).query))
        records = self._records.get(key)
        if records:
            with_body = [r for r in records if r.request_body is not None]
            pool = records
            body_key: str | None = None
            if with_body:
                body_key = _body_key(request.body)
                same = [r for r in with_body if _body_key(r.request_body or "") == body_key]
                pool = same or [r for r in records if r.request_body is None] or records
                if not same:
                    body_key = None
            counter_key = (key, body_key)
            i = self._record_counters.get(counter_key, 0)
            self._record_counters[counter_key] = i + 1
            record = pool[min(i, len(pool) - 1)]
            return HttpResponse(
                status=200 if record.status is None else record.status,
                body=record.body,
                headers=record.headers or {},
            )
        return HttpResponse.json(
            {
                "error": "no recorded response or handler for this request",
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "served": self._served(),
            },
            status=404,
        )

    def _served(self) -> dict[str, list[str]]:
        http = sorted(
            f"{m} {p}" + ("?" + "&".join(f"{k}={v}" for k, v in q) if q else "")
            for m, p, q in self._records
        )
        http += sorted(f"{m} {p} (handler)" for m, p in self._http_handlers)
        return {"http": http, "ws": sorted(self._ws_routes)}

    async def _send_response(
        self, stream: anyio.abc.ByteStream, conn: h11.Connection, response: HttpResponse
    ) -> None:
        body = response.body.encode("utf-8") if isinstance(response.body, str) else response.body
        headers = {k.lower(): v for k, v in response.headers.items()}
        for hop in ("content-length", "transfer-encoding", "connection", "content-encoding"):
            headers.pop(hop, None)
        headers.setdefault("content-type", "application/json")
        headers["content-length"] = str(len(body))
        headers.setdefault("server", "marketfeed-replay")
        data = conn.send(h11.Response(status_code=response.status, headers=list(headers.items())))
        data = (data or b"") + (conn.send(h11.Data(data=body)) or b"")
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send(data)

    async def _send_error(
        self, stream: anyio.abc.ByteStream, conn: h11.Connection, status: int, message: str
    ) -> None:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                await self._send_response(
                    stream, conn, HttpResponse.json({"error": message}, status=status)
                )
            except (h11.LocalProtocolError, anyio.BrokenResourceError):
                pass

    async def _handle_ws(
        self,
        stream: anyio.abc.SocketStream,
        h11conn: h11.Connection,
        request: h11.Request,
        headers: list[tuple[bytes, bytes]],
        target: str,
    ) -> bool:
        """Run one WebSocket connection; ``False`` when the handshake was refused."""
        split = urlsplit(target)
        path = _norm_path(unquote(split.path))
        route = self._ws_routes.get(path)
        if route is None:
            await self._send_response(
                stream,
                h11conn,
                HttpResponse.json(
                    {"error": "no WebSocket route", "path": path, "served": self._served()},
                    status=404,
                ),
            )
            return False
        conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        conn.initiate_upgrade_connection(headers, target)
        for _ in conn.events():  # the Request event; no subprotocol or extension offered
            pass
        await stream.send(conn.send(wse.AcceptConnection()))
        trailing, _ = h11conn.trailing_data
        header_map = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
        query = _parse_query(split.query)
        session = ReplaySession(path, query, header_map, route.connections)
        route.connections += 1
        self.ws_sessions.append(session)
        self._session_added.set()
        self._session_added = anyio.Event()
        ws = ReplayWebSocket(stream, conn, session)
        self._sockets.append(ws)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ws._reader, bytes(trailing))
                try:
                    if route.handler is not None:
                        await route.handler(ws)
                    else:
                        await _replay(ws, route, session)
                except ConnectionClosed:
                    pass
                except Exception as exc:
                    session.error = exc
                    self.errors.append(exc)
                    log.exception("replay server: WebSocket handler for %s failed", path)
                    await ws.close(1011, "handler error")
                else:
                    await ws.close(1000)
                await ws._finish(ws.close_timeout)
                tg.cancel_scope.cancel()
        finally:
            ws._mark_closed(1006, "dropped", "replay server stopped")
            ws._inbox.close()
            self._sockets.remove(ws)
        return True


async def _replay(ws: ReplayWebSocket, route: _WsRoute, session: ReplaySession) -> None:
    """Run one ``add_ws`` connection: client messages and the replay, until the client
    closes (or a fault drops the connection)."""
    async with anyio.create_task_group() as tg:

        async def client_side() -> None:
            try:
                await _client_loop(ws, route, session)
            finally:
                tg.cancel_scope.cancel()

        tg.start_soon(client_side)
        dropped = await _replay_frames(ws, route, session)
        if not dropped:
            session._replay_done.set()
        await anyio.sleep_forever()  # idle until the client closes (cancels this group)


async def _client_loop(ws: ReplayWebSocket, route: _WsRoute, session: ReplaySession) -> None:
    while True:
        try:
            message = await ws.receive()
        except ConnectionClosed:
            return
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        replies: list[Frame] = []
        is_ping = route.answer_pings and text in ("ping", "PING")
        if is_ping:
            replies.append("pong" if text == "ping" else b'{"status":"UP"}')
        if route.on_message is not None:
            result = route.on_message(text, session)
            if inspect.isawaitable(result):
                result = await result
            if isinstance(result, str | bytes):
                replies.append(result)
            elif result is not None:
                replies.extend(result)
        for reply in replies:
            try:
                await ws.send(reply)
            except ConnectionClosed:
                return
        if not is_ping:
            session._started.set()


async def _replay_frames(ws: ReplayWebSocket, route: _WsRoute, session: ReplaySession) -> bool:
    """Send the route's frames; return ``True`` when a fault dropped the connection."""
    faults = route.faults if session.index == 0 else None
    frames = route.frames
    start = route.position if route.on_reconnect == "continue" else 0
    if start >= len(frames):
        start = len(frames)
    session.next_frame = start
    if route.wait_for_client:
        await session._started.wait()
    speed = route.speed
    base_t = next((t for t, _ in frames[start:] if t is not None), None)
    t0 = anyio.current_time()
    count = 0

    async def after_send() -> bool:
        assert faults is not None
        if faults.drop_after is not None and count >= faults.drop_after:
            if faults.close_code is not None:
                await ws.close(faults.close_code, "fault: drop_after")
            else:
                await ws.abort()
            return True
        if faults.stall_after is not None and count == faults.stall_after:
            await anyio.sleep(faults.stall_for)
            nonlocal t0
            t0 += faults.stall_for
        return False

    at_start = faults is not None and (faults.drop_after == 0 or faults.stall_after == 0)
    if at_start and await after_send():
        return True
    for i in range(start, len(frames)):
        t, payload = frames[i]
        if faults is not None and i in faults.skip:
            route.position = session.next_frame = i + 1
            continue
        if speed is not None and t is not None and base_t is not None:
            delay = t0 + (t - base_t) / speed - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
        if faults is not None and i in faults.corrupt:
            replacement = faults.corrupt[i]
            if isinstance(replacement, str) and isinstance(payload, bytes):
                payload = replacement.encode("utf-8")
            else:
                payload = replacement
        try:
            await ws.send(payload)
        except ConnectionClosed:
            return True
        count += 1
        session.replayed += 1
        route.position = session.next_frame = i + 1
        if faults is not None and await after_send():
            return True
    return False


async def _next_event(stream: anyio.abc.ByteStream, conn: h11.Connection) -> Any:
    """The next h11 event, reading from ``stream`` as needed (EOF is fed to h11).

    Raises:
        h11.RemoteProtocolError: the client sent something that is not HTTP/1.1.
    """
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive(_READ_SIZE)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            data = b""
        conn.receive_data(data)


def _norm_path(path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path


def _parse_query(query: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        result.setdefault(k, []).append(v)
    return result


def _make_request(
    method: str, target: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> HttpRequest:
    split = urlsplit(target)
    return HttpRequest(
        method=method.upper(),
        path=_norm_path(unquote(split.path)),
        query=_parse_query(split.query),
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers},
        body=body,
        time=time.time(),
        target=target,
    )


def _is_ws_upgrade(request: h11.Request) -> bool:
    upgrade = connection = False
    for name, value in request.headers:
        lname = name.lower()
        if lname == b"upgrade" and value.lower() == b"websocket":
            upgrade = True
        elif lname == b"connection" and b"upgrade" in value.lower():
            connection = True
    return upgrade and connection and request.method == b"GET"
