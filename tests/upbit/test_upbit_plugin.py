"""The plugin's hooks: registration, plans, request frames, config and symbols."""

import json
from contextlib import asynccontextmanager

import anyio
import pytest
from marketfeed import (
    ConfigError,
    PluginManager,
    RateLimiters,
    Subscription,
    VenueContext,
    convert_config,
    get_transport,
)
from marketfeed_upbit import (
    CHANNELS,
    UpbitConfig,
    build_request,
    split_market,
    to_native,
    to_symbol,
)
from upbit_testdata import CAPTURE_2021


def _ctx(**options) -> VenueContext:
    return VenueContext(
        venue="upbit",
        config=UpbitConfig(**options),
        endpoints={"ws": "ws://127.0.0.1:9/websocket/v1", "rest": "http://127.0.0.1:9"},
        transport=get_transport("httpx-ws"),
        limiters=RateLimiters(),
        http=lambda: None,
    )


def _subs(*pairs, **options) -> list[Subscription]:
    return [Subscription(venue="upbit", channel=c, symbol=s, options=options) for c, s in pairs]


def test_registered_through_the_entry_point() -> None:
    info = PluginManager().venue("upbit")
    assert info.endpoints == {
        "ws": "wss://api.upbit.com/websocket/v1",
        "rest": "https://api.upbit.com",
    }
    assert info.channels == CHANNELS
    assert (
        info.channels["orderbook"] == "book_snapshot" and info.channels["candle.240m"] == "candle"
    )
    assert info.backfill is not None and info.config_schema is UpbitConfig
    assert [j.name for j in info.jobs] == ["instruments"]


def test_plan_chunks_connections_with_the_ping_heartbeat() -> None:
    hook = PluginManager().hook
    subs = _subs(*[("trade", f"KRW-C{i}") for i in range(5)])
    plans = hook.plan(venue="upbit", subscriptions=subs, context=_ctx(max_codes_per_connection=2))
    assert [len(p.subscriptions) for p in plans] == [2, 2, 1]
    assert len({p.name for p in plans}) == 3
    hb = plans[0].heartbeat
    assert (hb.ping, hb.interval, hb.timeout) == ("PING", 60.0, 10.0)
    assert plans[0].url == "ws://127.0.0.1:9/websocket/v1"


@pytest.mark.parametrize(
    ("channel", "symbol", "match"),
    [
        ("candle.1d", "KRW-BTC", "REST-only"),
        ("trades", "KRW-BTC", "unknown Upbit channel"),
        ("trade", "krw-btc", "QUOTE-BASE"),
        ("trade", "KRWBTC", "QUOTE-BASE"),
    ],
)
def test_plan_rejects_what_upbit_cannot_stream(channel, symbol, match) -> None:
    with pytest.raises(ConfigError, match=match):
        PluginManager().hook.plan(
            venue="upbit", subscriptions=_subs((channel, symbol)), context=_ctx()
        )


def test_request_frame_matches_the_recorded_one_in_shape() -> None:
    recorded = json.loads(json.loads(CAPTURE_2021.read_text().splitlines()[0])["frame"])
    codes = recorded[2]["codes"]
    subs = _subs(*[("trade", c) for c in codes], *[("orderbook", c) for c in codes])
    ours = json.loads(
        build_request(subs, UpbitConfig(format="SIMPLE", is_only_realtime=True, flag_style="camel"))
    )
    by_type = {x["type"]: x for x in recorded if "type" in x}
    assert ours[0].keys() == {"ticket"}
    assert ours[-1] == {"format": "SIMPLE"}
    assert {x["type"]: x for x in ours[1:-1]} == by_type


def test_request_options_units_level_and_documented_flags() -> None:
    subs = _subs(("orderbook", "KRW-BTC"), ("ticker", "KRW-BTC"), ("candle.1s", "BTC-ETH"))
    subs.append(
        Subscription(venue="upbit", channel="orderbook", symbol="KRW-ETH", options={"units": 5})
    )
    frame = build_request(
        subs,
        UpbitConfig(
            format="DEFAULT", orderbook_units=15, orderbook_level=10000, is_only_snapshot=True
        ),
        "t1",
    )
    assert json.loads(frame) == [
        {"ticket": "t1"},
        {
            "type": "orderbook",
            "codes": ["KRW-BTC.15", "KRW-ETH.5"],
            "level": 10000,
            "is_only_snapshot": True,
        },
        {"type": "ticker", "codes": ["KRW-BTC"], "is_only_snapshot": True},
        {"type": "candle.1s", "codes": ["BTC-ETH"], "is_only_snapshot": True},
        {"format": "DEFAULT"},
    ]
    with pytest.raises(ConfigError, match="units"):
        build_request(_subs(("orderbook", "KRW-BTC"), units=7), UpbitConfig())


