"""Plugin hooks: registration, connection planning, subscribe frames, config, login."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import anyio
import msgspec
import pytest
from marketfeed import (
    ConfigError,
    Heartbeat,
    PluginManager,
    Subscription,
    VenueError,
    convert_config,
)
from marketfeed.testing import ReplayServer, ReplayWebSocket
from marketfeed_okx import OkxConfig, OkxCredentials, login_frame, sign
from marketfeed_okx import plugin as okx
from okx_testdata import venue_context


def _subs(channels: list[str], symbols: list[str], **options: Any) -> list[Subscription]:
    return [
        Subscription(venue="okx", channel=c, symbol=s, options=options)
        for c in channels
        for s in symbols
    ]


def test_registered_through_the_entry_point() -> None:
    info = PluginManager().venues["okx"]
    assert info.endpoints == {
        "public": "wss://ws.okx.com:8443/ws/v5/public",
        "business": "wss://ws.okx.com:8443/ws/v5/business",
        "rest": "https://www.okx.com",
    }
    for channel in ("tickers", "trades", "books", "books5", "bbo-tbt", "books-l2-tbt"):
        assert channel in info.channels
    assert info.channels["books50-l2-tbt"] == "book_delta"
    assert info.channels["candle1Dutc"] == "candle"
    assert info.config_schema is OkxConfig
    assert info.backfill is not None
    assert [j.name for j in info.jobs] == ["instruments"]


def test_plan_splits_by_endpoint_and_caps_connections() -> None:
    ctx = venue_context(max_subscriptions_per_connection=4)
    subs = _subs(["tickers", "books"], ["BTC-USDT", "ETH-USDT", "SOL-USDT"]) + _subs(
        ["candle1m", "candle1Dutc"], ["BTC-USDT"]
    )
    plans = okx.plan(venue="okx", subscriptions=subs, context=ctx)
    assert plans is not None
    assert [(p.name, p.url, len(p.subscriptions)) for p in plans] == [
        ("okx/public/0", okx.ENDPOINTS["public"], 4),
        ("okx/public/1", okx.ENDPOINTS["public"], 2),
        ("okx/business/0", okx.ENDPOINTS["business"], 2),
    ]
    planned = [s for p in plans for s in p.subscriptions]
    assert sorted(s.key for s in planned) == sorted(s.key for s in subs)
    assert all(p.heartbeat == Heartbeat(interval=25, ping="ping", timeout=10) for p in plans)
    assert okx.plan(venue="upbit", subscriptions=subs, context=ctx) is None


def test_plan_uses_endpoint_overrides_and_rejects_bad_subscriptions() -> None:
    ctx = venue_context({"public": "ws://127.0.0.1:1/ws/v5/public"})
    (plan,) = okx.plan(venue="okx", subscriptions=_subs(["trades"], ["BTC-USDT"]), context=ctx)
    assert plan.url == "ws://127.0.0.1:1/ws/v5/public"
    with pytest.raises(ConfigError, match="no channel 'candle7m'"):
        okx.plan(venue="okx", subscriptions=_subs(["candle7m"], ["BTC-USDT"]), context=ctx)
    with pytest.raises(ConfigError, match="instrument ids"):
        okx.plan(venue="okx", subscriptions=_subs(["trades"], ["*"]), context=ctx)
    with pytest.raises(ConfigError, match="book_emit"):
        okx.plan(
            venue="okx",
            subscriptions=_subs(["books"], ["BTC-USDT"], book_emit="sometimes"),
            context=ctx,
        )
    with pytest.raises(ConfigError, match="login = true needs"):
        okx.plan(
            venue="okx",
            subscriptions=_subs(["trades"], ["BTC-USDT"]),
            context=venue_context(login=True),
        )


def test_subscribe_unsubscribe_and_resubscribe_frames() -> None:
    ctx = venue_context()
    subs = _subs(["books"], ["BTC-USDT"])
    (frame,) = okx.subscribe(venue="okx", subscriptions=subs, action="subscribe", context=ctx)
    assert json.loads(frame) == {
        "op": "subscribe",
        "args": [{"channel": "books", "instId": "BTC-USDT"}],
    }
    unsub, sub = okx.subscribe(venue="okx", subscriptions=subs, action="resubscribe", context=ctx)
    assert json.loads(unsub)["op"] == "unsubscribe" and json.loads(sub)["op"] == "subscribe"
    assert json.loads(unsub)["args"] == json.loads(sub)["args"]


def test_large_subscriptions_are_split_under_64_kb() -> None:
    subs = _subs(["books-l2-tbt"], [f"COIN{i}-USDT-SWAP" for i in range(3000)])
    frames = okx.subscribe_frames("subscribe", subs)
    assert len(frames) > 1
    assert all(len(f.encode()) < 64 * 1024 for f in frames)
    args = [a for f in frames for a in json.loads(f)["args"]]
    assert [a["instId"] for a in args] == [s.symbol for s in subs]


def test_config_is_strict_validated_and_hides_secrets() -> None:
    with pytest.raises(ConfigError) as exc:
        convert_config({"heartbeat_seconds": 10}, OkxConfig, path="venues.okx")
    assert exc.value.path == "venues.okx.heartbeat_seconds"
    with pytest.raises(ConfigError, match="heartbeat_interval"):
        convert_config({"heartbeat_interval": 45}, OkxConfig, path="venues.okx")
    cfg = convert_config(
        {"api_key": "key-123", "secret_key": "secret-456", "passphrase": "pass-789"},
        OkxConfig,
        path="venues.okx",
    )
    for text in (repr(cfg), str(cfg), repr(cfg.credentials())):
        assert "key-123" not in text and "secret-456" not in text and "pass-789" not in text


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OkxConfig().credentials() is None
    monkeypatch.setenv("OKX_API_KEY", "k")
    monkeypatch.setenv("OKX_API_SECRET", "s")
    assert OkxConfig().credentials() is None  # partial: no passphrase
    monkeypatch.setenv("OKX_API_PASSPHRASE", "p")
    creds = OkxConfig().credentials()
    assert creds is not None and (creds.api_key, creds.secret_key, creds.passphrase) == (
        "k",
        "s",
        "p",
    )


def test_login_signature_matches_an_independent_hmac() -> None:
    """OKX docs: sign = Base64(HMAC_SHA256(secret, timestamp + 'GET' +
    '/users/self/verify')). No published vector with a known secret exists, so the
    expected value is computed here with hmac directly."""
    secret = "22582BD0CFF14C41EDBF1AB98506286D"  # an arbitrary secret for the test
    ts = "1538054050"
    expected = base64.b64encode(
        hmac.new(secret.encode(), b"1538054050GET/users/self/verify", hashlib.sha256).digest()
    ).decode()
    assert sign(ts, secret) == expected
    creds = OkxCredentials(api_key="key", secret_key=secret, passphrase="pp")
    frame = json.loads(login_frame(creds, ts))
    assert frame == {
        "op": "login",
        "args": [{"apiKey": "key", "passphrase": "pp", "timestamp": ts, "sign": expected}],
    }


async def _okx_login_peer(ws: ReplayWebSocket, *, accept: bool) -> None:
    msg = json.loads(await ws.receive())
    arg = msg["args"][0]
    good = sign(arg["timestamp"], "sec") == arg["sign"] and arg["passphrase"] == "pp"
    if accept and good:
        await ws.send('{"event":"login","code":"0","msg":"","connId":"a4d3ae55"}')
    else:
        await ws.send('{"event":"error","code":"60009","msg":"Login failed.","connId":"a"}')
    await ws.receive()


@pytest.mark.anyio
@pytest.mark.parametrize("accept", [True, False])
async def test_connect_logs_in_on_business_connections(accept: bool) -> None:
    async with ReplayServer() as server:

        async def peer(ws: ReplayWebSocket) -> None:
            await _okx_login_peer(ws, accept=accept)

        server.add_ws_handler("/ws/v5/business", peer)
        ctx = venue_context(
            {"business": server.ws_url + "/ws/v5/business"},
            login=True,
            api_key="key",
            secret_key="sec",
            passphrase="pp",
        )
        (plan,) = okx.plan(
            venue="okx", subscriptions=_subs(["candle1m"], ["BTC-USDT"]), context=ctx
        )
        cm = okx.connect(venue="okx", plan=plan, context=ctx)
        assert cm is not None
        with anyio.fail_after(10):
            if accept:
                async with cm as conn:
                    await conn.send("ping")
            else:
                with pytest.raises(VenueError) as exc:
                    async with cm:
                        pass
                assert exc.value.code == "60009"
                assert "sec" not in str(exc.value) and "pp" not in str(exc.value)
        session = server.ws_sessions[0]
        assert json.loads(session.received[0])["op"] == "login"


@pytest.mark.anyio
async def test_connect_attempts_are_paced() -> None:
    """``connect_rate`` connection attempts per second (OKX: 3 per IP)."""
    async with ReplayServer() as server:
        server.add_ws("/ws/v5/public", [])
        ctx = venue_context({"public": server.ws_url + "/ws/v5/public"}, connect_rate=2.0)
        (plan,) = okx.plan(venue="okx", subscriptions=_subs(["trades"], ["BTC-USDT"]), context=ctx)
        start = anyio.current_time()
        with anyio.fail_after(10):
            for _ in range(4):
                async with okx.connect(venue="okx", plan=plan, context=ctx):
                    pass
        elapsed = anyio.current_time() - start
    assert "okx:ws:connect" in ctx.limiters
    assert elapsed >= 0.9  # 4 attempts at 2/s: the last two wait for the bucket to drain
    assert len(server.ws_sessions) == 4


def test_config_struct_round_trip_keeps_defaults() -> None:
    cfg = OkxConfig()
    again = msgspec.convert(msgspec.to_builtins(cfg), OkxConfig)
    assert again == cfg and cfg.checksum is True and cfg.max_subscriptions_per_connection == 100
