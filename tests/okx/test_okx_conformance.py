"""The core conformance suite on the OKX plugin, with the real 2022-05-13 session."""

from __future__ import annotations

from typing import ClassVar

from marketfeed import Frame
from marketfeed.testing.conformance import VenueConformance
from okx_testdata import WS_2022


class TestOkxConformance(VenueConformance):
    venue = "okx"
    capture = WS_2022
    endpoint = "public"
    path = "/ws/v5/public"
    subscriptions: ClassVar = [
        {
            "channels": ["tickers", "trades", "books"],
            "symbols": ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"],
        }
    ]
    drop_after = 50

    def is_market_frame(self, frame: Frame) -> bool:
        text = frame if isinstance(frame, str) else frame.decode()
        if not text.startswith('{"arg"'):
            return False  # acks
        # OKX pushes empty keep-alive book updates: no change, so no event
        return '"asks":[],"bids":[]' not in text
