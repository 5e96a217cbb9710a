"""Shared helpers of the OKX tests: capture paths and an independent reading of them.

Everything here uses plain ``json``, ``decimal`` and ``zlib`` only, never the plugin, so
the tests compare the plugin against an independent reading of the recordings.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from marketfeed import RateLimiters, VenueContext, convert_config, get_transport
from marketfeed_okx import ENDPOINTS, OkxConfig

DATA = Path(__file__).parent / "data"
WS_2022 = DATA / "okx.20220513.ws.1.jsonl"
WS_2021 = DATA / "okx.20210722.ws.1.jsonl"
CANDLE_FRAMES = DATA / "okx.candles.snippets.ws.jsonl"
HTTP_INSTRUMENTS = DATA / "okx.20220513.http.trimmed.jsonl"
HTTP_CANDLES_1H = DATA / "okx.candles.hummingbot.http.jsonl"
HTTP_CANDLES_1M = DATA / "okx.candles.nautilus.http.jsonl"
HTTP_BOOKS = DATA / "okx.books.cryptomsgparser.http.jsonl"
WS_CAPTURES = (WS_2022, WS_2021, CANDLE_FRAMES)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def utc_ms(ms: str | int) -> dt.datetime:
    """Epoch ms as a UTC datetime, by timedelta arithmetic (exact)."""
    return EPOCH + dt.timedelta(milliseconds=int(ms))


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def in_frames(path: Path) -> Iterator[tuple[float, str]]:
    for rec in records(path):
        if rec["dir"] == "in":
            yield rec["t"], rec["frame"]


def opt_dec(text: str) -> Decimal | None:
    return Decimal(text) if text != "" else None


def expected_counts(path: Path) -> Counter[tuple[str, str, str]]:
    """What the capture holds, per (event kind, channel, instId), read with plain json.

    Tickers and trades: one event per data item; books: one snapshot per ``snapshot``
    push and one delta per ``update`` push that changes a level (OKX also pushes empty
    keep-alive updates); candles: one per row; acks: one ``subscription_status`` per
    distinct (channel, instId) acknowledged.
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    acked: set[tuple[str, str]] = set()
    for _, frame in in_frames(path):
        msg = json.loads(frame)
        if "event" in msg:
            if msg["event"] == "subscribe":
                acked.add((msg["arg"]["channel"], msg["arg"]["instId"]))
            continue
        channel = msg["arg"]["channel"]
        inst = msg["arg"]["instId"]
        if channel == "tickers":
            for d in msg["data"]:
                counts["ticker", channel, d["instId"]] += 1
        elif channel == "trades":
            for d in msg["data"]:
                counts["trade", channel, d["instId"]] += 1
        elif channel.startswith("books"):
            for d in msg["data"]:
                if msg["action"] == "snapshot":
                    counts["book_snapshot", channel, inst] += 1
                elif d["bids"] or d["asks"]:
                    counts["book_delta", channel, inst] += 1
        elif channel.startswith("candle"):
            counts["candle", channel, inst] += len(msg["data"])
        else:
            raise AssertionError(f"unexpected channel {channel}")
    for channel, inst in acked:
        counts["subscription_status", channel, inst] += 1
    return counts


class PlainBook:
    """An independent L2 book (dicts + sorting) with OKX's checksum rule."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def snapshot(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.bids = {lv[0]: lv[1] for lv in bids if Decimal(lv[1]) != 0}
        self.asks = {lv[0]: lv[1] for lv in asks if Decimal(lv[1]) != 0}

    def update(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for px, sz, *_ in levels:
                if Decimal(sz) == 0:
                    side.pop(px, None)
                else:
                    side[px] = sz

    def top(self, n: int = 25) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = sorted(self.bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:n]
        asks = sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]))[:n]
        return bids, asks

    def checksum(self) -> int:
        bids, asks = self.top(25)
        parts: list[str] = []
        for i in range(25):
            if i < len(bids):
                parts += bids[i]
            if i < len(asks):
                parts += asks[i]
        value = zlib.crc32(":".join(parts).encode())
        return value - (1 << 32) if value >= (1 << 31) else value


class ProgressLog:
    """A progress factory for :class:`VenueContext` that records its calls."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def __call__(self, description: str, total: int | None) -> ProgressLog:
        self.log.append(f"start {description} {total}")
        return self

    def advance(self, n: int = 1) -> None:
        self.log.append(f"advance {n}")

    def close(self) -> None:
        self.log.append("close")


def venue_context(
    endpoints: dict[str, str] | None = None,
    progress: ProgressLog | None = None,
    **options: Any,
) -> VenueContext:
    """A real okx :class:`VenueContext` (options validated like config), endpoints
    overridden as given."""
    return VenueContext(
        venue="okx",
        config=convert_config(options, OkxConfig, path="venues.okx"),
        endpoints={**ENDPOINTS, **(endpoints or {})},
        transport=get_transport("websockets"),
        limiters=RateLimiters(),
        http=httpx.AsyncClient,
        progress=progress,
    )
