"""Merge rules and change detection (pure functions and the state store)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from marketfeed import EtfHolding
from marketfeed_naver_etf import (
    Snapshot,
    StateStore,
    diff_snapshots,
    holding_key,
    merge_holdings,
    normalise_name,
    parse_etf_analysis,
    parse_wisereport,
    snapshot_of,
)
from marketfeed_naver_etf._history import Entry
from naver_etf_helpers import data_bytes, data_json, mobile_doc, wisereport_page

NOW = dt.datetime(2026, 9, 29, 7, 0, tzinfo=dt.UTC)
FALLBACK = dt.date(2026, 9, 29)


def _merge(code: str, mobile: bool = True, wise: bool = True, **kw):  # type: ignore[no-untyped-def]
    m = parse_etf_analysis(mobile_doc(code)) if mobile else None
    w = None
    if wise:
        if code == "069500":
            page = data_bytes("wisereport.ETF.index.069500.synthetic.html").decode()
        else:
            page = wisereport_page(None, data_json(f"wisereport.CU_data.{code}.recorded.json"))
        w = parse_wisereport(page)
    return merge_holdings(
        code, venue="naver_etf", mobile=m, wisereport=w, receive_time=NOW,
        fallback_date=FALLBACK, **kw,
    )  # fmt: skip


# --------------------------------------------------------------------------- merge


def _cu_row(name: str, count: float, weight: float | None) -> dict[str, object]:
    """One CONSTRUCTED grid_data row dated 2026-09-28."""
    return {"TRD_DT": "2026-09-28", "AGMT_STK_CNT": count, "STK_NM_KOR": name, "ETF_WEIGHT": weight}


def test_kodex200_merges_codes_from_mobile_onto_the_full_basket() -> None:
    result = _merge("069500")
    grid = data_json("wisereport.CU_data.069500.first9rows.recorded.json")["grid_data"]
    top10 = json.loads(mobile_doc("069500"))["etfTop10MajorConstituentAssets"]
    code_by_name = {r["itemName"]: r["itemCode"] for r in top10}
    assert result.as_of == dt.date(2026, 9, 28)  # WiseReport TRD_DT wins
    assert len(result.holdings) == len(grid)  # the basket is WiseReport's
    for h, g in zip(result.holdings, grid, strict=True):
        assert h.etf_symbol == "069500" and h.venue == "naver_etf"
        assert h.constituent_name == g["STK_NM_KOR"]
        assert h.constituent_symbol == code_by_name[g["STK_NM_KOR"]]
        assert h.weight_pct == Decimal(str(g["ETF_WEIGHT"]))  # WiseReport weight wins
        assert h.shares == Decimal(str(g["AGMT_STK_CNT"]))
        assert h.source == "wisereport+naver-mobile" and h.value is None
        assert h.as_of == dt.date(2026, 9, 28) and h.receive_time == NOW
    unmatched = set(code_by_name) - {g["STK_NM_KOR"] for g in grid}
    assert {u.name for u in result.unmatched} == unmatched == {"삼성물산"}


def test_mobile_only_basket_keeps_dash_weights_as_none() -> None:
    result = _merge("0193T0", wise=False)
    rows = json.loads(mobile_doc("0193T0"))["etfTop10MajorConstituentAssets"]
    assert result.as_of == FALLBACK  # the trimmed document has no reference date
    assert [h.source for h in result.holdings] == ["naver-mobile"] * len(rows)
    by_name = {h.constituent_name: h for h in result.holdings}
    assert by_name["SK하이닉스"].constituent_symbol == "000660"
    assert by_name["원화현금"].constituent_symbol is None  # cash: no code
    assert by_name["원화현금"].weight_pct == Decimal("9.42")
    assert by_name["원화현금"].shares is None  # "-"
    future = by_name["2026-08 SK하이닉스개별선물"]
    assert future.weight_pct is None and future.shares == Decimal(25)


def test_inverse_cash_rows_keep_100_percent_weights() -> None:
    result = _merge("114800", wise=False)
    weights = {h.constituent_name: h.weight_pct for h in result.holdings}
    assert weights == {
        "원화현금": Decimal("100.00"),
        "설정현금액": Decimal("100.00"),
        "2026-09 코스피200지수선물": None,
    }


def test_foreign_rows_have_no_code_and_no_weight() -> None:
    result = _merge("360750", wise=False)
    assert result.as_of == dt.date(2026, 7, 15)
    assert all(h.constituent_symbol is None and h.weight_pct is None for h in result.holdings)
    assert {holding_key(h) for h in result.holdings} == {"name:NVIDIACORP", "name:APPLEINC"}


def test_bond_basket_zero_counts_and_null_weights_are_none() -> None:
    result = _merge("148070", mobile=False)
    grid = data_json("wisereport.CU_data.148070.recorded.json")["grid_data"]
    assert all(g["AGMT_STK_CNT"] == 0 and g["ETF_WEIGHT"] is None for g in grid)
    assert len(result.holdings) == len(grid)
    assert all(h.shares is None and h.weight_pct is None for h in result.holdings)
    assert all(h.source == "wisereport" for h in result.holdings)
    assert {h.constituent_name for h in result.holdings} >= {"설정현금액", "원화현금"}


def test_gold_basket_keeps_fractional_and_negative_counts() -> None:
    result = _merge("132030", mobile=False)
    grid = data_json("wisereport.CU_data.132030.recorded.json")["grid_data"]
    expected = {
        g["STK_NM_KOR"]: (Decimal(str(g["AGMT_STK_CNT"])) if g["AGMT_STK_CNT"] else None)
        for g in grid
    }
    assert {h.constituent_name: h.shares for h in result.holdings} == expected
    assert expected["2026-10 달러선물"] == Decimal("-14.71")
    assert expected["USD현금"] == Decimal("556.87")


def test_null_wisereport_weight_falls_back_to_matched_mobile_weight() -> None:
    # CONSTRUCTED: the recorded 0193T0 mobile rows against a basket without weights.
    cu = {"grid_data": [_cu_row("SK하이닉스", 205, None), _cu_row("원화 현금", 0, None)]}
    wise = parse_wisereport(wisereport_page(None, cu))
    mobile = parse_etf_analysis(mobile_doc("0193T0"))
    result = merge_holdings(
        "0193T0", venue="naver_etf", mobile=mobile, wisereport=wise, receive_time=NOW,
        fallback_date=FALLBACK,
    )  # fmt: skip
    first, cash = result.holdings
    assert (first.constituent_symbol, first.weight_pct) == ("000660", Decimal("90.58"))
    assert cash.constituent_name == "원화 현금"  # matched "원화현금" by normalised name
    assert cash.weight_pct == Decimal("9.42") and cash.shares is None
    assert cash.source == "wisereport+naver-mobile"
    assert [u.name for u in result.unmatched] == ["2026-08 SK하이닉스개별선물"]


def test_name_codes_give_codes_to_basket_rows_and_match_by_code() -> None:
    # CONSTRUCTED stock-list mapping; the code then matches the mobile row by code even
    # though the mobile name differs.
    cu = {"grid_data": [_cu_row("삼성전자보통주", 6930, None)]}
    result = merge_holdings(
        "069500", venue="naver_etf", mobile=parse_etf_analysis(mobile_doc("069500")),
        wisereport=parse_wisereport(wisereport_page(None, cu)), receive_time=NOW,
        fallback_date=FALLBACK, name_codes={normalise_name("삼성전자보통주"): "005930"},
    )  # fmt: skip
    [row] = result.holdings
    assert row.constituent_symbol == "005930"
    assert row.weight_pct == Decimal("33.66")  # from the mobile row matched by code


def test_duplicate_rows_are_combined() -> None:
    # CONSTRUCTED
    cu = {"grid_data": [_cu_row("원화현금", 1.5, 1.25), _cu_row("원화 현금", 2, None)]}
    result = merge_holdings(
        "114800", venue="naver_etf", mobile=None,
        wisereport=parse_wisereport(wisereport_page(None, cu)), receive_time=NOW,
        fallback_date=FALLBACK,
    )  # fmt: skip
    [row] = result.holdings
    assert (row.shares, row.weight_pct) == (Decimal("3.5"), Decimal("1.25"))


def test_merge_needs_a_source() -> None:
    with pytest.raises(ValueError):
        merge_holdings(
            "069500", venue="naver_etf", mobile=None, wisereport=None, receive_time=NOW,
            fallback_date=FALLBACK,
        )  # fmt: skip


# --------------------------------------------------------------------------- history


def _holding(name: str, code: str | None, weight: str | None) -> EtfHolding:
    return EtfHolding(
        venue="naver_etf", etf_symbol="069500", as_of=dt.date(2026, 9, 28),
        constituent_symbol=code, constituent_name=name,
        weight_pct=None if weight is None else Decimal(weight), source="test",
        receive_time=NOW,
    )  # fmt: skip


def _snap(day: int, rows: list[tuple[str, str | None, str | None]]) -> Snapshot:
    """A CONSTRUCTED snapshot of 069500 on 2026-09-<day>."""
    return snapshot_of("069500", dt.date(2026, 9, day), [_holding(n, c, w) for n, c, w in rows])


def test_diff_between_two_constructed_snapshots() -> None:
    before = _snap(25, [
        ("삼성전자", "005930", "34.17"), ("SK하이닉스", "000660", "27.25"),
        ("삼성물산", "028260", "0.98"), ("원화현금", None, "0.08"), ("NVIDIA CORP", None, None),
    ])  # fmt: skip
    after = _snap(28, [
        ("삼성전자", "005930", "33.66"),   # -0.51 pp: above 0.5
        ("SK하이닉스", "000660", "27.70"),  # +0.45 pp: below
        ("원화현금", None, "0.60"),         # +0.52 pp, keyed by name
        ("NVIDIA CORP", None, "5.00"),      # weight appeared: not a weight change
        ("한화에어로스페이스", "012450", "1.03"),  # added
    ])  # fmt: skip
    changes = diff_snapshots(
        before, after, threshold=Decimal("0.5"), venue="naver_etf", receive_time=NOW
    )
    summary = [(c.change, c.constituent_key, c.old_weight_pct, c.new_weight_pct) for c in changes]
    assert summary == [
        ("removed", "028260", Decimal("0.98"), None),
        ("added", "012450", None, Decimal("1.03")),
        ("weight", "005930", Decimal("34.17"), Decimal("33.66")),
        ("weight", "name:원화현금", Decimal("0.08"), Decimal("0.60")),
    ]
    assert all(c.as_of == dt.date(2026, 9, 28) for c in changes)
    assert all(c.previous_as_of == dt.date(2026, 9, 25) for c in changes)
    assert changes[0].constituent_name == "삼성물산"
    # A higher threshold keeps only additions and removals.
    changes = diff_snapshots(
        before, after, threshold=Decimal("0.6"), venue="naver_etf", receive_time=NOW
    )
    assert [c.change for c in changes] == ["removed", "added"]


def test_state_store_rules(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load("069500") is None
    first = _snap(25, [("삼성전자", "005930", "34.17")])
    baseline, state = store.advance(None, first)
    assert baseline is None and state is not None  # first snapshot: a baseline
    store.save("069500", state)
    assert store.load("069500") == state
    second = _snap(28, [("삼성전자", "005930", "30.00")])
    baseline, state = store.advance(store.load("069500"), second)
    assert baseline == first and state is not None and state.previous == first
    store.save("069500", state)
    # Re-run on the same as_of: compares with the previous snapshot again.
    again = _snap(28, [("삼성전자", "005930", "31.00")])
    baseline, state2 = store.advance(store.load("069500"), again)
    assert baseline == first and state2 is not None and state2.current == again
    # An older page leaves the state alone.
    assert store.advance(store.load("069500"), _snap(20, [])) == (None, None)
    # Files are plain JSON; no temporary files are left behind.
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["069500.json"]
    stored = json.loads((tmp_path / "state" / "069500.json").read_text())
    assert stored["current"]["holdings"]["005930"] == ["삼성전자", "30.00"]


def test_state_store_rejects_bad_codes_and_corrupt_files(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(ValueError):
        store.path("../etc")
    (tmp_path / "069500.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt state file"):
        store.load("069500")


def test_snapshot_round_trips_decimals_exactly() -> None:
    snap = Snapshot(
        etf="069500", as_of=dt.date(2026, 9, 28), holdings={"x": Entry("x", Decimal("1.10"))}
    )
    assert msgspec.json.decode(msgspec.json.encode(snap), type=Snapshot) == snap
