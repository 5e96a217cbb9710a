"""The Decimals of marketfeed-okx's C fast path built by the core's ``_cbook`` (through its
``_C_API`` capsule) instead of by the ``Decimal`` type: every value equals the Python
path's, digit for digit and exponent for exponent, on real trade and ticker frames whose
numbers are replaced by edge cases of the plain-text fast path (zeros, leading and
trailing zeros, 19 and 20 digits, a bare ``.``-ended or ``.``-led text) and by texts the
fast path leaves to the type (exponents, signs)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from marketfeed import Subscription
from marketfeed_okx import OkxNormaliser, _normalise
from okx_testdata import WS_2022, in_frames

NOW = dt.datetime(2022, 5, 13, 16, 27, 10, tzinfo=dt.UTC)
cokx = pytest.importorskip("marketfeed_okx._cokx", reason="marketfeed_okx._cokx not built")
cbook = pytest.importorskip("marketfeed._cbook", reason="marketfeed._cbook not built")

TEXTS = [
    "0",
    "0.000",
    "007.50",
    "1.",
    ".5",
    "30238.8",
    "0.00000001",
    "9999999999999999999",
    "1234567890.123456789",
    "10000000000000000000",
    "12345678901234567890.5",
    "1e3",
    "1E-8",
    "-0.5",
    "+2",
]


def _first(channel: str) -> dict[str, Any]:
    for _, frame in in_frames(WS_2022):
        if frame.startswith('{"arg"') and f'"channel":"{channel}"' in frame[:60]:
            msg: dict[str, Any] = json.loads(frame)
            return msg
    raise AssertionError(channel)


def _decimals(events: list[Any]) -> list[tuple[str, Any]]:
    out = []
    for e in events:
        for name in e.__struct_fields__:
            v = getattr(e, name)
            if isinstance(v, Decimal):
                out.append((name, (type(v), v.as_tuple(), str(v))))
    return out


def test_fast_decimals_are_on_when_the_core_builds_them() -> None:
    assert cokx.FAST_DECIMAL is cbook.FAST_DECIMAL


@pytest.mark.skipif(not _normalise.SPEEDUPS, reason="C fast path off")
@pytest.mark.parametrize("text", TEXTS)
def test_trade_and_ticker_decimals_equal_the_python_paths(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = OkxNormaliser("okx", [Subscription(venue="okx", channel="trades", symbol="BTC-USDT")])
    with monkeypatch.context() as m:
        m.setattr(_normalise, "_cokx", None)
        slow = OkxNormaliser("okx", [])
    assert fast._fast is not None and slow._fast is None
    trade = _first("trades")
    trade["data"][0]["px"] = text
    trade["data"][0]["sz"] = text
    ticker = _first("tickers")
    for key in ("last", "lastSz", "askPx", "bidSz", "vol24h", "volCcy24h"):
        ticker["data"][0][key] = text
    for msg in (trade, ticker):
        frame = json.dumps(msg, separators=(",", ":"))
        if text[0].isdigit() or text[0] == ".":  # the C path takes the frame itself
            assert fast._fast(frame, NOW) is not None
        got = fast(frame, NOW)
        want = slow(frame, NOW)
        assert _decimals(got) == _decimals(want)
        assert got == want
        if text[0].isdigit() or text[0] == ".":
            assert (type(Decimal(text)), Decimal(text).as_tuple(), str(Decimal(text))) in [
                v for _, v in _decimals(got)
            ]
