"""Test-local conversions of the real captures in tests/sinks/data into marketfeed models.

Deliberately simple and independent of the venue plugins: the sink tests need real values
(exact decimal text, real timestamps), not the plugins' normalisers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import marketfeed as mf

DATA = Path(__file__).parent / "data"
UTC = dt.UTC


def ms(value: str | int) -> dt.datetime:
    """Epoch milliseconds to an aware UTC datetime (exact, no float)."""
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=int(value))


def epoch(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, UTC)


def capture_lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]


def _okx_pushes(channel: str) -> Iterator[tuple[dt.datetime, dict[str, Any]]]:
    """(receive time, data item) of every OKX 2022-05-13 push of ``channel``."""
    for line in capture_lines("okx.20220513.ws.1.trades-tickers.jsonl"):
        msg = json.loads(line["frame"])
        if msg["arg"]["channel"] == channel:
            for d in msg["data"]:
                yield epoch(line["t"]), d


def okx_trades() -> list[mf.Trade]:
    """OKX ``trades`` pushes of 2022-05-13 as Trade models."""
    return [
        mf.Trade(
            venue="okx",
            symbol=d["instId"],
            native_symbol=d["instId"],
            event_time=ms(d["ts"]),
            receive_time=received,
            trade_id=d["tradeId"],
            price=Decimal(d["px"]),
            size=Decimal(d["sz"]),
            side=d["side"],
        )
        for received, d in _okx_pushes("trades")
    ]


def _dec(value: str) -> Decimal | None:
    return Decimal(value) if value != "" else None


def okx_tickers() -> list[mf.Ticker]:
    """OKX ``tickers`` pushes of 2022-05-13 as Ticker models."""
    return [
        mf.Ticker(
            venue="okx",
            symbol=d["instId"],
            native_symbol=d["instId"],
            event_time=ms(d["ts"]),
            receive_time=received,
            last=_dec(d["last"]),
            last_size=_dec(d["lastSz"]),
            bid=_dec(d["bidPx"]),
            bid_size=_dec(d["bidSz"]),
            ask=_dec(d["askPx"]),
            ask_size=_dec(d["askSz"]),
            open_24h=_dec(d["open24h"]),
            high_24h=_dec(d["high24h"]),
            low_24h=_dec(d["low24h"]),
            volume_24h=_dec(d["vol24h"]),
            quote_volume_24h=_dec(d["volCcy24h"]),
        )
        for received, d in _okx_pushes("tickers")
    ]


def upbit_symbol(code: str) -> str:
    quote, base = code.split("-", 1)
    return f"{base}-{quote}"


def upbit_trades() -> list[mf.Trade]:
    """Upbit SIMPLE-format trades of 2021-04-05 (numbers parsed exactly as Decimal)."""
    out = []
    for line in capture_lines("upbit.20210405.ws.1.trades.jsonl"):
        d = json.loads(line["frame"], parse_float=Decimal)
        out.append(
            mf.Trade(
                venue="upbit",
                symbol=upbit_symbol(d["cd"]),
                native_symbol=d["cd"],
                event_time=ms(d["ttms"]),
                receive_time=epoch(line["t"]),
                trade_id=str(d["sid"]),
                price=Decimal(d["tp"]) if isinstance(d["tp"], int) else d["tp"],
                size=Decimal(d["tv"]) if isinstance(d["tv"], int) else d["tv"],
                side="sell" if d["ab"] == "ASK" else "buy",
                sequence=d["sid"],
            )
        )
    return out


_UNITS = {"m": "m", "H": "h", "D": "d", "W": "w", "M": "M"}


def okx_candles() -> list[mf.Candle]:
    """The six OKX candle pushes (``confirm`` absent in the old 7-field rows: unclosed)."""
    out = []
    for line in capture_lines("okx.candles.snippets.ws.jsonl"):
        msg = json.loads(line["frame"])
        bar = msg["arg"]["channel"].removeprefix("candle")
        timeframe = bar[:-1] + _UNITS[bar[-1]]
        inst = msg["arg"]["instId"]
        for row in msg["data"]:
            out.append(
                mf.Candle(
                    venue="okx",
                    symbol=inst,
                    native_symbol=inst,
                    event_time=epoch(line["t"]),
                    receive_time=epoch(line["t"]),
                    timeframe=timeframe,
                    open_time=ms(row[0]),
                    open=Decimal(row[1]),
                    high=Decimal(row[2]),
                    low=Decimal(row[3]),
                    close=Decimal(row[4]),
                    volume=Decimal(row[5]),
                    quote_volume=Decimal(row[7]) if len(row) > 7 else None,
                    closed=len(row) > 8 and row[8] == "1",
                )
            )
    return out


def upbit_candles() -> list[mf.Candle]:
    """200 Upbit 1-minute KRW-BTC candles (REST history: all closed), oldest first."""
    (record,) = capture_lines("upbit.candles.smtm-20210130.http.first.jsonl")
    rows = json.loads(record["body"], parse_float=Decimal)
    out = []
    for r in reversed(rows):
        open_time = dt.datetime.fromisoformat(r["candle_date_time_utc"]).replace(tzinfo=UTC)
        out.append(
            mf.Candle(
                venue="upbit",
                symbol=upbit_symbol(r["market"]),
                native_symbol=r["market"],
                event_time=ms(r["timestamp"]),
                receive_time=epoch(record["t"]),
                timeframe="1m",
                open_time=open_time,
                open=r["opening_price"],
                high=r["high_price"],
                low=r["low_price"],
                close=r["trade_price"],
                volume=r["candle_acc_trade_volume"],
                quote_volume=r["candle_acc_trade_price"],
                closed=True,
            )
        )
    return out


def okx_books() -> list[mf.BookSnapshot]:
    """The four OKX REST books (top 3 levels) as snapshots of their URL's instrument."""
    out = []
    for rec in capture_lines("okx.books.cryptomsgparser.http.jsonl"):
        inst = rec["url"].split("instId=")[1].split("&")[0]
        (book,) = json.loads(rec["body"])["data"]
        out.append(
            mf.BookSnapshot(
                venue="okx",
                symbol=inst,
                native_symbol=inst,
                event_time=ms(book["ts"]),
                receive_time=epoch(rec["t"]),
                bids=tuple((Decimal(p), Decimal(s)) for p, s, *_ in book["bids"]),
                asks=tuple((Decimal(p), Decimal(s)) for p, s, *_ in book["asks"]),
            )
        )
    return out


