"""Acks, error events, pong, notices and malformed frames.

The recordings hold only ``subscribe`` acks (real, below). ``error``, ``unsubscribe``,
``notice`` and ``pong`` frames are **constructed** from the documented shapes
(``{"event":"error","code":"60018","msg":"Wrong URL or channel:...","connId":"..."}``).
"""

from __future__ import annotations

import datetime as dt
import json

import msgspec
import pytest
from marketfeed import Subscription, SubscriptionStatus, Ticker
from marketfeed_okx import OkxNormaliser
from okx_testdata import WS_2022, in_frames

NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _subs(*pairs: tuple[str, str]) -> list[Subscription]:
    return [Subscription(venue="okx", channel=c, symbol=s) for c, s in pairs]


def test_repeated_acks_report_each_subscription_once() -> None:
    acks = [f for _, f in in_frames(WS_2022) if f.startswith('{"event":"subscribe"')]
    assert len(acks) == 18  # cumulative subscribe requests: 18 acks for 9 subscriptions
    normaliser = OkxNormaliser("okx")
    events = [e for f in acks for e in normaliser(f, NOW)]
    keys = [(e.channel, e.native_symbol, e.state) for e in events]
    expected = {(json.loads(f)["arg"]["channel"], json.loads(f)["arg"]["instId"]) for f in acks}
    assert sorted(keys) == sorted((c, i, "active") for c, i in expected)
    assert len(keys) == 9


def test_error_with_arg_fails_only_that_subscription() -> None:
    normaliser = OkxNormaliser("okx", _subs(("tickers", "BTC-USDT"), ("tickers", "FOO-BAR")))
    frame = (
        '{"event":"error","arg":{"channel":"tickers","instId":"FOO-BAR"},"code":"60018",'
        '"msg":"Wrong URL or channel:tickers,instId:FOO-BAR doesn\'t exist.","connId":"a4d3ae55"}'
    )
    (ev,) = normaliser(frame, NOW)
    assert isinstance(ev, SubscriptionStatus)
    assert (ev.channel, ev.native_symbol, ev.state, ev.code) == (
        "tickers",
        "FOO-BAR",
        "failed",
        "60018",
    )
    assert ev.message is not None and "FOO-BAR" in ev.message


def test_error_without_arg_is_matched_by_the_instid_in_msg() -> None:
    subs = _subs(("trades", "BTC-USDT"), ("trades", "BTC-USDT-SWAP"), ("books", "ETH-USDT"))
    normaliser = OkxNormaliser("okx", subs)
    # the message names channel and instId (OKX's usual wording)
    frame = (
        '{"event":"error","code":"60018","msg":"Wrong URL or channel:trades,instId:'
        "BTC-USDT-SWAP doesn't exist. Please use the correct URL, channel and parameters "
        'referring to API document.","connId":"a4d3ae55"}'
    )
    (ev,) = normaliser(frame, NOW)
    assert (ev.channel, ev.native_symbol, ev.state) == ("trades", "BTC-USDT-SWAP", "failed")
    # a message naming only an instrument: whole-token match, not a prefix match
    frame = '{"event":"error","code":"60012","msg":"Invalid request: ETH-USDT unsupported"}'
    (ev,) = normaliser(frame, NOW)
    assert (ev.channel, ev.native_symbol, ev.code) == ("books", "ETH-USDT", "60012")


def test_error_naming_nothing_fails_every_pending_subscription() -> None:
    subs = _subs(("tickers", "BTC-USDT"), ("trades", "BTC-USDT"), ("books", "ETH-USDT"))
    normaliser = OkxNormaliser("okx", subs)
    normaliser('{"event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"}}', NOW)
    events = normaliser('{"event":"error","code":"60012","msg":"Invalid request"}', NOW)
    assert sorted((e.channel, e.native_symbol) for e in events) == [
        ("books", "ETH-USDT"),
        ("trades", "BTC-USDT"),
    ]
    assert all(e.state == "failed" and e.message == "Invalid request" for e in events)
    # nothing pending at all: a connection-wide failure is still reported
    lone = OkxNormaliser("okx")
    (ev,) = lone('{"event":"error","code":"60009","msg":"Login failed."}', NOW)
    assert (ev.channel, ev.native_symbol, ev.code) == ("*", "*", "60009")


def test_other_subscriptions_keep_running_after_an_error() -> None:
    subs = _subs(("tickers", "BTC-USD-220527"), ("tickers", "NOPE-USDT"))
    normaliser = OkxNormaliser("okx", subs)
    error = (
        '{"event":"error","code":"60018","msg":"Wrong URL or channel:tickers,'
        "instId:NOPE-USDT doesn't exist.\"}"
    )
    (failed,) = normaliser(error, NOW)
    assert failed.native_symbol == "NOPE-USDT"
    tickers = [f for _, f in in_frames(WS_2022) if f.startswith('{"arg":{"channel":"tickers"')]
    events = [e for f in tickers for e in normaliser(f, NOW)]
    assert len(events) == len(tickers) and all(isinstance(e, Ticker) for e in events)


def test_unsubscribe_ack_allows_a_new_active_status() -> None:
    normaliser = OkxNormaliser("okx")
    sub = '{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"}}'
    unsub = '{"event":"unsubscribe","arg":{"channel":"trades","instId":"BTC-USDT"}}'
    assert len(normaliser(sub, NOW)) == 1
    assert list(normaliser(sub, NOW)) == []
    assert list(normaliser(unsub, NOW)) == []
    assert len(normaliser(sub, NOW)) == 1


@pytest.mark.parametrize(
    "frame",
    [
        "pong",
        '{"event":"login","code":"0","msg":"","connId":"a4d3ae55"}',
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a '
        'service upgrade. Please reconnect.","connId":"a4d3ae55"}',
        '{"event":"channel-conn-count","channel":"tickers","connCount":"2","connId":"abc"}',
    ],
)
def test_control_frames_give_no_events(frame: str) -> None:
    assert list(OkxNormaliser("okx")(frame, NOW)) == []


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT"}]}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
        '"tradeId":"1","px":"abc","sz":"1","side":"buy","ts":"1"}]}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
        '"tradeId":"1","px":"1","sz":"1","side":"sideways","ts":"1"}]}',
        '{"arg":{"channel":"mark-price","instId":"BTC-USDT"},"data":[]}',
        '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"merge","data":[{"ts":"1"}]}',
        '{"data":[]}',
    ],
)
def test_malformed_frames_raise_and_leave_the_normaliser_usable(frame: str) -> None:
    normaliser = OkxNormaliser("okx")
    with pytest.raises((ValueError, msgspec.DecodeError, msgspec.ValidationError)):
        normaliser(frame, NOW)
    ticker = next(f for _, f in in_frames(WS_2022) if f.startswith('{"arg":{"channel":"tick'))
    assert isinstance(normaliser(ticker, NOW)[0], Ticker)


def test_empty_strings_are_absent_values() -> None:
    """OKX sends ``""`` for absent ticker values (illiquid options): constructed from a
    real ticker frame with its bid emptied."""
    ticker = next(f for _, f in in_frames(WS_2022) if f.startswith('{"arg":{"channel":"tick'))
    msg = json.loads(ticker)
    msg["data"][0]["bidPx"] = msg["data"][0]["bidSz"] = ""
    (ev,) = OkxNormaliser("okx")(json.dumps(msg), NOW)
    assert ev.bid is None and ev.bid_size is None and ev.ask is not None
