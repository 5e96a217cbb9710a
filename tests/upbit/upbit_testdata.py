import datetime as dt
import json
from pathlib import Path

DATA = Path(__file__).parent / "data"
CAPTURE_2021 = DATA / "upbit.20210405.ws.1.jsonl"
DOCS_WS = DATA / "upbit.20250926.docs.ws.1.jsonl"
DEFAULT_CONSTRUCTED = DATA / "upbit.constructed.default.ws.jsonl"
MISC_CONSTRUCTED = DATA / "upbit.constructed.misc.ws.jsonl"


def received(path: Path) -> list[dict]:
    """The capture's received frames as plain dicts (json, independent of marketfeed)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [rec for rec in map(json.loads, lines) if rec["dir"] == "in"]


def payload(rec: dict) -> str | bytes:
    return rec["frame"].encode("utf-8") if rec.get("binary") else rec["frame"]


def utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def make_normaliser(subscriptions=(), session=None):
    """An Upbit normaliser for a plan carrying ``subscriptions`` ((channel, symbol) pairs)."""
    from marketfeed import ConnectionPlan, Subscription
    from marketfeed_upbit import UpbitNormaliser

    subs = tuple(Subscription(venue="upbit", channel=c, symbol=s) for c, s in subscriptions)
    plan = ConnectionPlan(name="upbit/0", url="ws://127.0.0.1:9/websocket/v1", subscriptions=subs)
    return UpbitNormaliser(plan, session=session)


def unit_cache_state(norm, fmt=0):
    """``(times emptied at capacity, units held)`` of the unit cache the normaliser's
    orderbook path fills: its C readers' own indexes with the C fast path, else the
    session's ``UnitCache`` of format ``fmt``."""
    readers = {id(h): h for h in norm._fast.values() if type(h).__name__ == "Book"}
    if readers:
        return sum(r.emptied for r in readers.values()), max(r.cached for r in readers.values())
    units = norm.session.units[fmt]
    return units.clears, len(units)


def rest_context(server, **options):
    """A real upbit ``VenueContext`` whose REST (and WebSocket) endpoints are the replay
    server's, with ``UpbitConfig(**options)``."""
    import httpx
    from marketfeed import RateLimiters, VenueContext, get_transport
    from marketfeed_upbit import UpbitConfig

    return VenueContext(
        venue="upbit",
        config=UpbitConfig(**options),
        endpoints={"ws": server.ws_url + "/websocket/v1", "rest": server.http_url},
        transport=get_transport("httpx-ws"),
        limiters=RateLimiters(),
        http=httpx.AsyncClient,
    )