def test_no_unsubscribe_so_a_change_resends_the_connection_full_set() -> None:
    hook = PluginManager().hook
    ctx = _ctx()
    subs = _subs(("trade", "KRW-BTC"), ("trade", "KRW-ETH"), ("orderbook", "KRW-BTC"))
    other = _subs(("ticker", "BTC-XRP"))

    def codes(frames):
        (frame,) = frames
        return {x["type"]: x["codes"] for x in json.loads(frame)[1:-1]}

    assert codes(
        hook.subscribe(venue="upbit", subscriptions=subs, action="subscribe", context=ctx)
    ) == {
        "trade": ["KRW-BTC", "KRW-ETH"],
        "orderbook": ["KRW-BTC"],
    }
    hook.subscribe(venue="upbit", subscriptions=other, action="subscribe", context=ctx)
    # a reconnect subscribes the same set again: same request
    assert codes(
        hook.subscribe(venue="upbit", subscriptions=subs, action="subscribe", context=ctx)
    ) == {
        "trade": ["KRW-BTC", "KRW-ETH"],
        "orderbook": ["KRW-BTC"],
    }
    assert codes(
        hook.subscribe(venue="upbit", subscriptions=subs[1:2], action="unsubscribe", context=ctx)
    ) == {
        "trade": ["KRW-BTC"],
        "orderbook": ["KRW-BTC"],
    }
    assert codes(
        hook.subscribe(venue="upbit", subscriptions=subs[2:], action="resubscribe", context=ctx)
    ) == {
        "trade": ["KRW-BTC"],
        "orderbook": ["KRW-BTC"],
    }
    # nothing left on that connection: nothing Upbit could be told (the supervisor closes it)
    assert (
        hook.subscribe(
            venue="upbit", subscriptions=[subs[0], subs[2]], action="unsubscribe", context=ctx
        )
        == []
    )
    assert codes(
        hook.subscribe(venue="upbit", subscriptions=other, action="resubscribe", context=ctx)
    ) == {"ticker": ["BTC-XRP"]}


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"candle_page_size": 500}, "venues.upbit.candle_page_size"),
        ({"orderbook_units": 7}, "venues.upbit.orderbook_units"),
        ({"format": "SIMPLE_LIST"}, "venues.upbit.format"),
        ({"is_only_realtime": True, "is_only_snapshot": True}, "venues.upbit"),
    ],
)
def test_config_errors_name_the_key(options, path) -> None:
    with pytest.raises(ConfigError) as err:
        convert_config(options, UpbitConfig, path="venues.upbit")
    assert err.value.path == path


def test_symbols() -> None:
    assert to_symbol("KRW-BTC") == "BTC-KRW" and to_native("BTC-KRW") == "KRW-BTC"
    assert to_symbol("BTC-ETH") == "ETH-BTC" and to_symbol("USDT-ADA") == "ADA-USDT"
    assert split_market("KRW-BTC.15") == ("BTC", "KRW")
    for bad in ("BTC", "-BTC", "KRW-", "KRW-BTC-X", "krw-btc"):
        with pytest.raises(ValueError):
            split_market(bad)
    with pytest.raises(ValueError):
        to_native("BTCKRW")


@pytest.mark.anyio
async def test_connect_limits_connects_and_messages_per_connection() -> None:
    sent: list[str] = []

    class FakeConnection:
        async def send(self, frame):
            sent.append(frame)

        async def receive(self):
            return b'{"status":"UP"}'

        async def aclose(self, code=1000, reason=""):
            pass

    class FakeTransport:
        name = "fake"

        @asynccontextmanager
        async def connect(self, url, *, headers=None):
            yield FakeConnection()

    ctx = _ctx(ws_message_rate=4)
    ctx.transport = FakeTransport()
    plan = PluginManager().hook.plan(
        venue="upbit", subscriptions=_subs(("trade", "KRW-BTC")), context=ctx
    )[0]
    t0 = anyio.current_time()
    with anyio.fail_after(10):
        async with PluginManager().hook.connect(venue="upbit", plan=plan, context=ctx) as conn:
            assert await conn.receive() == b'{"status":"UP"}'
            for i in range(8):
                await conn.send(f"PING{i}")
    assert anyio.current_time() - t0 >= 0.95  # 4 at once, then one per 0.25 s
    assert sent == [f"PING{i}" for i in range(8)]
    assert "upbit:ws:connect" in ctx.limiters
