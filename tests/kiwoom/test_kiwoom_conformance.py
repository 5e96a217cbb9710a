"""The core conformance suite (``marketfeed.testing.conformance``) for ``kiwoom``.

Streaming: the capture is CONSTRUCTED from the documented WebSocket examples (login answer,
REG acks, 0B and 0D REAL frames, PING; see data/README.md): no recorded Kiwoom WebSocket
traffic exists in the fixtures. The token comes from the documented au10001 body served
as an HTTP capture.
Scheduled: the ``daily_bars`` job through the Supervisor against the fake REST server.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kiwoom_fake import APP_KEY, SECRET_KEY, FakeKiwoom, load, page
from marketfeed import Frame
from marketfeed.testing import ReplayServer
from marketfeed.testing.conformance import JobConformance, VenueConformance

DATA = Path(__file__).parent / "data"
OPTIONS = {"app_key": APP_KEY, "secret_key": SECRET_KEY, "retry_initial": 0.01}


class TestKiwoomStreamingConformance(VenueConformance):
    venue = "kiwoom"
    capture = DATA / "kiwoom.ws.constructed.jsonl"
    http_captures = (DATA / "kiwoom.http.constructed.jsonl",)
    endpoint = "ws"
    path = "/api/dostk/websocket"
    subscriptions = ({"channels": ["0B", "0D"], "symbols": ["005930"]},)
    options = OPTIONS
    drop_after = 4  # the constructed capture is short (8 received frames)

    def is_market_frame(self, frame: Frame) -> bool:
        return '"REAL"' in (frame if isinstance(frame, str) else frame.decode())


class TestKiwoomDailyBarsJobConformance(JobConformance):
    venue = "kiwoom"
    job = "daily_bars"
    job_options = {"symbols": ["005930"], "date": "2025-09-08", "days": 5}
    options = OPTIONS

    def serve(self, server: ReplayServer) -> Mapping[str, str]:
        fake = FakeKiwoom()
        fake.default("ka10081", page(load("ka10081.response.json")))
        fake.install(server)
        return {"rest": server.http_url}
