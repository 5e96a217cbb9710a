"""The third-party test plugin (tests/thirdparty/marketfeed-binance-mini), installed through
its entry point, passes the conformance suite a plugin author would run: proof that a new
venue needs no core change."""

from __future__ import annotations

from pathlib import Path

from marketfeed.testing.conformance import VenueConformance

DATA = Path(__file__).parent / "data" / "binance_futures"


class TestBinanceMiniConformance(VenueConformance):
    venue = "binance_mini"
    capture = DATA / "binance_futures.20210417.ws.5.head1500.jsonl"
    endpoint = "ws"
    path = "/stream"
    endpoint_path = ""
    wait_for_client = False
    drop_after = 200
    subscriptions = [
        {
            "channels": ["aggTrade", "bookTicker", "kline_1m"],
            "symbols": ["DENTUSDT", "KSMUSDT", "XMRUSDT", "YFIUSDT"],
        }
    ]

    def is_market_frame(self, frame: str | bytes) -> bool:
        # depth streams need a REST snapshot; this example plugin does not handle them
        text = frame if isinstance(frame, str) else frame.decode()
        return "@depth" not in text
