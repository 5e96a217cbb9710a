"""The capture format: reading real captures, writing and appending, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from marketfeed.testing import (
    CaptureFrame,
    CaptureWriter,
    HttpRecord,
    read_capture,
    read_http_capture,
    write_capture,
)

DATA = Path(__file__).parent / "data"
OKX_WS = DATA / "okx.20220513.ws.1.jsonl"
UPBIT_WS = DATA / "upbit.20210405.ws.1.head120.jsonl"
OKX_BOOKS = DATA / "okx.books.cryptomsgparser.http.jsonl"
UPBIT_DOCS = DATA / "upbit.docs-20250730.http.jsonl"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("path", [OKX_WS, UPBIT_WS], ids=["okx", "upbit"])
def test_read_capture_matches_plain_json(path: Path) -> None:
    rows = _json_lines(path)
    frames = read_capture(path)
    assert len(frames) == len(rows)
    for frame, row in zip(frames, rows, strict=True):
        assert frame.t == row["t"]
        assert frame.dir == row["dir"]
        assert frame.frame == row["frame"]
        assert frame.binary == bool(row.get("binary", False))


def test_okx_capture_directions_and_text_payloads() -> None:
    rows = _json_lines(OKX_WS)
    frames = read_capture(OKX_WS)
    n_out = sum(1 for r in rows if r["dir"] == "out")
    assert sum(1 for f in frames if f.dir == "out") == n_out == 3
    assert all(isinstance(f.payload, str) for f in frames)
    assert frames[0].payload == rows[0]["frame"]


def test_upbit_binary_payloads_are_utf8_bytes() -> None:
    rows = _json_lines(UPBIT_WS)
    frames = read_capture(UPBIT_WS)
    ins = [f for f in frames if f.dir == "in"]
    assert len(ins) == sum(1 for r in rows if r["dir"] == "in" and r.get("binary") is True)
    for frame in ins:
        assert isinstance(frame.payload, bytes)
        assert frame.payload == frame.frame.encode("utf-8")
        assert json.loads(frame.payload)["ty"] in ("orderbook", "trade")
    assert frames[0].dir == "out" and frames[0].binary is False


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    frames = read_capture(UPBIT_WS)
    out = tmp_path / "copy.ws.jsonl"
    assert write_capture(out, frames) == len(frames)
    assert read_capture(out) == frames
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    # "binary" is written only when true; t keeps its exact float value
    assert "binary" not in lines[0] and lines[1]["binary"] is True
    original = _json_lines(UPBIT_WS)
    assert [repr(line["t"]) for line in lines] == [repr(row["t"]) for row in original]
    assert [line["frame"] for line in lines] == [row["frame"] for row in original]


@pytest.mark.parametrize("path", [OKX_BOOKS, UPBIT_DOCS], ids=["okx-books", "upbit-docs"])
def test_read_http_capture_matches_plain_json(path: Path) -> None:
    rows = _json_lines(path)
    records = read_http_capture(path)
    assert len(records) == len(rows)
    for record, row in zip(records, rows, strict=True):
        assert (record.t, record.method, record.url, record.status, record.body) == (
            row["t"],
            row["method"],
            row["url"],
            row["status"],
            row["body"],
        )
        assert record.headers is None and record.request_body is None


def test_http_records_with_headers_and_request_body_round_trip(tmp_path: Path) -> None:
    base = read_http_capture(UPBIT_DOCS)
    ours = HttpRecord(
        t=base[0].t,
        method="POST",
        url="https://api.kiwoom.com/api/dostk/chart",
        status=200,
        body=base[0].body,
        headers={"content-type": "application/json;charset=UTF-8", "cont-yn": "N"},
        request_body='{"stk_cd":"005930","base_dt":"20250730","upd_stkpc_tp":"1"}',
    )
    out = tmp_path / "mixed.http.jsonl"
    write_capture(out, [*base, ours])
    assert read_http_capture(out) == [*base, ours]
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert "headers" not in lines[0] and "request_body" not in lines[0]
    assert lines[0]["status"] == 200
    assert lines[-1]["headers"]["cont-yn"] == "N"


def test_capture_writer_appends_across_sessions(tmp_path: Path) -> None:
    frames = read_capture(OKX_WS)
    out = tmp_path / "rec.ws.jsonl"
    with CaptureWriter(out, buffer_size=4096) as writer:
        for frame in frames[:100]:
            writer.write(frame)
        assert writer.count == 100
    with CaptureWriter(out) as writer:  # a second run appends
        for frame in frames[100:]:
            writer.write(frame)
    assert read_capture(out) == frames


@pytest.mark.anyio
async def test_capture_writer_async(tmp_path: Path) -> None:
    frames = read_capture(UPBIT_WS)
    out = tmp_path / "rec.ws.jsonl"
    async with CaptureWriter(out, buffer_size=8192) as writer:
        for frame in frames:
            await writer.awrite(frame)
        # a full buffer was written in a worker thread while recording
        assert out.stat().st_size > 0
    assert writer.closed
    assert read_capture(out) == frames
    with pytest.raises(ValueError, match="closed"):
        writer.write(frames[0])


def test_write_frame_keeps_message_kind(tmp_path: Path) -> None:
    upbit = read_capture(UPBIT_WS)[1]
    okx_out = read_capture(OKX_WS)[0]
    out = tmp_path / "rec.ws.jsonl"
    with CaptureWriter(out) as writer:
        writer.write_frame(okx_out.frame, "out", t=okx_out.t)
        writer.write_frame(upbit.frame.encode("utf-8"), "in", t=upbit.t)
    assert read_capture(out) == [okx_out, upbit]


def test_from_payload_rejects_non_utf8_binary() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        CaptureFrame.from_payload(b"\xff\xfe\x00", "in", t=1.0)
    frame = CaptureFrame.from_payload("ping", "out")
    assert frame.dir == "out" and frame.binary is False and frame.t > 1.6e9


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    lines = OKX_WS.read_text("utf-8").splitlines()[:5]
    lines.insert(3, '{"t": 1.0, "dir": "sideways", "frame": "x"}')
    bad = tmp_path / "bad.ws.jsonl"
    bad.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(ValueError, match=r"bad\.ws\.jsonl:4:"):
        read_capture(bad)
    bad.write_text(lines[0] + "\n{not json\n", "utf-8")
    with pytest.raises(ValueError, match=r"bad\.ws\.jsonl:2:"):
        read_capture(bad)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    text = OKX_WS.read_text("utf-8").splitlines()[:4]
    path = tmp_path / "gaps.ws.jsonl"
    path.write_text(text[0] + "\n\n" + "\n".join(text[1:]) + "\n\n", "utf-8")
    assert read_capture(path) == read_capture(OKX_WS)[:4]


def test_empty_file_reads_as_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert read_capture(path) == []
    assert read_http_capture(path) == []


@pytest.mark.anyio
async def test_capture_writer_aflush_makes_lines_visible(tmp_path: Path) -> None:
    frames = read_capture(OKX_WS)[:3]
    out = tmp_path / "live.ws.jsonl"
    writer = CaptureWriter(out)
    try:
        for frame in frames:
            writer.write(frame)
        assert out.read_bytes() == b""  # still buffered
        await writer.aflush()
        assert read_capture(out) == frames
    finally:
        await writer.aclose()
