"""Real OKX captures bundled for ``marketfeed demo`` (offline, nothing leaves the machine).

``DEMO`` tells the demo what to serve on its loopback replay server and what to subscribe:

* ``/ws/v5/public``: ``okx.20220513.ws.1.jsonl``, a complete recorded session (2022-05-13,
  11 s: ``tickers``, ``trades`` and ``books`` of ``BTC-USD-220527``, ``UNI-USD-SWAP`` and
  ``BTC-USDT``; every ``books`` update carries OKX's CRC32 checksum, and all pass).
* ``/ws/v5/business``: ``okx.candles.snippets.ws.jsonl``, six single candle pushes
  (``candle1m`` of four instruments, ``candle1H`` of ``BTC-USDT``), see ``README.md``.

Books are stored as top-25 snapshots (``book_emit = "top"``); ``book_top_interval = 0`` makes
every checked update emit one, so every checksum verification is visible as a book event.
Provenance of every file: ``README.md`` in this folder.
"""

from __future__ import annotations

from importlib.resources import files

from marketfeed import Demo

__all__ = ["CANDLES", "DEMO", "PUBLIC_INSTRUMENTS", "PUBLIC_SESSION"]

_HERE = files(__name__)

PUBLIC_SESSION = str(_HERE / "okx.20220513.ws.1.jsonl")
"""Path of the recorded 2022-05-13 public session (JSON Lines capture format)."""

CANDLES = str(_HERE / "okx.candles.snippets.ws.jsonl")
"""Path of the six candle push frames (business endpoint)."""

PUBLIC_INSTRUMENTS = ("BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT")
"""Instruments of the public session."""

DEMO = Demo(
    ws={"/ws/v5/public": PUBLIC_SESSION, "/ws/v5/business": CANDLES},
    endpoints={"public": "/ws/v5/public", "business": "/ws/v5/business", "rest": ""},
    subscriptions=(
        {"channels": ["tickers", "trades"], "symbols": list(PUBLIC_INSTRUMENTS)},
        {
            "channels": ["books"],
            "symbols": list(PUBLIC_INSTRUMENTS),
            "options": {"book_emit": "top", "book_top_depth": 25, "book_top_interval": 0},
        },
        {
            "channels": ["candle1m"],
            "symbols": ["BTC-USDT-220624", "BTC-USD-220624", "BTC-USDT", "BTC-USD-220624-50000-C"],
        },
        {"channels": ["candle1H"], "symbols": ["BTC-USDT"]},
    ),
    options={"checksum": True},
)
"""The OKX part of ``marketfeed demo``."""
