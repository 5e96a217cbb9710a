"""A real Upbit capture bundled for ``marketfeed demo`` (offline, nothing leaves the machine).

``DEMO`` serves ``upbit.20210405.ws.1.jsonl`` (a complete recorded session, 2021-04-05,
119 s: ``trade`` and ``orderbook`` of ten markets, SIMPLE format, binary frames) on
``/websocket/v1`` of the demo's loopback replay server and subscribes the same markets.
``USDT-ADA`` was requested by the recorder but never traded or quoted in the session: it
yields nothing. Upbit order books are full top-15 snapshots without a checksum.
Provenance: ``README.md`` in this folder.
"""

from __future__ import annotations

from importlib.resources import files

from marketfeed import Demo

__all__ = ["DEMO", "MARKETS", "SESSION"]

SESSION = str(files(__name__) / "upbit.20210405.ws.1.jsonl")
"""Path of the recorded 2021-04-05 session (JSON Lines capture format)."""

MARKETS = (
    "KRW-STX",
    "KRW-ANKR",
    "BTC-FLOW",
    "BTC-BASIC",
    "KRW-IQ",
    "USDT-ADA",
    "BTC-CHZ",
    "KRW-DAWN",
    "KRW-BAT",
    "KRW-ADA",
)
"""The markets the recorder subscribed, in its order (Upbit codes, ``QUOTE-BASE``)."""

DEMO = Demo(
    ws={"/websocket/v1": SESSION},
    endpoints={"ws": "/websocket/v1", "rest": ""},
    subscriptions=({"channels": ["trade", "orderbook"], "symbols": list(MARKETS)},),
)
"""The Upbit part of ``marketfeed demo``."""
