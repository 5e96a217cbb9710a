"""Every WebSocket transport (httpx-ws, websockets, picows) against the replay server's
scripted peers and a raw-frame peer: text and binary frames both ways, fragmented messages,
ping/pong both ways, close codes, abrupt drops, max message size, receive timeout, clean
exit, connect failures, and (picows) backpressure from its bounded queue."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import socket
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
import wsproto
import wsproto.events as wse
from marketfeed import ConnectionClosed, TransportError, get_transport
from marketfeed.testing import ReplayServer, ReplayWebSocket

DATA = Path(__file__).parent / "data"
TRANSPORTS = ["httpx-ws", "websockets", "picows"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    async with ReplayServer() as srv:
        yield srv


def _first_in_frames(name: str, n: int) -> list[dict[str, object]]:
    """The first ``n`` "in" frames of a capture, parsed with plain json."""
    rows = [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines()]
    return [r for r in rows if r["dir"] == "in"][:n]


OKX_TEXT = [str(r["frame"]) for r in _first_in_frames("okx.20220513.ws.1.jsonl", 5)]
UPBIT_BINARY = [
    str(r["frame"]).encode("utf-8")
    for r in _first_in_frames("upbit.20210405.ws.1.head120.jsonl", 5)
]


async def echo(ws: ReplayWebSocket) -> None:
    """Echo every message back with its kind (text stays text, binary stays binary)."""
    while True:
        await ws.send(await ws.receive())


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_text_and_binary_frames_both_ways(server: ReplayServer, name: str) -> None:
    server.add_ws_handler("/echo", echo)
    transport = get_transport(name)
    sent: list[str | bytes] = [OKX_TEXT[0], UPBIT_BINARY[0], OKX_TEXT[1], UPBIT_BINARY[1]]
    with anyio.fail_after(5):
        async with transport.connect(server.ws_url + "/echo") as conn:
            for frame in sent:
                await conn.send(frame)
            got = [await conn.receive() for _ in sent]
    assert got == sent
    assert [type(g) for g in got] == [str, bytes, str, bytes]
    (session,) = server.ws_sessions
    assert session.received == sent  # the server saw the same kinds and bytes


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_server_frames_arrive_in_order(server: ReplayServer, name: str) -> None:
    async def burst(ws: ReplayWebSocket) -> None:
        for text, data in zip(OKX_TEXT, UPBIT_BINARY, strict=True):
            await ws.send(text)
            await ws.send(data)
        await ws.receive()  # until the client closes

    server.add_ws_handler("/burst", burst)
    expected = [f for pair in zip(OKX_TEXT, UPBIT_BINARY, strict=True) for f in pair]
    with anyio.fail_after(5):
        async with get_transport(name).connect(server.ws_url + "/burst") as conn:
            got = [await conn.receive() for _ in expected]
    assert got == expected


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_ping_pong(server: ReplayServer, name: str) -> None:
    server.add_ws_handler("/echo", echo)
    with anyio.fail_after(5):
        async with get_transport(name).connect(server.ws_url + "/echo") as conn:
            rtt = await conn.ping(timeout=2.0)  # type: ignore[attr-defined]
            assert isinstance(rtt, float)
            assert 0.0 <= rtt < 2.0
            # the connection still carries data after the ping
            await conn.send("after ping")
            assert await conn.receive() == "after ping"


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
@pytest.mark.parametrize(("code", "reason"), [(4000, "bye"), (1000, "")])
async def test_close_code_seen_by_client(
    server: ReplayServer, name: str, code: int, reason: str
) -> None:
    async def close_after_one(ws: ReplayWebSocket) -> None:
        await ws.send(OKX_TEXT[0])
        await ws.close(code, reason)

    server.add_ws_handler("/close", close_after_one)
    with anyio.fail_after(5):
        async with get_transport(name).connect(server.ws_url + "/close") as conn:
            assert await conn.receive() == OKX_TEXT[0]
            with pytest.raises(ConnectionClosed) as info:
                await conn.receive()
            # later calls keep raising the same close
            with pytest.raises(ConnectionClosed) as again:
                await conn.receive()
    assert info.value.code == code
    assert info.value.reason == reason
    assert again.value.code == code
    (session,) = server.ws_sessions
    assert session.closed_by == "server"
    assert session.close_code == code


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_abrupt_drop_is_1006(server: ReplayServer, name: str) -> None:
    async def drop_after_two(ws: ReplayWebSocket) -> None:
        await ws.send(OKX_TEXT[0])
        await ws.send(UPBIT_BINARY[0])
        await ws.abort()

    server.add_ws_handler("/drop", drop_after_two)
    with anyio.fail_after(5):
        async with get_transport(name).connect(server.ws_url + "/drop") as conn:
            assert await conn.receive() == OKX_TEXT[0]
            assert await conn.receive() == UPBIT_BINARY[0]
            with pytest.raises(ConnectionClosed) as info:
                await conn.receive()
            with pytest.raises(ConnectionClosed):
                await conn.send("too late")
    assert info.value.code == 1006


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_message_above_max_size_closes_1009(
    server: ReplayServer, name: str, kind: str
) -> None:
    limit = 1024
    ok = "x" * limit
    too_big = "y" * (limit + 1)

    async def send_sizes(ws: ReplayWebSocket) -> None:
        for text in (ok, too_big):
            await ws.send(text if kind == "text" else text.encode("ascii"))
        await ws.receive()

    server.add_ws_handler("/big", send_sizes)
    transport = get_transport(name, max_message_size=limit)
    with anyio.fail_after(5):
        async with transport.connect(server.ws_url + "/big") as conn:
            first = await conn.receive()
            assert len(first) == limit  # exactly at the limit passes
            with pytest.raises(ConnectionClosed) as info:
                await conn.receive()
    assert info.value.code == 1009
    (session,) = server.ws_sessions
    await session.wait_closed(timeout=5)
    assert session.close_code == 1009  # the client told the server why


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_receive_timeout_keeps_connection_usable(server: ReplayServer, name: str) -> None:
    async def answer_on_request(ws: ReplayWebSocket) -> None:
        while True:
            if await ws.receive() == "go":
                await ws.send(OKX_TEXT[2])

    server.add_ws_handler("/slow", answer_on_request)
    with anyio.fail_after(5):
        async with get_transport(name).connect(server.ws_url + "/slow") as conn:
            with pytest.raises(TimeoutError), anyio.fail_after(0.2):
                await conn.receive()
            await conn.send("go")
            assert await conn.receive() == OKX_TEXT[2]
            with pytest.raises(TimeoutError), anyio.fail_after(0.1):
                await conn.receive()
            await conn.send("go")
            assert await conn.receive() == OKX_TEXT[2]


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_client_close_code_reaches_server(server: ReplayServer, name: str) -> None:
    server.add_ws_handler("/echo", echo)
    with anyio.fail_after(5):
        async with get_transport(name).connect(server.ws_url + "/echo") as conn:
            await conn.send("hello")
            assert await conn.receive() == "hello"
            await conn.aclose(4001, "client done")
            with pytest.raises(ConnectionClosed):
                await conn.send("after close")
    (session,) = server.ws_sessions
    await session.wait_closed(timeout=5)
    assert (session.closed_by, session.close_code) == ("client", 4001)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_connect_refused_raises_transport_error(name: str) -> None:
    port = _free_port()  # bound then released: nothing listens there
    transport = get_transport(name, open_timeout=2.0)
    with anyio.fail_after(5), pytest.raises(TransportError) as info:
        async with transport.connect(f"ws://127.0.0.1:{port}/ws"):
            pass
    assert not isinstance(info.value, ConnectionClosed)
    assert str(port) in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_unknown_path_handshake_fails(server: ReplayServer, name: str) -> None:
    server.add_ws_handler("/echo", echo)
    with anyio.fail_after(5), pytest.raises(TransportError) as info:
        async with get_transport(name).connect(server.ws_url + "/nowhere"):
            pass
    assert not isinstance(info.value, ConnectionClosed)
    assert server.ws_sessions == []


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_exception_in_body_propagates_unwrapped(server: ReplayServer, name: str) -> None:
    server.add_ws_handler("/echo", echo)

    class Boom(Exception):
        pass

    with anyio.fail_after(5), pytest.raises(Boom):
        async with get_transport(name).connect(server.ws_url + "/echo") as conn:
            await conn.send("x")
            raise Boom
    (session,) = server.ws_sessions
    await session.wait_closed(timeout=5)
    assert session.closed_by == "client"


def test_unknown_transport_name() -> None:
    with pytest.raises(TransportError, match="httpx-ws"):
        get_transport("carrier-pigeon")


# ----------------------------------------------------------------------------- raw peer
# The replay server speaks whole messages; these tests need a peer that writes raw frames
# (fragments, pings between fragments) and records what the client answers.


def raw_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked server-to-client frame (RFC 6455 5.2)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


TEXT, BINARY, CONTINUATION, PING = 0x1, 0x2, 0x0, 0x9


def fragments(opcode: int, data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` as a fragmented message cut at the byte offsets ``cuts``."""
    bounds = [0, *cuts, len(data)]
    parts = [data[a:b] for a, b in itertools.pairwise(bounds)]
    return [
        raw_frame(opcode if i == 0 else CONTINUATION, part, fin=i == len(parts) - 1)
        for i, part in enumerate(parts)
    ]


