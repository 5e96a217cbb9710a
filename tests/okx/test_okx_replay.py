"""End to end through the real Supervisor and the replay server: a corrupted level or a
dropped update resyncs that one instrument while the others continue.

The replay server replays the real 2022-05-13 session (with the fault). Its
``on_message`` responder plays OKX's part for the resubscribe: it acknowledges the
unsubscribe and subscribe, and answers with a **constructed** ``books`` snapshot built
from the capture's true book state at that point of the replay (the original, unfaulted
frames up to and including the next one due; OKX updates set absolute sizes, so a frame
applied again on top of that snapshot leaves it unchanged).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from marketfeed import BookDelta, BookSnapshot, Supervisor, parse_config
from marketfeed.testing import Faults, MemorySink, ReplayServer, ReplaySession, read_capture
from okx_testdata import WS_2022, PlainBook

pytestmark = pytest.mark.anyio

INSTRUMENTS = ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"]
VICTIM = "BTC-USDT"


def _in_messages() -> list[dict[str, Any]]:
    return [json.loads(f.frame) for f in read_capture(WS_2022) if f.dir == "in"]


def _is_change(msg: dict[str, Any], inst: str) -> bool:
    return (
        msg.get("action") == "update"
        and msg["arg"]["instId"] == inst
        and bool(msg["data"][0]["bids"] or msg["data"][0]["asks"])
    )


def _responder(msgs: list[dict[str, Any]]) -> Callable[[str, ReplaySession], list[str]]:
    initial = {"done": False}

    def snapshot(inst: str, upto: int) -> str:
        book = PlainBook()
        for m in msgs[: upto + 1]:
            if m.get("arg", {}).get("instId") != inst or m["arg"]["channel"] != "books":
                continue
            if "data" not in m:
                continue
            d = m["data"][0]
            (book.snapshot if m["action"] == "snapshot" else book.update)(d["bids"], d["asks"])
        bids, asks = book.top(400)
        ts = next(
            m["data"][0]["ts"]
            for m in reversed(msgs[: upto + 1])
            if m.get("arg", {}).get("channel") == "books"
        )
        return json.dumps(
            {
                "arg": {"channel": "books", "instId": inst},
                "action": "snapshot",
                "data": [
                    {
                        "asks": [[p, s, "0", "1"] for p, s in asks],
                        "bids": [[p, s, "0", "1"] for p, s in bids],
                        "ts": ts,
                        "checksum": book.checksum(),
                    }
                ],
                "constructed": True,
            },
            separators=(",", ":"),
        )

    def on_message(text: str, session: ReplaySession) -> list[str]:
        if text == "ping":
            return []
        request = json.loads(text)
        if not initial["done"]:
            initial["done"] = True  # the recorded acks follow in the replay
            return []
        replies = []
        for arg in request["args"]:
            replies.append(json.dumps({"event": request["op"], "arg": arg}))
            if request["op"] == "subscribe" and arg["channel"] == "books":
                replies.append(snapshot(arg["instId"], session.next_frame))
        return replies

    return on_message


async def _run(faults: Faults) -> tuple[list[Any], Any, list[ReplaySession]]:
    store = "okx-resync"
    MemorySink.clear(store)
    msgs = _in_messages()
    async with ReplayServer() as server:
        server.add_ws(
            "/ws/v5/public",
            read_capture(WS_2022),
            speed=4.0,
            on_message=_responder(msgs),
            faults=faults,
        )
        config = parse_config(
            {
                "supervisor": {
                    "status_path": None,
                    "dead_letter_path": None,
                    "batch_interval": 0.05,
                },
                "venues": {
                    "okx": {
                        "endpoints": {
                            "public": server.ws_url + "/ws/v5/public",
                            "rest": server.http_url,
                        }
                    }
                },
                "subscriptions": [
                    {
                        "venue": "okx",
                        "channels": ["tickers", "trades", "books"],
                        "symbols": INSTRUMENTS,
                    }
                ],
                "sinks": [{"type": "memory", "url": f"memory://{store}"}],
            }
        )
        async with Supervisor(config, plugins=[MemorySink()]) as sup:
            (session,) = await server.wait_for_sessions(1, timeout=10)
            await session.wait_replayed(timeout=30)
            with anyio.fail_after(10):
                while (
                    not any(
                        s.channel == "books" and s.symbol == VICTIM and s.state == "active"
                        for s in sup.status().subscriptions
                    )
                    or len(session.received) < 3
                ):
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)  # let the sink flush
            status = sup.status()
        return list(MemorySink.events(store)), status, server.ws_sessions


def _check(events: list[Any], status: Any, sessions: list[ReplaySession], fault_at: int) -> None:
    msgs = _in_messages()
    assert len(sessions) == 1, "no reconnect: the resync happens on the open connection"
    sent = [json.loads(m) for m in sessions[0].received]
    assert [m["op"] for m in sent] == ["subscribe", "unsubscribe", "subscribe"]
    assert sent[1]["args"] == sent[2]["args"] == [{"channel": "books", "instId": VICTIM}]

    by_sub = {(s.channel, s.symbol): s for s in status.subscriptions}
    assert by_sub["books", VICTIM].resyncs == 1
    assert by_sub["books", VICTIM].state == "active"
    for inst in INSTRUMENTS:
        for channel in ("tickers", "trades", "books"):
            if (channel, inst) != ("books", VICTIM):
                assert by_sub[channel, inst].resyncs == 0
                assert by_sub[channel, inst].state == "active"
    assert all(c.malformed == 0 and c.reconnects == 0 for c in status.connections)

    books = [e for e in events if isinstance(e, BookSnapshot | BookDelta)]
    assert all(e.verified for e in books), "an unverified book was emitted"
    for inst in INSTRUMENTS:
        deltas = [e for e in books if isinstance(e, BookDelta) and e.native_symbol == inst]
        snaps = [e for e in books if isinstance(e, BookSnapshot) and e.native_symbol == inst]
        expected = sum(1 for m in msgs if "data" in m and _is_change(m, inst))
        if inst != VICTIM:
            assert len(deltas) == expected and len(snaps) == 1
        else:
            assert len(snaps) == 2  # the first and the resync snapshot
            before = sum(1 for m in msgs[:fault_at] if "data" in m and _is_change(m, inst))
            assert before <= len(deltas) < expected
            after = [e for e in books if e.native_symbol == inst]
            i = after.index(snaps[1])
            assert all(isinstance(e, BookDelta) for e in after[i + 1 :])


def _victim_update(msgs: list[dict[str, Any]], after: int) -> int:
    return next(
        i for i, m in enumerate(msgs) if i >= after and "data" in m and _is_change(m, VICTIM)
    )


async def test_corrupted_level_resyncs_one_instrument() -> None:
    msgs = _in_messages()
    i = _victim_update(msgs, after=60)
    corrupted = json.loads(json.dumps(msgs[i]))
    side = "bids" if corrupted["data"][0]["bids"] else "asks"
    corrupted["data"][0][side][0][1] = "12345"  # a wrong size: the checksum cannot match
    events, status, sessions = await _run(
        Faults(corrupt={i: json.dumps(corrupted, separators=(",", ":"))})
    )
    _check(events, status, sessions, i)


async def test_dropped_update_resyncs_one_instrument() -> None:
    msgs = _in_messages()
    # choose an update whose loss the next update's checksum reveals (top 25 changed)
    i = _victim_update(msgs, after=60)
    while True:
        j = _victim_update(msgs, after=i + 1)
        with_i, without_i = PlainBook(), PlainBook()
        for k, m in enumerate(msgs[: j + 1]):
            if "data" not in m or m["arg"]["instId"] != VICTIM or m["arg"]["channel"] != "books":
                continue
            d = m["data"][0]
            for book in (with_i, without_i) if k != i else (with_i,):
                (book.snapshot if m["action"] == "snapshot" else book.update)(d["bids"], d["asks"])
        if with_i.checksum() != without_i.checksum():
            break
        i = j
    events, status, sessions = await _run(Faults(skip=frozenset({i})))
    _check(events, status, sessions, i)