def _kiwoom_date(text: str) -> dt.date:
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


RECEIVED = dt.datetime(2026, 9, 28, 9, 0, tzinfo=UTC)


def kiwoom_daily_bars() -> list[mf.DailyBar]:
    """ka10081 rows of 005930 as DailyBar (turnover in million KRW)."""
    doc = json.loads((DATA / "ka10081.response.json").read_text())
    return [
        mf.DailyBar(
            venue="kiwoom",
            symbol=doc["stk_cd"],
            native_symbol=doc["stk_cd"],
            date=_kiwoom_date(r["dt"]),
            open=Decimal(r["open_pric"]),
            high=Decimal(r["high_pric"]),
            low=Decimal(r["low_pric"]),
            close=Decimal(r["cur_prc"]),
            volume=Decimal(r["trde_qty"]),
            turnover=Decimal(r["trde_prica"]),
            turnover_unit="KRW million",
            receive_time=RECEIVED,
        )
        for r in doc["stk_dt_pole_chart_qry"]
    ]


def kiwoom_investor_flows() -> list[mf.InvestorFlow]:
    """ka10059 rows as quantity flows with a breakdown."""
    doc = json.loads((DATA / "ka10059.response.json").read_text())
    out = []
    for r in doc["stk_invsr_orgn"]:
        out.append(
            mf.InvestorFlow(
                venue="kiwoom",
                symbol="005930",
                native_symbol="005930",
                date=_kiwoom_date(r["dt"]),
                measure="quantity",
                unit="shares",
                receive_time=RECEIVED,
                individual=Decimal(r["ind_invsr"]),
                foreign=Decimal(r["frgnr_invsr"]),
                institution=Decimal(r["orgn"]),
                breakdown={k: Decimal(r[k]) for k in ("fnnc_invt", "insrnc", "bank", "penfnd_etc")},
            )
        )
    return out


def wisereport_holdings(name: str, etf: str) -> list[mf.EtfHolding]:
    """WiseReport CU_data rows as EtfHolding (name-only constituents; shares exact)."""
    doc = json.loads((DATA / name).read_text(), parse_float=Decimal)
    out = []
    for r in doc["grid_data"]:
        out.append(
            mf.EtfHolding(
                venue="naver_etf",
                etf_symbol=etf,
                as_of=dt.date.fromisoformat(r["TRD_DT"]),
                constituent_name=r["STK_NM_KOR"],
                source="wisereport",
                receive_time=RECEIVED,
                weight_pct=r["ETF_WEIGHT"],
                shares=r["AGMT_STK_CNT"],
            )
        )
    return out
