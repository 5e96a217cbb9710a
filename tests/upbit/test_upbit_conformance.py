"""marketfeed's conformance suite on the Upbit plugin and the real 2021 capture."""

from marketfeed.testing.conformance import VenueConformance
from upbit_testdata import CAPTURE_2021, received

_MARKETS = sorted({r["frame"].split('"cd":"')[1].split('"')[0] for r in received(CAPTURE_2021)})


class TestUpbitConformance(VenueConformance):
    venue = "upbit"
    capture = CAPTURE_2021
    endpoint = "ws"
    path = "/websocket/v1"
    subscriptions = [{"channels": ["trade", "orderbook"], "symbols": _MARKETS}]
    drop_after = 50