class RawPeer:
    """Server end: wsproto for the handshake and for reading the client's frames, raw
    bytes for what it sends."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.pongs: list[bytes] = []
        self.close_code: int | None = None
        self.closed = anyio.Event()

    async def handshake(self) -> None:
        while True:
            self.ws.receive_data(await self.stream.receive())
            for event in self.ws.events():
                if isinstance(event, wse.Request):
                    await self.stream.send(self.ws.send(wse.AcceptConnection()))
                    return

    async def write(self, *frames: bytes) -> None:
        await self.stream.send(b"".join(frames))

    async def read_until_closed(self) -> None:
        try:
            while True:
                try:
                    data = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, wse.Pong):
                        self.pongs.append(bytes(event.payload))
                    elif isinstance(event, wse.CloseConnection):
                        self.close_code = event.code
                        await self.stream.send(self.ws.send(event.response()))
                        return
        finally:
            self.closed.set()


@asynccontextmanager
async def raw_server(
    script: Callable[[RawPeer], Awaitable[None]],
) -> AsyncIterator[tuple[str, list[RawPeer]]]:
    """A loopback server running ``script(peer)`` per connection; yields its URL and the
    peers seen."""
    peers: list[RawPeer] = []

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            peer = RawPeer(stream)
            peers.append(peer)
            await peer.handshake()
            async with anyio.create_task_group() as tg:
                tg.start_soon(peer.read_until_closed)
                await script(peer)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(listener.serve, handle)
        yield f"ws://127.0.0.1:{port}/raw", peers
        tg.cancel_scope.cancel()


# Upbit's market list carries Korean names: a text message whose UTF-8 is cut inside a
# character by the fragmentation below.
KOREAN = '{"market":"KRW-BTC","korean_name":"비트코인","english_name":"Bitcoin"}'


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_fragmented_messages_are_reassembled(name: str) -> None:
    okx = OKX_TEXT[0].encode("utf-8")
    upbit = UPBIT_BINARY[0]
    korean = KOREAN.encode("utf-8")
    cut = korean.index("트".encode()) + 1  # inside the 3-byte character
    assert korean[:cut].decode("utf-8", "replace") != korean[:cut].decode("utf-8", "ignore")
    third = len(okx) // 3
    text_parts = fragments(TEXT, okx, [third, 2 * third])

    async def script(peer: RawPeer) -> None:
        # a ping between two fragments of one message (control frames may interleave)
        await peer.write(text_parts[0], raw_frame(PING, b"between fragments"), *text_parts[1:])
        await peer.write(*fragments(BINARY, upbit, [len(upbit) // 2]))
        await peer.write(*fragments(TEXT, korean, [cut]))
        await peer.write(raw_frame(TEXT, OKX_TEXT[1].encode("utf-8")))

    expected: list[str | bytes] = [OKX_TEXT[0], UPBIT_BINARY[0], KOREAN, OKX_TEXT[1]]
    with anyio.fail_after(5):
        async with raw_server(script) as (url, peers):
            async with get_transport(name).connect(url) as conn:
                got = [await conn.receive() for _ in expected]
            (peer,) = peers
            await peer.closed.wait()
    assert got == expected
    assert [type(g) for g in got] == [str, bytes, str, str]
    assert peer.pongs == [b"between fragments"]  # the server's ping was answered
    assert peer.close_code == 1000


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_fragmented_message_above_max_size_closes_1009(name: str) -> None:
    limit = 1024
    at_limit = OKX_TEXT[0].encode("utf-8")[:limit].ljust(limit, b" ")
    over = UPBIT_BINARY[0] * (limit // len(UPBIT_BINARY[0]) + 1)
    assert len(over) > limit and all(len(p) <= limit for p in (over[:600], over[600:]))

    async def script(peer: RawPeer) -> None:
        await peer.write(*fragments(TEXT, at_limit, [400, 800]))
        await peer.write(*fragments(BINARY, over, [600]))  # each frame fits, the sum not

    with anyio.fail_after(5):
        async with raw_server(script) as (url, peers):
            transport = get_transport(name, max_message_size=limit)
            async with transport.connect(url) as conn:
                first = await conn.receive()
                with pytest.raises(ConnectionClosed) as info:
                    await conn.receive()
            (peer,) = peers
            await peer.closed.wait()
    assert first == at_limit.decode("utf-8")
    assert info.value.code == 1009
    assert peer.close_code == 1009


BITCOIN_KO = "비트코인".encode()  # 4 characters of 3 bytes each

BAD_FRAMES = {
    # a text message whose UTF-8 stops inside its last character
    "invalid-utf8": ([raw_frame(TEXT, BITCOIN_KO[:-1])], 1007),
    # the same cut, hidden in the last fragment of a fragmented text message
    "invalid-utf8-fragmented": (fragments(TEXT, BITCOIN_KO[:-1], [4]), 1007),
    "continuation-without-message": ([raw_frame(CONTINUATION, BITCOIN_KO)], 1002),
    "new-message-inside-fragments": (
        [*fragments(TEXT, BITCOIN_KO, [6])[:1], raw_frame(TEXT, BITCOIN_KO)],
        1002,
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
async def test_protocol_violation_closes_with_its_code(name: str, case: str) -> None:
    bad, code = BAD_FRAMES[case]

    async def script(peer: RawPeer) -> None:
        await peer.write(raw_frame(TEXT, OKX_TEXT[0].encode("utf-8")), *bad)

    with anyio.fail_after(5):
        async with raw_server(script) as (url, peers):
            async with get_transport(name).connect(url) as conn:
                assert await conn.receive() == OKX_TEXT[0]  # what came before is kept
                with pytest.raises(ConnectionClosed) as info:
                    await conn.receive()
            (peer,) = peers
            await peer.closed.wait()
    assert info.value.code == code
    if name != "httpx-ws":  # httpx-ws tells the peer 1000 whatever the cause
        assert peer.close_code == code


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_ping_timeout_then_closed(name: str) -> None:
    async def silent_then_close(peer: RawPeer) -> None:
        # wsproto leaves pings unanswered unless told: the first ping times out
        await peer.write(raw_frame(TEXT, OKX_TEXT[0].encode("utf-8")))
        await anyio.sleep(0.6)
        await peer.write(raw_frame(0x8, (4000).to_bytes(2, "big") + b"bye"))

    with anyio.fail_after(5):
        async with raw_server(silent_then_close) as (url, _peers):
            async with get_transport(name).connect(url) as conn:
                with pytest.raises(TimeoutError):
                    await conn.ping(timeout=0.3)  # type: ignore[attr-defined]
                assert await conn.receive() == OKX_TEXT[0]  # still usable
                with pytest.raises(ConnectionClosed) as info:
                    await conn.receive()
                with pytest.raises(ConnectionClosed):
                    await conn.ping(timeout=1.0)  # type: ignore[attr-defined]
    assert (info.value.code, info.value.reason) == (4000, "bye")


@pytest.mark.anyio
@pytest.mark.parametrize("name", TRANSPORTS)
async def test_clean_exit_leaves_no_tasks_or_sockets(server: ReplayServer, name: str) -> None:
    server.add_ws_handler("/echo", echo)
    before = asyncio.all_tasks()
    gc.collect()  # earlier tests' garbage must not be blamed on this one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with anyio.fail_after(5):
            async with get_transport(name).connect(server.ws_url + "/echo") as conn:
                await conn.send(OKX_TEXT[0])
                assert await conn.receive() == OKX_TEXT[0]
            (session,) = server.ws_sessions
            await session.wait_closed(timeout=5)
            await anyio.sleep(0.05)  # let the server's per-connection tasks finish
        gc.collect()
    left = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert left == set(), left
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert (session.closed_by, session.close_code) == ("client", 1000)


@pytest.mark.anyio
async def test_picows_full_queue_pauses_reading_then_resumes() -> None:
    okx_in = [str(r["frame"]) for r in _first_in_frames("okx.20220513.ws.1.jsonl", 10_000)]
    repeats = 100
    blob = b"".join(raw_frame(TEXT, t.encode("utf-8")) for t in okx_in) * repeats
    assert len(blob) > 25_000_000  # more than the loopback socket buffers hold
    written = 0

    async def flood(peer: RawPeer) -> None:
        nonlocal written
        chunk = 64 * 1024
        for i in range(0, len(blob), chunk):
            await peer.stream.send(blob[i : i + chunk])  # waits while the socket is full
            written = min(i + chunk, len(blob))

    max_queue = 16
    with anyio.fail_after(20):
        async with raw_server(flood) as (url, _peers):
            async with get_transport("picows", max_queue=max_queue).connect(url) as conn:
                await anyio.sleep(1.0)  # the client reads nothing for a second
                written_while_stalled = written
                queued = len(conn._queue)  # type: ignore[attr-defined]
                got = [await conn.receive() for _ in range(len(okx_in) * repeats)]
    # With reading paused the socket filled and the server could not write it all ...
    assert written_while_stalled < len(blob) // 2
    # ... while the client held max_queue messages plus those of the one socket read
    # under way, not the megabytes the server did write ...
    assert max_queue <= queued < max_queue + 1000
    # ... and once receive() drained the queue, reading resumed and nothing was lost.
    assert got == okx_in * repeats
