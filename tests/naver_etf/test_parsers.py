"""Parsers on the recorded documents, directly (no HTTP)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from marketfeed import VenueError
from marketfeed_naver_etf import (
    CATEGORIES,
    LayoutChanged,
    decode_body,
    normalise_name,
    parse_etf_analysis,
    parse_etf_list,
    parse_korean_amount,
    parse_wisereport,
)
from naver_etf_helpers import data_bytes, data_json, mobile_doc, wisereport_page

NOW = dt.datetime(2026, 9, 29, 7, 0, tzinfo=dt.UTC)
EUC_KR = "text/plain;charset=EUC-KR"


# --------------------------------------------------------------------------- ETF list


def _expected_rows() -> list[dict]:
    return data_json("etfItemList.response.json")["result"]["etfItemList"]


def test_list_from_euc_kr_bytes_matches_recorded_rows() -> None:
    body = data_bytes("etfItemList.response.euc-kr.bin")
    instruments = parse_etf_list(body, EUC_KR, NOW)
    rows = _expected_rows()
    assert len(instruments) == len(rows) == 10
    for inst, row in zip(instruments, rows, strict=True):
        assert inst.venue == "naver_etf" and inst.kind == "etf"
        assert inst.native_symbol == row["itemcode"]
        assert inst.symbol == f"{row['itemcode']}-KRW"
        assert inst.name == row["itemname"]
        assert inst.as_of == NOW
        assert inst.extra["category_code"] == str(row["etfTabCode"])
        assert inst.extra["category"] == CATEGORIES[row["etfTabCode"]]
        assert Decimal(inst.extra["price_krw"]) == row["nowVal"]
        assert Decimal(inst.extra["volume_shares"]) == row["quant"]
        assert Decimal(inst.extra["traded_value_krw_million"]) == row["amonut"]
        assert Decimal(inst.extra["market_cap_krw"]) == row["marketSum"] * 100_000_000
        assert inst.extra["change_pct"] == repr(row["changeRate"])
    # Korean names decoded (not mojibake): compare with the UTF-8 JSON of the same rows.
    assert instruments[6].name == "KODEX 삼성그룹"


def test_list_null_nav_and_return_are_absent_not_zero() -> None:
    instruments = parse_etf_list(data_bytes("etfItemList.response.euc-kr.bin"), EUC_KR, NOW)
    null_nav = {r["itemcode"] for r in _expected_rows() if r["nav"] is None}
    assert null_nav == {"371460", "133690"}
    assert {i.native_symbol for i in instruments if "nav_krw" not in i.extra} == null_nav
    recorded = data_json("etfItemList.rows.changsik00-stock.recorded.json")
    # CONSTRUCTED envelope (upper-case resultCode, as one docstring writes it) around
    # recorded rows with an alphanumeric code and a null 3-month return.
    body = json.dumps(
        {"resultCode": "SUCCESS", "result": {"etfItemList": recorded}}, ensure_ascii=False
    ).encode("cp949")
    instruments = parse_etf_list(body, EUC_KR, NOW)
    by_code = {i.native_symbol: i for i in instruments}
    assert set(by_code) == {r["itemcode"] for r in recorded}
    assert "return_3m_pct" not in by_code["0193T0"].extra
    assert by_code["0193T0"].name == "KODEX SK하이닉스단일종목레버리지"
    assert by_code["069500"].extra["return_3m_pct"] == "15.599"


def test_list_utf8_body_under_euc_kr_header_is_not_mojibake() -> None:
    body = data_bytes("etfItemList.response.json")  # UTF-8 bytes
    instruments = parse_etf_list(body, EUC_KR, NOW)
    assert [i.name for i in instruments] == [r["itemname"] for r in _expected_rows()]
    # The trap: CONSTRUCTED envelope around one recorded row whose UTF-8 bytes decode
    # *without error* as cp949, into mojibake; trying the declared charset first fails.
    [row] = [r for r in data_json("etfItemList.rows.changsik00-stock.recorded.json")
             if r["itemcode"] == "360750"]  # fmt: skip
    body = json.dumps(
        {"resultCode": "success", "result": {"etfItemList": [row]}}, ensure_ascii=False
    ).encode("utf-8")
    assert "TIGER 미국S&P500" not in body.decode("cp949")
    [inst] = parse_etf_list(body, EUC_KR, NOW)
    assert inst.name == "TIGER 미국S&P500" == row["itemname"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("etfItemList.response.json", "application/json; charset=utf-8"),
        ("etfItemList.response.json", None),
        ("etfItemList.response.euc-kr.bin", None),  # undeclared EUC-KR: fallback
        ("etfItemList.response.euc-kr.bin", "text/plain; charset=utf-8"),  # wrong header
    ],
)
def test_list_decoding_fallbacks(name: str, content_type: str | None) -> None:
    instruments = parse_etf_list(data_bytes(name), content_type, NOW)
    assert [i.name for i in instruments] == [r["itemname"] for r in _expected_rows()]


def test_decode_body_reports_undecodable_bytes() -> None:
    with pytest.raises(UnicodeDecodeError):
        decode_body(b"\xff\xff\xff", EUC_KR)


def test_list_error_result_code_is_a_venue_error() -> None:
    with pytest.raises(VenueError) as err:
        parse_etf_list(b'{"resultCode":"fail"}', EUC_KR, NOW)
    assert err.value.code == "fail"
    assert not isinstance(err.value, LayoutChanged)


def test_list_renamed_field_is_a_layout_change() -> None:
    text = data_bytes("etfItemList.response.json").decode("utf-8")
    renamed = text.replace('"marketSum"', '"marketCap"')
    with pytest.raises(LayoutChanged) as err:
        parse_etf_list(renamed.encode("utf-8"), None, NOW)
    assert err.value.missing == "$.result.etfItemList[0].marketSum"
    with pytest.raises(LayoutChanged, match=r"\$\.result\b"):
        parse_etf_list(b'{"resultCode":"success"}', None, NOW)
    with pytest.raises(LayoutChanged, match="JSON"):
        parse_etf_list(b"<html>maintenance</html>", None, NOW)


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("text", "krw"),
    [
        ("25조 533억", 25 * 10**12 + 533 * 10**8),
        ("25조 5,797억", 25 * 10**12 + 5797 * 10**8),
        ("703억", 703 * 10**8),
        ("-72.9억", -7_290_000_000),
        ("-669억", -669 * 10**8),
        ("1조 5,567억", 10**12 + 5567 * 10**8),
        ("-", None),
        ("", None),
    ],
)
def test_korean_amounts(text: str, krw: int | None) -> None:
    expected = None if krw is None else Decimal(krw)
    assert parse_korean_amount(text) == expected


def test_korean_amount_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_korean_amount("약 25조")


def test_names_normalise_for_matching() -> None:
    assert normalise_name("삼성전자(우)") == "삼성전자우" != normalise_name("삼성전자")
    assert normalise_name(" NVIDIA Corp. ") == normalise_name("NVIDIA CORP")
    assert normalise_name("SK 하이닉스") == normalise_name("SK하이닉스")


# --------------------------------------------------------------------------- mobile


@pytest.mark.parametrize("code", ["069500", "360750", "0193T0", "114800", "0162Z0"])
def test_mobile_rows_match_the_recorded_document(code: str) -> None:
    raw = json.loads(mobile_doc(code))
    analysis = parse_etf_analysis(mobile_doc(code), expected_code=code)
    rows = raw["etfTop10MajorConstituentAssets"]
    assert analysis.code == code and analysis.name == raw["itemName"]
    assert len(analysis.holdings) == len(rows)
    for got, row in zip(analysis.holdings, rows, strict=True):
        assert got.seq == row["seq"] and got.name == row["itemName"]
        assert got.code == (row["itemCode"] or None)
        if row["etfWeight"] == "-":
            assert got.weight_pct is None
        else:
            assert got.weight_pct == Decimal(row["etfWeight"].rstrip("%"))
        if row["stockCount"] == "-":
            assert got.shares is None
        else:
            assert got.shares == Decimal(row["stockCount"].replace(",", ""))


def test_mobile_edge_cases() -> None:
    foreign = parse_etf_analysis(mobile_doc("360750"))
    assert all(h.code is None and h.weight_pct is None for h in foreign.holdings)
    inverse = parse_etf_analysis(mobile_doc("114800"))
    assert [h.weight_pct for h in inverse.holdings] == [Decimal("100.00"), Decimal("100.00"), None]
    bond_mixed = parse_etf_analysis(mobile_doc("0162Z0"))
    assert [h.code for h in bond_mixed.holdings] == ["005930", "000660", None]
    assert all(h.weight_pct is None for h in bond_mixed.holdings)


def test_mobile_reference_date_and_amounts() -> None:
    raw = json.loads(mobile_doc("069500"))
    analysis = parse_etf_analysis(mobile_doc("069500"))
    assert analysis.reference_date == dt.date(2026, 8, 27)
    assert analysis.market_value_krw == Decimal(raw["marketValueRaw"])
    # The unit string agrees with the raw integer to within its rounding (1억).
    assert abs(parse_korean_amount(raw["marketValue"]) - Decimal(raw["marketValueRaw"])) < 10**8
    assert analysis.nav_krw == Decimal("109431.83")
    trimmed = parse_etf_analysis(mobile_doc("360750"))
    assert trimmed.reference_date == dt.date(2026, 7, 15)  # from cumulativeNetInflowList
    assert trimmed.market_value_krw == Decimal(20 * 10**12 + 1066 * 10**8)
    assert parse_etf_analysis(mobile_doc("0193T0")).reference_date is None


def test_mobile_layout_changes() -> None:
    raw = json.loads(mobile_doc("069500"))
    without = {k: v for k, v in raw.items() if k != "etfTop10MajorConstituentAssets"}
    with pytest.raises(LayoutChanged) as err:
        parse_etf_analysis(json.dumps(without))
    assert err.value.missing == "$.etfTop10MajorConstituentAssets"
    renamed = json.dumps(raw).replace('"etfWeight"', '"weight"')
    with pytest.raises(LayoutChanged, match="etfWeight"):
        parse_etf_analysis(renamed)
    raw["etfTop10MajorConstituentAssets"][0]["etfWeight"] = "high"
    with pytest.raises(LayoutChanged, match=r"\[0\]\.etfWeight"):
        parse_etf_analysis(json.dumps(raw))
    with pytest.raises(LayoutChanged, match="asked for 360750"):
        parse_etf_analysis(mobile_doc("069500"), expected_code="360750")


# --------------------------------------------------------------------------- WiseReport


def test_wisereport_synthetic_page_069500() -> None:
    html = data_bytes("wisereport.ETF.index.069500.synthetic.html").decode("utf-8")
    report = parse_wisereport(html, expected_code="069500")
    grid = data_json("wisereport.CU_data.069500.first9rows.recorded.json")["grid_data"]
    assert report.code == "069500" and report.name == "KODEX 200"
    assert report.as_of == dt.date(2026, 9, 28)
    assert [r.name for r in report.rows] == [g["STK_NM_KOR"] for g in grid]
    assert [r.weight_pct for r in report.rows] == [Decimal(str(g["ETF_WEIGHT"])) for g in grid]
    assert [r.shares for r in report.rows] == [Decimal(str(g["AGMT_STK_CNT"])) for g in grid]


@pytest.mark.parametrize("code", ["148070", "132030"])
def test_wisereport_null_weights_negative_and_zero_counts(code: str) -> None:
    cu = data_json(f"wisereport.CU_data.{code}.recorded.json")
    page = wisereport_page(data_json(f"wisereport.summary_data.{code}.recorded.json"), cu)
    report = parse_wisereport(page, expected_code=code)
    assert len(report.rows) == len(cu["grid_data"])
    assert all(r.weight_pct is None for r in report.rows)
    assert [r.shares for r in report.rows] == [
        Decimal(str(g["AGMT_STK_CNT"])) for g in cu["grid_data"]
    ]
    negatives = [r.name for r in report.rows if r.shares < 0]
    expected_neg = [g["STK_NM_KOR"] for g in cu["grid_data"] if g["AGMT_STK_CNT"] < 0]
    assert negatives == expected_neg
    if code == "132030":
        assert negatives == ["2026-10 달러선물"]


def test_wisereport_missing_cu_data_is_a_clear_layout_error() -> None:
    page = wisereport_page(data_json("wisereport.summary_data.148070.recorded.json"), None)
    with pytest.raises(LayoutChanged) as err:
        parse_wisereport(page, expected_code="148070")
    assert err.value.missing == "var CU_data"
    assert "CU_data" in str(err.value) and err.value.code == "layout_changed"
    assert isinstance(err.value, VenueError)
    with pytest.raises(LayoutChanged, match="CU_data"):
        parse_wisereport("<html><body>점검 중입니다</body></html>")


def test_wisereport_renamed_fields_name_what_is_missing() -> None:
    cu = data_json("wisereport.CU_data.148070.recorded.json")
    text = json.dumps(cu, ensure_ascii=False)
    renamed = json.loads(text.replace('"ETF_WEIGHT"', '"ETF_WGT"'))
    with pytest.raises(LayoutChanged) as err:
        parse_wisereport(wisereport_page(None, renamed))
    assert err.value.missing == "$.grid_data[0].ETF_WEIGHT"
    with pytest.raises(LayoutChanged) as err:
        parse_wisereport(wisereport_page(None, {"rows": cu["grid_data"]}))
    assert err.value.missing == "$.grid_data"
    broken = '<script>var CU_data = {"grid_data": [ {"TRD_DT": };</script>'
    with pytest.raises(LayoutChanged, match="var CU_data as a JSON object"):
        parse_wisereport(broken)


def test_wisereport_decodes_json_without_evaluating_script() -> None:
    # CONSTRUCTED: a name containing "};" and a trailing statement; other scripts before.
    cu = {
        "grid_data": [
            {"TRD_DT": "2026-09-28", "AGMT_STK_CNT": 1, "STK_NM_KOR": "A};B", "ETF_WEIGHT": 1.5}
        ]
    }
    page = "<script>var other = 1;</script>" + wisereport_page(
        None, cu, extra="alert('never run'); var x = {};"
    )
    report = parse_wisereport(page)
    assert [r.name for r in report.rows] == ["A};B"]
    assert report.rows[0].shares == Decimal(1) and report.rows[0].weight_pct == Decimal("1.5")


def test_wisereport_page_for_another_etf_is_rejected() -> None:
    html = data_bytes("wisereport.ETF.index.069500.synthetic.html").decode("utf-8")
    with pytest.raises(LayoutChanged, match="CMP_CD"):
        parse_wisereport(html, expected_code="102110")
