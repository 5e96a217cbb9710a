"""WebSocket: LOGIN, REG/REMOVE frames, REAL normalisation, PING echo, SYSTEM, and the flow
through the real Supervisor against a scripted peer on the replay kit."""

from __future__ import annotations

import datetime as _dt
import json
from decimal import Decimal
from typing import Any

import anyio
import pytest
from kiwoom_fake import APP_KEY, SECRET_KEY, WS_PATH, FakeKiwoom, load, make_context
from marketfeed import (
    BookSnapshot,
    ConnectionPlan,
    DeadLetter,
    SendFrame,
    Subscription,
    SubscriptionStatus,
    Supervisor,
    Trade,
    parse_config,
)
from marketfeed.testing import MemorySink, ReplayServer, ReplayWebSocket
from marketfeed_kiwoom import KiwoomAuthError, KiwoomConfig, KiwoomNormaliser, subscribe_frames
from marketfeed_kiwoom._realtime import open_connection

KST = _dt.timezone(_dt.timedelta(hours=9))
RECEIVED = _dt.datetime(2025, 9, 17, 16, 52, 9, tzinfo=KST).astimezone(_dt.UTC)


def text(name: str) -> str:
    return json.dumps(load(name), ensure_ascii=False)


def subs(*channels: str, symbols: tuple[str, ...] = ("005930",)) -> list[Subscription]:
    return [Subscription(venue="kiwoom", channel=c, symbol=s) for c in channels for s in symbols]


def plan(*channels: str) -> ConnectionPlan:
    return ConnectionPlan(name="kiwoom/ws/0", url="ws://x", subscriptions=tuple(subs(*channels)))


# --------------------------------------------------------------------------- frames


def test_reg_and_remove_frames_match_the_documented_packets() -> None:
    config = KiwoomConfig()
    (reg_0b,) = subscribe_frames(subs("0B"), "subscribe", config)
    assert json.loads(reg_0b) == load("ws.0B.reg.request.json")
    (reg_0d,) = subscribe_frames(subs("0D"), "subscribe", config)
    assert json.loads(reg_0d) == load("ws.0D.reg.request.json")
    (remove,) = subscribe_frames(subs("0B"), "unsubscribe", config)
    assert json.loads(remove) == load("ws.remove.request.json")
    again = subscribe_frames(subs("0B"), "resubscribe", config)
    assert [json.loads(f)["trnm"] for f in again] == ["REMOVE", "REG"]


def test_reg_frames_group_codes_and_chunk() -> None:
    codes = ("005930", "000660", "035420", "069500", "0193T0")
    frames = subscribe_frames(
        subs("0B", "0D", symbols=codes), "subscribe", KiwoomConfig(ws_max_items=2)
    )
    packets = [json.loads(f) for f in frames]
    assert len(packets) == 6  # 2 channels x ceil(5 / 2)
    for channel in ("0B", "0D"):
        items = [i for p in packets for d in p["data"] if d["type"] == [channel] for i in d["item"]]
        assert items == list(codes)
    with pytest.raises(ValueError, match="0X"):
        subscribe_frames(subs("0X"), "subscribe", KiwoomConfig())


# --------------------------------------------------------------------------- normaliser


def test_trade_from_the_documented_0b_frame() -> None:
    values = load("ws.0B.real.json")["data"][0]["values"]
    (trade,) = KiwoomNormaliser(plan("0B"))(text("ws.0B.real.json"), RECEIVED)
    assert isinstance(trade, Trade)
    assert trade.symbol == "005930-KRW" and trade.native_symbol == "005930"
    assert trade.price == Decimal(values["10"].lstrip("+-"))
    assert trade.size == Decimal(values["15"].lstrip("+-")) and trade.side == "buy"
    hh, mm, ss = (int(values["20"][i : i + 2]) for i in (0, 2, 4))
    assert trade.event_time == _dt.datetime(2025, 9, 17, hh, mm, ss, tzinfo=KST)
    assert trade.event_time.tzinfo == _dt.UTC and trade.receive_time == RECEIVED
    assert trade.trade_id == f"20250917-{values['20']}-{values['13']}"


