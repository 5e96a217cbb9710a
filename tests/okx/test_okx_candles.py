"""Candle channel frames and timeframes.

The recordings have no candle WebSocket session: the real single pushes of
``okx.candles.snippets.ws.jsonl`` are used as they are; frames of other bars are
**constructed** from the real 1H row of the hummingbot REST body (documented push shape
``{"arg":{"channel":"candle<bar>","instId":...},"data":[[ts,o,h,l,c,vol,volCcy,volCcyQuote,
confirm]]}``).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from marketfeed import Candle
from marketfeed_okx import BARS, CHANNELS, OkxNormaliser, bar_duration, normalise_timeframe
from okx_testdata import CANDLE_FRAMES, HTTP_CANDLES_1H, in_frames, records, utc_ms

NOW = dt.datetime(2024, 1, 16, 20, 0, 1, tzinfo=dt.UTC)


def test_recorded_candle_pushes() -> None:
    normaliser = OkxNormaliser("okx")
    seen = 0
    for _, frame in in_frames(CANDLE_FRAMES):
        msg = json.loads(frame)
        (ev,) = normaliser(frame, NOW)
        row = msg["data"][0]
        inst = msg["arg"]["instId"]
        assert isinstance(ev, Candle)
        assert ev.native_symbol == ev.symbol == inst
        assert ev.open_time == ev.event_time == utc_ms(row[0])
        assert (ev.open, ev.high, ev.low, ev.close) == tuple(Decimal(x) for x in row[1:5])
        assert ev.volume == Decimal(row[5])
        if len(row) == 9:
            assert ev.quote_volume == Decimal(row[7])
            assert ev.closed is (row[8] == "1")
        else:
            # old 7-field rows: volCcy is quote currency only for spot instruments
            spot = inst.count("-") == 1
            assert ev.quote_volume == (Decimal(row[6]) if spot else None)
            assert ev.closed is False
        assert ev.timeframe == {"candle1m": "1m", "candle1H": "1h"}[msg["arg"]["channel"]]
        seen += 1
    assert seen == 6


def test_a_forming_candle_is_not_closed_and_a_confirmed_one_is() -> None:
    frames = [f for _, f in in_frames(CANDLE_FRAMES) if "candle1H" in f]
    normaliser = OkxNormaliser("okx")
    closed, forming = (normaliser(f, NOW)[0] for f in frames)
    assert closed.closed and not forming.closed
    assert forming.open_time - closed.open_time == dt.timedelta(hours=4)


@pytest.mark.parametrize(
    ("bar", "timeframe"),
    [
        ("1m", "1m"),
        ("3m", "3m"),
        ("1H", "1h"),
        ("4H", "4h"),
        ("6H", "6h+08:00"),
        ("6Hutc", "6h"),
        ("12H", "12h+08:00"),
        ("1D", "1d+08:00"),
        ("1Dutc", "1d"),
        ("1W", "1w+08:00"),
        ("1Wutc", "1w"),
        ("1M", "1M+08:00"),
        ("3Mutc", "3M"),
    ],
)
def test_constructed_push_of_every_kind_of_bar(bar: str, timeframe: str) -> None:
    row = json.loads(records(HTTP_CANDLES_1H)[0]["body"])["data"][0]
    frame = json.dumps(
        {"arg": {"channel": f"candle{bar}", "instId": "BTC-USDT"}, "data": [row]},
        separators=(",", ":"),
    )
    (ev,) = OkxNormaliser("okx")(frame, NOW)
    assert ev.timeframe == timeframe
    assert ev.close == Decimal(row[4]) and ev.quote_volume == Decimal(row[7])


def test_every_okx_bar_is_a_business_channel_with_a_timeframe() -> None:
    assert len(BARS) == 25
    hk = [b for b in BARS if normalise_timeframe(b).endswith("+08:00")]
    assert hk == ["6H", "12H", "1D", "2D", "3D", "1W", "1M", "3M"]
    for bar in BARS:
        assert CHANNELS[f"candle{bar}"] == "candle"
        if bar.endswith("utc"):  # same length as the Hong Kong bar, aligned to UTC
            assert normalise_timeframe(bar) + "+08:00" == normalise_timeframe(bar[:-3])
            assert bar_duration(bar) == bar_duration(bar[:-3])
    assert bar_duration("4H") == dt.timedelta(hours=4)
    assert bar_duration("1W") == dt.timedelta(days=7)
    with pytest.raises(ValueError, match="unknown OKX bar"):
        normalise_timeframe("7m")
    with pytest.raises(ValueError, match="candle row"):
        OkxNormaliser("okx")(
            '{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1","2","3"]]}', NOW
        )
