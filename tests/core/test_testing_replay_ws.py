"""The replay server's WebSocket side on real captures: byte-identical ordered replay,
binary frames, faults, reconnect modes, pacing, injected replies and pings."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from marketfeed import ConnectionClosed, TransportError, get_transport
from marketfeed.testing import CaptureFrame, Faults, ReplayServer, ReplaySession, read_capture

DATA = Path(__file__).parent / "data"
OKX_WS = DATA / "okx.20220513.ws.1.jsonl"
UPBIT_WS = DATA / "upbit.20210405.ws.1.head120.jsonl"
OKX_PATH = "/ws/v5/public"
UPBIT_PATH = "/websocket/v1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _expected_in(path: Path) -> list[str | bytes]:
    """Payloads of the "in" frames, computed with plain json (independent of the kit)."""
    out: list[str | bytes] = []
    for line in path.read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["dir"] == "in":
            out.append(row["frame"].encode("utf-8") if row.get("binary") else row["frame"])
    return out


def _first_out(path: Path) -> str:
    for line in path.read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["dir"] == "out":
            return str(row["frame"])
    raise AssertionError("capture has no out frame")


OKX_IN = _expected_in(OKX_WS)
UPBIT_IN = _expected_in(UPBIT_WS)
OKX_SUBSCRIBE = _first_out(OKX_WS)
UPBIT_SUBSCRIBE = _first_out(UPBIT_WS)


async def _receive_n(conn: object, n: int) -> list[str | bytes]:
    return [await conn.receive() for _ in range(n)]  # type: ignore[attr-defined]


async def _receive_until_closed(conn: object) -> tuple[list[str | bytes], ConnectionClosed]:
    got: list[str | bytes] = []
    while True:
        try:
            got.append(await conn.receive())  # type: ignore[attr-defined]
        except ConnectionClosed as exc:
            return got, exc


def test_expected_counts() -> None:
    # independent counts from the provenance README: 410 OKX "in" frames, 119 Upbit
    assert (len(OKX_IN), len(UPBIT_IN)) == (410, 119)
    assert all(isinstance(f, bytes) for f in UPBIT_IN)


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["httpx-ws", "websockets"])
async def test_okx_replay_is_byte_identical_and_ordered(transport: str) -> None:
    async with ReplayServer() as server:
        server.add_ws(OKX_PATH, read_capture(OKX_WS))
        with anyio.fail_after(10):
            async with get_transport(transport).connect(server.ws_url + OKX_PATH) as conn:
                await conn.send(OKX_SUBSCRIBE)
                got = await _receive_n(conn, len(OKX_IN))
                (session,) = server.ws_sessions
                await session.wait_replayed(timeout=5)
        await session.wait_closed(timeout=5)
    assert got == OKX_IN
    assert session.received == [OKX_SUBSCRIBE]
    assert session.replayed == session.sent == len(OKX_IN)
    assert session.frames_sent == OKX_IN
    assert (session.closed_by, session.close_code) == ("client", 1000)


@pytest.mark.anyio
async def test_upbit_binary_frames_stay_binary() -> None:
    async with ReplayServer() as server:
        server.add_ws(UPBIT_PATH, read_capture(UPBIT_WS))
        with anyio.fail_after(10):
            async with get_transport("websockets").connect(server.ws_url + UPBIT_PATH) as conn:
                await conn.send(UPBIT_SUBSCRIBE)
                got = await _receive_n(conn, len(UPBIT_IN))
    assert got == UPBIT_IN
    assert all(isinstance(f, bytes) for f in got)


@pytest.mark.anyio
async def test_one_server_serves_two_venues_by_path() -> None:
    async with ReplayServer() as server:
        server.add_ws(OKX_PATH, read_capture(OKX_WS))
        server.add_ws(UPBIT_PATH, read_capture(UPBIT_WS))
        transport = get_transport("websockets")
        results: dict[str, list[str | bytes]] = {}

        async def run(path: str, subscribe: str, n: int) -> None:
            async with transport.connect(server.ws_url + path + "?x=1") as conn:
                await conn.send(subscribe)
                results[path] = await _receive_n(conn, n)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, OKX_PATH, OKX_SUBSCRIBE, len(OKX_IN))
                tg.start_soon(run, UPBIT_PATH, UPBIT_SUBSCRIBE, len(UPBIT_IN))
    assert results == {OKX_PATH: OKX_IN, UPBIT_PATH: UPBIT_IN}
    assert sorted(s.path for s in server.ws_sessions) == sorted([OKX_PATH, UPBIT_PATH])
    assert all(s.query == {"x": ["1"]} for s in server.ws_sessions)


@pytest.mark.anyio
async def test_replay_waits_for_the_client_and_then_idles() -> None:
    async with ReplayServer() as server:
        server.add_ws(OKX_PATH, read_capture(OKX_WS)[:20])
        expected = OKX_IN[:17]  # the first 20 lines are 3 "out" and 17 "in" frames
        with anyio.fail_after(10):
            async with get_transport("httpx-ws").connect(server.ws_url + OKX_PATH) as conn:
                with pytest.raises(TimeoutError), anyio.fail_after(0.2):
                    await conn.receive()  # nothing before the subscribe
                await conn.send(OKX_SUBSCRIBE)
                assert await _receive_n(conn, 17) == expected
                # replay over: the connection stays open and quiet ...
                with pytest.raises(TimeoutError), anyio.fail_after(0.2):
                    await conn.receive()
                # ... and answers application pings (OKX text, Upbit binary)
                await conn.send("ping")
                assert await conn.receive() == "pong"
                await conn.send("PING")
                assert await conn.receive() == b'{"status":"UP"}'
                (session,) = server.ws_sessions
                assert not session.closed
    assert session.received == [OKX_SUBSCRIBE, "ping", "PING"]


@pytest.mark.anyio
async def test_no_wait_for_client_starts_at_connect() -> None:
    async with ReplayServer() as server:
        server.add_ws(UPBIT_PATH, read_capture(UPBIT_WS), wait_for_client=False)
        with anyio.fail_after(10):
            async with get_transport("websockets").connect(server.ws_url + UPBIT_PATH) as conn:
                assert await _receive_n(conn, len(UPBIT_IN)) == UPBIT_IN
    assert server.ws_sessions[0].received == []


@pytest.mark.anyio
async def test_pings_do_not_start_the_replay_and_can_be_disabled() -> None:
    async with ReplayServer() as server:
        server.add_ws("/a", read_capture(OKX_WS)[:5])
        server.add_ws("/b", read_capture(OKX_WS)[:5], answer_pings=False)
        transport = get_transport("websockets")
        with anyio.fail_after(10):
            async with transport.connect(server.ws_url + "/a") as conn:
                await conn.send("ping")
                assert await conn.receive() == "pong"
                with pytest.raises(TimeoutError), anyio.fail_after(0.2):
                    await conn.receive()
            async with transport.connect(server.ws_url + "/b") as conn:
                await conn.send("ping")  # not answered; counts as the first message
                assert await _receive_n(conn, 2) == OKX_IN[:2]


@pytest.mark.anyio
async def test_on_message_replies_come_before_the_replay() -> None:
    calls: list[tuple[str, int]] = []

    def on_message(text: str, session: ReplaySession) -> list[str] | None:
        calls.append((text, session.sent))
        if text == OKX_SUBSCRIBE:
            return ['{"event":"hello"}', '{"event":"hello2"}']
        if text.startswith("resub"):
            return [f'{{"snapshot":"{text}"}}']
        return None

    async with ReplayServer() as server:
        server.add_ws(OKX_PATH, read_capture(OKX_WS), on_message=on_message)
        with anyio.fail_after(10):
            async with get_transport("websockets").connect(server.ws_url + OKX_PATH) as conn:
                await conn.send(OKX_SUBSCRIBE)
                first = await _receive_n(conn, 2 + len(OKX_IN))
                await conn.send("resub BTC-USDT")
                assert await conn.receive() == '{"snapshot":"resub BTC-USDT"}'
    assert first[:2] == ['{"event":"hello"}', '{"event":"hello2"}']
    assert first[2:] == OKX_IN
    assert calls == [(OKX_SUBSCRIBE, 0), ("resub BTC-USDT", 2 + len(OKX_IN))]


@pytest.mark.anyio
async def test_async_on_message_with_binary_reply() -> None:
    async def on_message(text: str, session: ReplaySession) -> bytes:
        await anyio.lowlevel.checkpoint()
        return b'{"ack":true}'

    async with ReplayServer() as server:
        server.add_ws(UPBIT_PATH, read_capture(UPBIT_WS)[:3], on_message=on_message)
        with anyio.fail_after(10):
            async with get_transport("httpx-ws").connect(server.ws_url + UPBIT_PATH) as conn:
                await conn.send(UPBIT_SUBSCRIBE)
                got = await _receive_n(conn, 3)
    assert got == [b'{"ack":true}', *UPBIT_IN[:2]]


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["httpx-ws", "websockets"])
async def test_drop_after_then_restart(transport: str) -> None:
    async with ReplayServer() as server:
        server.add_ws(OKX_PATH, read_capture(OKX_WS), faults=Faults(drop_after=25))
        client = get_transport(transport)
        with anyio.fail_after(10):
            async with client.connect(server.ws_url + OKX_PATH) as conn:
                await conn.send(OKX_SUBSCRIBE)
                got, closed = await _receive_until_closed(conn)
            assert got == OKX_IN[:25]
            assert closed.code == 1006
            # faults apply to the first connection only; "restart" replays from frame 0
            async with client.connect(server.ws_url + OKX_PATH) as conn:
                await conn.send(OKX_SUBSCRIBE)
                assert await _receive_n(conn, len(OKX_IN)) == OKX_IN
    first, second = server.ws_sessions
    assert (first.index, second.index) == (0, 1)
    assert first.closed_by == "dropped" and first.replayed == 25


@pytest.mark.anyio
async def test_drop_with_close_code_then_continue() -> None:
    async with ReplayServer() as server:
        server.add_ws(
            UPBIT_PATH,
            read_capture(UPBIT_WS),
            faults=Faults(drop_after=40, close_code=4000),
            on_reconnect="continue",
        )
        client = get_transport("httpx-ws")
        with anyio.fail_after(10):
            async with client.connect(server.ws_url + UPBIT_PATH) as conn:
                await conn.send(UPBIT_SUBSCRIBE)
                got, closed = await _receive_until_closed(conn)
            assert closed.code == 4000
            assert got == UPBIT_IN[:40]
            async with client.connect(server.ws_url + UPBIT_PATH) as conn:
                await conn.send(UPBIT_SUBSCRIBE)
                rest = await _receive_n(conn, len(UPBIT_IN) - 40)
                with pytest.raises(TimeoutError), anyio.fail_after(0.2):
                    await conn.receive()  # nothing repeats
    assert rest == UPBIT_IN[40:]
    assert server.ws_sessions[1].next_frame == len(UPBIT_IN)


@pytest.mark.anyio
async def test_drop_after_zero_drops_before_any_frame() -> None:
    async with ReplayServer() as server:
        server.add_ws(OKX_PATH, read_capture(OKX_WS), faults=Faults(drop_after=0))
        with anyio.fail_after(10):
            async with get_transport("websockets").connect(server.ws_url + OKX_PATH) as conn:
                await conn.send(OKX_SUBSCRIBE)
                got, closed = await _receive_until_closed(conn)
    assert (got, closed.code) == ([], 1006)


@pytest.mark.anyio
async def test_corrupt_and_skip() -> None:
    faults = Faults(corrupt={5: '{"garbage', 7: b"\x00\x01"}, skip=frozenset({0, 3}))
    async with ReplayServer() as server:
        server.add_ws(OKX_PATH, read_capture(OKX_WS), faults=faults)
        server.add_ws(UPBIT_PATH, read_capture(UPBIT_WS), faults=Faults(corrupt={2: "{bad"}))
        client = get_transport("websockets")
        with anyio.fail_after(10):
            async with client.connect(server.ws_url + OKX_PATH) as conn:
                await conn.send(OKX_SUBSCRIBE)
                got = await _receive_n(conn, len(OKX_IN) - 2)
            async with client.connect(server.ws_url + UPBIT_PATH) as conn:
                await conn.send(UPBIT_SUBSCRIBE)
                upbit = await _receive_n(conn, len(UPBIT_IN))
            async with client.connect(server.ws_url + OKX_PATH) as conn:  # second: clean
                await conn.send(OKX_SUBSCRIBE)
                clean = await _receive_n(conn, len(OKX_IN))
    expected = list(OKX_IN)
    expected[5] = '{"garbage'
    expected[7] = b"\x00\x01"
    del expected[3]
    del expected[0]
    assert got == expected
    # a text replacement for a binary frame is sent as binary
    assert upbit[2] == b"{bad" and upbit[:2] == UPBIT_IN[:2] and upbit[3:] == UPBIT_IN[3:]
    assert clean == OKX_IN


@pytest.mark.anyio
async def test_stall_pauses_the_replay_but_keeps_answering() -> None:
    stall = 0.6
    async with ReplayServer() as server:
        server.add_ws(
            OKX_PATH, read_capture(OKX_WS)[:23], faults=Faults(stall_after=5, stall_for=stall)
        )
        with anyio.fail_after(10):
            async with get_transport("websockets").connect(server.ws_url + OKX_PATH) as conn:
                await conn.send(OKX_SUBSCRIBE)
                assert await _receive_n(conn, 5) == OKX_IN[:5]
                start = anyio.current_time()
                with pytest.raises(TimeoutError), anyio.fail_after(stall / 3):
                    await conn.receive()  # silent: the stall
                await conn.send("ping")
                assert await conn.receive() == "pong"  # pings still answered
                assert await conn.ping() < stall / 3  # type: ignore[attr-defined]
                rest = await _receive_n(conn, 15)
                waited = anyio.current_time() - start
    assert rest == OKX_IN[5:20]
    assert waited >= stall * 0.8


@pytest.mark.anyio
async def test_pacing_follows_recorded_times_scaled() -> None:
    frames = read_capture(UPBIT_WS)
    ins = [f for f in frames if f.dir == "in"][:40]
    span = ins[-1].t - ins[0].t  # recorded seconds between first and last frame
    speed = span / 0.5  # replay the span in about half a second
    async with ReplayServer() as server:
        server.add_ws(UPBIT_PATH, ins, speed=speed)
        server.add_ws("/fast", ins)
        client = get_transport("websockets")
        with anyio.fail_after(10):
            async with client.connect(server.ws_url + UPBIT_PATH) as conn:
                await conn.send(UPBIT_SUBSCRIBE)
                arrivals: list[float] = []
                got: list[str | bytes] = []
                for _ in ins:
                    got.append(await conn.receive())
                    arrivals.append(anyio.current_time())
            async with client.connect(server.ws_url + "/fast") as conn:
                await conn.send(UPBIT_SUBSCRIBE)
                t0 = anyio.current_time()
                fast = await _receive_n(conn, len(ins))
                fast_elapsed = anyio.current_time() - t0
    assert got == fast == [f.payload for f in ins]
    paced = arrivals[-1] - arrivals[0]
    assert paced >= 0.5 * 0.9
    # each frame arrives no earlier than its scaled recorded offset (small clock slack)
    for frame, at in zip(ins, arrivals, strict=True):
        assert at - arrivals[0] >= (frame.t - ins[0].t) / speed - 0.05
    assert fast_elapsed < paced


@pytest.mark.anyio
async def test_plain_messages_and_handlers_share_the_port() -> None:
    async def scripted(ws: object) -> None:
        msg = await ws.receive()  # type: ignore[attr-defined]
        await ws.send(f"echo:{msg}")  # type: ignore[attr-defined]

    async with ReplayServer() as server:
        server.add_ws("/plain", ["a", b"b", "c"])
        server.add_ws_handler("/scripted", scripted)
        client = get_transport("httpx-ws")
        with anyio.fail_after(10):
            async with client.connect(server.ws_url + "/plain") as conn:
                await conn.send("go")
                assert await _receive_n(conn, 3) == ["a", b"b", "c"]
            async with client.connect(server.ws_url + "/scripted/") as conn:
                await conn.send("hi")
                assert await conn.receive() == "echo:hi"
                with pytest.raises(ConnectionClosed) as info:
                    await conn.receive()  # handler returned: normal close
            assert info.value.code == 1000
            with pytest.raises(TransportError):
                async with client.connect(server.ws_url + "/missing"):
                    pass


@pytest.mark.anyio
async def test_handler_error_closes_1011_and_is_kept() -> None:
    async def broken(ws: object) -> None:
        raise RuntimeError("scripted failure")

    async with ReplayServer() as server:
        server.add_ws_handler("/broken", broken)
        with anyio.fail_after(10):
            async with get_transport("websockets").connect(server.ws_url + "/broken") as conn:
                with pytest.raises(ConnectionClosed) as info:
                    await conn.receive()
    assert info.value.code == 1011
    assert isinstance(server.errors[0], RuntimeError)
    assert server.ws_sessions[0].error is server.errors[0]


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["httpx-ws", "websockets"])
async def test_server_exit_closes_clients_with_1001(transport: str) -> None:
    got: list[str | bytes] = []
    closed: list[ConnectionClosed] = []
    replayed = anyio.Event()

    async def client(url: str) -> None:
        async with get_transport(transport).connect(url) as conn:
            await conn.send(OKX_SUBSCRIBE)
            got.append(await conn.receive())
            replayed.set()
            more, exc = await _receive_until_closed(conn)
            got.extend(more)
            closed.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            async with ReplayServer() as server:
                server.add_ws(OKX_PATH, read_capture(OKX_WS)[:7])  # 3 "out", 4 "in"
                tg.start_soon(client, server.ws_url + OKX_PATH)
                await replayed.wait()
                await server.ws_sessions[0].wait_replayed(timeout=5)
            # the server is gone while the client task is still connected
    assert got == OKX_IN[:4]
    assert closed[0].code == 1001


@pytest.mark.anyio
async def test_wait_for_sessions_and_fixed_port() -> None:
    async with ReplayServer() as first:
        port = first.port
    async with ReplayServer(port=port) as server:  # a given port is honoured
        assert server.port == port
        assert server.ws_url == f"ws://127.0.0.1:{port}"
        server.add_ws(OKX_PATH, read_capture(OKX_WS)[:4])

        async def connect_later() -> None:
            await anyio.sleep(0.05)
            async with get_transport("websockets").connect(server.ws_url + OKX_PATH) as conn:
                await conn.send(OKX_SUBSCRIBE)
                await conn.receive()

        async with anyio.create_task_group() as tg:
            tg.start_soon(connect_later)
            (session,) = await server.wait_for_sessions(1, path=OKX_PATH, timeout=5)
        assert session.path == OKX_PATH
        with pytest.raises(TimeoutError):
            await server.wait_for_sessions(2, timeout=0.1)


def test_bad_arguments_are_refused() -> None:
    server = ReplayServer()
    with pytest.raises(ValueError, match="speed"):
        server.add_ws("/x", [CaptureFrame(t=1.0, dir="in", frame="a")], speed=0)
    with pytest.raises(ValueError, match="on_reconnect"):
        server.add_ws("/x", [], on_reconnect="rewind")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