def test_book_snapshot_from_the_documented_0d_frame() -> None:
    values = load("ws.0D.real.json")["data"][0]["values"]
    (book,) = KiwoomNormaliser(plan("0D"))(text("ws.0D.real.json"), RECEIVED)
    assert isinstance(book, BookSnapshot)
    asks = [
        (Decimal(values[str(41 + i)].lstrip("+-")), Decimal(values[str(61 + i)])) for i in range(10)
    ]
    bids = [
        (Decimal(values[str(51 + i)].lstrip("+-")), Decimal(values[str(71 + i)])) for i in range(10)
    ]
    assert list(book.asks) == asks and list(book.bids) == bids
    assert book.total_ask_size == Decimal(values["121"])
    assert book.total_bid_size == Decimal(values["125"])
    assert book.depth == 10 and book.bids[0][0] < book.asks[0][0]


def test_ping_is_echoed_unchanged() -> None:
    ping = text("ws.ping.json")
    (echo,) = KiwoomNormaliser(plan("0B"))(ping, RECEIVED)
    assert echo == SendFrame(venue="kiwoom", payload=ping)


def test_acks_and_system_messages_become_statuses() -> None:
    normalise = KiwoomNormaliser(plan("0B", "0D"))
    active = normalise(text("ws.0B.reg.response.json"), RECEIVED)
    assert [(s.channel, s.state) for s in active] == [("0B", "active"), ("0D", "active")]
    refused = normalise('{"trnm":"REG","return_code":1,"return_msg":"등록 실패"}', RECEIVED)
    assert {s.state for s in refused} == {"failed"}
    system = load("ws.system.heartbeat-timeout.json")
    (first, _second) = normalise(text("ws.system.heartbeat-timeout.json"), RECEIVED)
    assert isinstance(first, SubscriptionStatus) and first.state == "failed"
    assert first.code == system["code"] and system["message"] in (first.message or "")
    assert normalise(text("ws.login.response.json"), RECEIVED) == []


def test_bad_entries_dead_lettered_frame_kept_and_garbage_raises() -> None:
    trade = load("ws.0B.real.json")["data"][0]
    book = load("ws.0D.real.json")["data"][0]
    # CONSTRUCTED: a crossed book (best bid above best ask) next to a valid trade
    crossed = {**book, "values": {**book["values"], "51": "+20900"}}
    frame = json.dumps({"trnm": "REAL", "data": [trade, crossed]})
    events = KiwoomNormaliser(plan("0B", "0D"))(frame, RECEIVED)
    assert [type(e) for e in events] == [Trade, DeadLetter]
    letter = events[1]
    assert isinstance(letter, DeadLetter) and "crossed book" in letter.reason
    assert json.loads(letter.payload)["values"]["51"] == "+20900"
    # an entry whose values are not strings goes the lenient way, still one dead letter
    odd = json.dumps({"trnm": "REAL", "data": [{"type": "0B", "item": "005930", "values": 7}]})
    (dead,) = KiwoomNormaliser(plan("0B"))(odd, RECEIVED)
    assert isinstance(dead, DeadLetter)
    with pytest.raises(ValueError):
        KiwoomNormaliser(plan("0B"))("<html>502</html>", RECEIVED)


# --------------------------------------------------------------------------- connection


class Peer:
    """A scripted Kiwoom WebSocket peer: LOGIN, REG acks, REAL frames, PING and echo."""

    def __init__(self, fake: FakeKiwoom, refuse_first_login: bool = False) -> None:
        self.fake = fake
        self.refuse_first_login = refuse_first_login
        self.logins: list[str] = []
        self.regs: list[Any] = []
        self.echo: str | None = None
        self.done = anyio.Event()

    async def __call__(self, ws: ReplayWebSocket) -> None:
        login = json.loads(await ws.receive())
        assert login["trnm"] == "LOGIN"
        self.logins.append(login["token"])
        if self.refuse_first_login and len(self.logins) == 1:
            await ws.send('{"trnm":"LOGIN","return_code":1,"return_msg":"CODE=8005 토큰 무효"}')
            await ws.close()
            return
        assert login["token"] in self.fake.valid  # the REST token, without "Bearer"
        await ws.send(text("ws.login.response.json"))
        for _ in range(2):  # 0B and 0D registrations
            self.regs.append(json.loads(await ws.receive()))
            await ws.send(text("ws.0B.reg.response.json"))
        await ws.send(text("ws.0B.real.json"))
        ping = text("ws.ping.json")
        await ws.send(ping)
        self.echo = str(await ws.receive())
        await ws.send(text("ws.0D.real.json"))
        self.done.set()
        try:
            while True:
                await ws.receive()
        except Exception:
            pass


