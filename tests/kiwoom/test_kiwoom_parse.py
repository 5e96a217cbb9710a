"""Lenient row parsing: signed strings, both ka10081/ka10080 field sets, bad rows."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiwoom_fake import load, plain_int
from marketfeed_kiwoom import RowError, bar_row, classify, signed, unsigned

KST = _dt.timezone(_dt.timedelta(hours=9))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+61300", Decimal(61300)),
        ("-500", Decimal(-500)),
        ("--714", Decimal(-714)),  # documented ka10086 double sign
        ("+0", Decimal(0)),
        ("-0", Decimal(0)),
        ("0000000123759593", Decimal(123759593)),  # zero-padded listCount
        ("+26.10", Decimal("26.10")),
        ("", None),
        ("  ", None),
        (None, None),
        (7, Decimal(7)),
    ],
)
def test_signed(raw: object, expected: Decimal | None) -> None:
    assert signed(raw) == expected


def test_unsigned_strips_the_direction_sign() -> None:
    assert unsigned("-78800") == Decimal(78800)
    assert unsigned("+70100") == Decimal(70100)


@pytest.mark.parametrize("raw", ["abc", "+", "--", "1.2.3", "NaN", "+Infinity", True])
def test_signed_rejects_garbage(raw: object) -> None:
    with pytest.raises(RowError):
        signed(raw)


def test_recorded_2025_daily_rows_parse() -> None:
    rows = load("ka10081.rows.recorded.json")  # May 2025 field set (upd_stkpc_tp, upd_rt...)
    assert "pred_pre" not in rows[0] and "upd_rt" in rows[0]
    for row in rows:
        bar = bar_row(row, minute=False)
        assert bar.time == _dt.date.fromisoformat(
            f"{row['dt'][:4]}-{row['dt'][4:6]}-{row['dt'][6:]}"
        )
        assert bar.close == plain_int(row["cur_prc"])
        assert (bar.open, bar.high, bar.low) == tuple(
            plain_int(row[k]) for k in ("open_pric", "high_pric", "low_pric")
        )
        assert bar.volume == int(row["trde_qty"])
        assert bar.turnover == int(row["trde_prica"])
        assert bar.change is None  # the old set has no pred_pre: absent, not a crash
        assert bar.adjustment == {}  # empty markers are absent


def test_documented_daily_rows_parse() -> None:
    rows = load("ka10081.response.json")["stk_dt_pole_chart_qry"]
    assert "pred_pre" in rows[0] and "upd_rt" not in rows[0]
    for row in rows:
        bar = bar_row(row, minute=False)
        assert bar.close == plain_int(row["cur_prc"])
        assert bar.change == int(row["pred_pre"])  # signed, kept


def test_recorded_and_documented_minute_rows_parse() -> None:
    documented = load("ka10080.response.json")["stk_min_pole_chart_qry"]
    recorded = load("ka10080.rows.recorded.json")
    for row in [*documented, *recorded]:
        bar = bar_row(row, minute=True)
        local = _dt.datetime.strptime(row["cntr_tm"], "%Y%m%d%H%M%S").replace(tzinfo=KST)
        assert bar.time == local and bar.time.utcoffset() == _dt.timedelta(0)
        assert bar.close == plain_int(row["cur_prc"])  # "-78800" is a price, not negative
        assert bar.open == plain_int(row["open_pric"])


def test_unknown_fields_ignored_missing_optional_absent() -> None:
    row = dict(load("ka10081.response.json")["stk_dt_pole_chart_qry"][0])
    row["brand_new_field_2027"] = "x"
    del row["pred_pre"], row["trde_prica"], row["trde_tern_rt"]
    bar = bar_row(row, minute=False)
    assert bar.turnover is None and bar.change is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"high_pric": "69000", "low_pric": "69600"}, "high 69000 < low 69600"),
        ({"trde_qty": "-5"}, "negative volume"),
        ({"cur_prc": ""}, "missing close"),
        ({"dt": "2025-09-08"}, "bad date"),
        ({"open_pric": "80000"}, "open 80000 outside"),
    ],
)
def test_impossible_rows_raise_with_reason(change: dict[str, str], reason: str) -> None:
    # constructed from the documented row by changing the named fields
    row = {**load("ka10081.response.json")["stk_dt_pole_chart_qry"][0], **change}
    with pytest.raises(RowError, match=reason):
        bar_row(row, minute=False)


def test_zero_volume_day_without_trades_is_kept() -> None:
    # constructed: a halted day (no trade) with only the reference close
    row = {
        "dt": "20250102",
        "cur_prc": "50000",
        "open_pric": "0",
        "high_pric": "0",
        "low_pric": "0",
        "trde_qty": "0",
    }
    bar = bar_row(row, minute=False)
    assert bar.volume == 0 and bar.close == 50000


_values = st.one_of(
    st.none(), st.text(max_size=12), st.integers(), st.booleans(), st.lists(st.integers())
)


@settings(
    derandomize=True, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "dt",
                "cntr_tm",
                "cur_prc",
                "open_pric",
                "high_pric",
                "low_pric",
                "trde_qty",
                "trde_prica",
                "pred_pre",
                "upd_rt",
                "junk",
            ]
        ),
        _values,
    )
)
def test_never_crashes(row: dict[str, object]) -> None:
    for minute in (False, True):
        try:
            bar_row(row, minute=minute)
        except RowError:
            pass


def test_classify_embedded_codes() -> None:
    assert classify(load("error.auth-token-invalid.recorded.json")) == (
        3,
        "8005",
        "인증에 실패했습니다[8005:Token이 유효하지 않습니다]",
    )
    top, code, _ = classify(load("error.rate-limit.recorded.json"))
    assert (top, code) == (None, "1700")
    assert classify({"return_code": "0000", "return_msg": "ok"})[:2] == (0, "0")
    assert classify({"trnm": "LOGIN", "return_code": 1, "return_msg": "CODE=8005 x"})[1] == "8005"
