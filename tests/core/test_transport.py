"""Both WebSocket transports against the replay server's scripted peers: text and binary
frames both ways, ping/pong, close codes, abrupt drops, max message size, receive timeout
and connect failures."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from marketfeed import ConnectionClosed, TransportError, get_transport
from marketfeed.testing import ReplayServer, ReplayWebSocket

DATA = Path(__file__).parent / "data"
TRANSPORTS = ["httpx-ws", "websockets"]


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