@pytest.mark.anyio
async def test_login_reg_real_ping_flow_through_the_supervisor() -> None:
    fake = FakeKiwoom()
    MemorySink.clear("kiwoom-rt")
    async with ReplayServer() as server:
        fake.install(server)
        peer = Peer(fake)
        server.add_ws_handler(WS_PATH, peer)
        config = parse_config(
            {
                "supervisor": {
                    "status_path": None,
                    "dead_letter_path": None,
                    "batch_interval": 0.02,
                },
                "venues": {
                    "kiwoom": {
                        "endpoints": {"rest": server.http_url, "ws": server.ws_url + WS_PATH},
                        "app_key": APP_KEY,
                        "secret_key": SECRET_KEY,
                        "retry_initial": 0.01,
                    }
                },
                "subscriptions": [
                    {"venue": "kiwoom", "channels": ["0B", "0D"], "symbols": ["005930"]}
                ],
                "sinks": [{"type": "memory", "url": "memory://kiwoom-rt"}],
            }
        )
        async with Supervisor(config, plugins=[MemorySink()]) as sup:
            with anyio.fail_after(10):
                await peer.done.wait()
                while not any(isinstance(e, BookSnapshot) for e in MemorySink.events("kiwoom-rt")):
                    await anyio.sleep(0.02)
            status = sup.status()
    assert peer.logins == fake.issued[:1]
    assert peer.regs == [load("ws.0B.reg.request.json"), load("ws.0D.reg.request.json")]
    assert peer.echo == text("ws.ping.json")
    kinds = [type(e) for e in MemorySink.events("kiwoom-rt")]
    assert Trade in kinds and BookSnapshot in kinds
    assert not [s for s in status.subscriptions if s.state == "failed"]
    assert fake.revoked == fake.issued  # the token was revoked at shutdown


@pytest.mark.anyio
async def test_login_refused_with_8005_renews_the_token_and_reconnects_once() -> None:
    fake = FakeKiwoom()
    async with ReplayServer() as server:
        fake.install(server)
        peer = Peer(fake, refuse_first_login=True)
        server.add_ws_handler(WS_PATH, peer)
        ctx = make_context(server)
        p = ConnectionPlan(
            name="kiwoom/ws/0", url=server.ws_url + WS_PATH, subscriptions=tuple(subs("0B", "0D"))
        )
        normalise = KiwoomNormaliser(p)
        events: list[Any] = []
        with anyio.fail_after(10):
            async with open_connection(p, ctx) as conn:
                for frame in subscribe_frames(p.subscriptions, "subscribe", ctx.config):
                    await conn.send(frame)
                while not any(isinstance(e, BookSnapshot) for e in events):
                    for event in normalise(await conn.receive(), _dt.datetime.now(_dt.UTC)):
                        if isinstance(event, SendFrame):
                            await conn.send(event.payload)
                        events.append(event)
        await ctx.aclose()
    assert peer.logins == fake.issued and len(fake.issued) == 2
    assert peer.echo == text("ws.ping.json")


@pytest.mark.anyio
async def test_login_refused_twice_raises() -> None:
    fake = FakeKiwoom()

    async def refuse(ws: ReplayWebSocket) -> None:
        await ws.receive()
        await ws.send('{"trnm":"LOGIN","return_code":1,"return_msg":"CODE=8005"}')
        await ws.close()

    async with ReplayServer() as server:
        fake.install(server)
        server.add_ws_handler(WS_PATH, refuse)
        ctx = make_context(server)
        p = ConnectionPlan(name="kiwoom/ws/0", url=server.ws_url + WS_PATH, subscriptions=())
        with anyio.fail_after(10), pytest.raises(KiwoomAuthError):
            async with open_connection(p, ctx):
                pass
        await ctx.aclose()
    assert len(fake.issued) == 2
