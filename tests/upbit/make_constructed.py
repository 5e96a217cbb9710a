"""Build the *constructed* Upbit frames in ``data/`` from the real ones (run by hand).

The recordings hold only SIMPLE-format ``trade``/``orderbook`` frames and two DEFAULT-format
``ticker`` frames (docs transcript). Upbit's reference documents both formats field by
field (the 축약형/SIMPLE column of the WebSocket ticker, trade, orderbook and candle
pages), so the other shapes are built from real frames by renaming keys textually: every
value keeps its exact text (numbers such as ``2.2E-7`` or ``1505.00000000`` are not
re-formatted).

* ``upbit.constructed.default.ws.jsonl``: the first 300 received frames of
  ``upbit.20210405.ws.1.jsonl`` with DEFAULT keys, sent as **text** frames.
* ``upbit.constructed.misc.ws.jsonl``: SIMPLE ``ticker`` frames (the docs transcript
  renamed), ``candle.1m``/``candle.1s``/``candle.60m`` frames in both formats whose values
  are real REST candle rows (``upbit.candles.smtm-20210130.http.jsonl``), a
  ``{"status":"UP"}`` frame and two ``{"error":...}`` frames (the documented example and a
  ``NO_CODES`` one).

Usage: ``python tests/upbit/make_constructed.py`` (rewrites both files).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DATA = Path(__file__).parent / "data"

# SIMPLE key -> DEFAULT key, per type (Upbit reference, WebSocket field tables).
TRADE = {
    "ty": "type",
    "cd": "code",
    "tms": "timestamp",
    "td": "trade_date",
    "ttm": "trade_time",
    "ttms": "trade_timestamp",
    "tp": "trade_price",
    "tv": "trade_volume",
    "ab": "ask_bid",
    "pcp": "prev_closing_price",
    "c": "change",
    "cp": "change_price",
    "sid": "sequential_id",
    "bap": "best_ask_price",
    "bas": "best_ask_size",
    "bbp": "best_bid_price",
    "bbs": "best_bid_size",
    "st": "stream_type",
}
ORDERBOOK = {
    "ty": "type",
    "cd": "code",
    "tms": "timestamp",
    "tas": "total_ask_size",
    "tbs": "total_bid_size",
    "obu": "orderbook_units",
    "ap": "ask_price",
    "bp": "bid_price",
    "as": "ask_size",
    "bs": "bid_size",
    "lv": "level",
    "st": "stream_type",
}
TICKER = {
    "ty": "type",
    "cd": "code",
    "op": "opening_price",
    "hp": "high_price",
    "lp": "low_price",
    "tp": "trade_price",
    "pcp": "prev_closing_price",
    "c": "change",
    "cp": "change_price",
    "scp": "signed_change_price",
    "cr": "change_rate",
    "scr": "signed_change_rate",
    "tv": "trade_volume",
    "atv": "acc_trade_volume",
    "atv24h": "acc_trade_volume_24h",
    "atp": "acc_trade_price",
    "atp24h": "acc_trade_price_24h",
    "tdt": "trade_date",
    "ttm": "trade_time",
    "ttms": "trade_timestamp",
    "ab": "ask_bid",
    "aav": "acc_ask_volume",
    "abv": "acc_bid_volume",
    "h52wp": "highest_52_week_price",
    "h52wdt": "highest_52_week_date",
    "l52wp": "lowest_52_week_price",
    "l52wdt": "lowest_52_week_date",
    "ms": "market_state",
    "its": "is_trading_suspended",
    "dd": "delisting_date",
    "mw": "market_warning",
    "tms": "timestamp",
    "st": "stream_type",
}
CANDLE = {
    "ty": "type",
    "cd": "code",
    "cdttmu": "candle_date_time_utc",
    "cdttmk": "candle_date_time_kst",
    "op": "opening_price",
    "hp": "high_price",
    "lp": "low_price",
    "tp": "trade_price",
    "catv": "candle_acc_trade_volume",
    "catp": "candle_acc_trade_price",
    "tms": "timestamp",
    "st": "stream_type",
}

_KEY = re.compile(r'"([A-Za-z0-9_]+)":')


def rename(text: str, mapping: dict[str, str]) -> str:
    """Rename every JSON key of ``text`` through ``mapping`` (values untouched).

    Raises:
        KeyError: a key has no mapping (so nothing is silently left in the other format).
    """
    return _KEY.sub(lambda m: f'"{mapping[m.group(1)]}":', text)


def _line(t: float, frame: str, binary: bool) -> str:
    rec: dict[str, object] = {"t": t, "dir": "in", "frame": frame}
    if binary:
        rec["binary"] = True
    return json.dumps(rec, ensure_ascii=False)


def default_frames() -> list[str]:
    out = []
    lines = (DATA / "upbit.20210405.ws.1.jsonl").read_text().splitlines()
    received = [json.loads(x) for x in lines if json.loads(x)["dir"] == "in"][:300]
    for rec in received:
        mapping = TRADE if rec["frame"].startswith('{"ty":"trade"') else ORDERBOOK
        out.append(_line(rec["t"], rename(rec["frame"], mapping), binary=False))
    return out


def _candle_simple(row: str, ctype: str) -> str:
    """A SIMPLE candle frame from a REST candle row (text), keeping the number texts."""
    fields = {
        "candle_date_time_utc": "cdttmu",
        "candle_date_time_kst": "cdttmk",
        "opening_price": "op",
        "high_price": "hp",
        "low_price": "lp",
        "trade_price": "tp",
        "candle_acc_trade_volume": "catv",
        "candle_acc_trade_price": "catp",
        "timestamp": "tms",
    }
    values = dict(re.findall(r'"([a-z_]+)":("[^"]*"|[^,}]+)', row))
    parts = [f'"ty":"{ctype}"', f'"cd":{values["market"]}']
    parts += [f'"{short}":{values[long]}' for long, short in fields.items()]
    parts.append('"st":"REALTIME"')
    return "{" + ",".join(parts) + "}"


def misc_frames() -> list[str]:
    out = []
    docs = [
        json.loads(x) for x in (DATA / "upbit.20250926.docs.ws.1.jsonl").read_text().splitlines()
    ]
    inverse = {v: k for k, v in TICKER.items()}
    for rec in docs:
        if rec["dir"] == "in":
            out.append(_line(rec["t"], rename(rec["frame"], inverse), binary=True))
    http = json.loads((DATA / "upbit.candles.smtm-20210130.http.jsonl").read_text().splitlines()[1])
    rows = re.findall(r"\{[^{}]*\}", http["body"])[:2]
    inverse_candle = CANDLE
    for ctype in ("candle.1m", "candle.1s", "candle.60m"):
        for row in rows:
            simple = _candle_simple(row, ctype)
            t = http["t"]
            out.append(_line(t, simple, binary=True))
            out.append(_line(t, rename(simple, inverse_candle), binary=False))
    out.append(_line(1758875215.0, '{"status":"UP"}', binary=True))
    out.append(
        _line(
            1758875216.0,
            '{"error":{"name":"INVALID_AUTH","message":"인증 정보가 올바르지 않습니다."}}',
            binary=True,
        )
    )
    out.append(
        _line(1758875217.0, '{"error":{"name":"NO_CODES","message":"NO_CODES"}}', binary=False)
    )
    return out


def main() -> None:
    (DATA / "upbit.constructed.default.ws.jsonl").write_text("\n".join(default_frames()) + "\n")
    (DATA / "upbit.constructed.misc.ws.jsonl").write_text("\n".join(misc_frames()) + "\n")


if __name__ == "__main__":
    main()
