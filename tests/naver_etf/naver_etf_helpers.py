"""Helpers for the Naver ETF plugin tests (data in ``data/``, see its README).

A uniquely named module (not ``conftest``) so that ``import`` resolves to it even when
pytest collects every test folder of the repository at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from marketfeed import RateLimiters, VenueContext, get_transport
from marketfeed.testing import HttpRequest, HttpResponse, ReplayServer
from marketfeed_naver_etf import ENDPOINTS, NaverEtfConfig

DATA = Path(__file__).parent / "data"

MOBILE_CODES = ("069500", "360750", "0193T0", "114800", "0162Z0")
"""ETFs with a recorded etfAnalysis document in ``data/``."""


def data_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def data_json(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def mobile_doc(code: str) -> bytes:
    """The recorded etfAnalysis body of ``code``."""
    [path] = DATA.glob(f"etfAnalysis.{code}.*json")
    return path.read_bytes()


def wisereport_page(
    summary: Mapping[str, Any] | None, cu: Mapping[str, Any] | None, *, extra: str = ""
) -> str:
    """CONSTRUCTED WiseReport page: recorded ``summary_data`` / ``CU_data`` objects in
    ``var NAME = {...};`` lines of one ``<script>``, shaped like the shared synthetic page.
    ``None`` leaves a variable out (layout-change tests)."""
    lines = []
    if summary is not None:
        lines.append(f"var summary_data = {json.dumps(summary, ensure_ascii=False)};")
    if cu is not None:
        lines.append(f"var CU_data = {json.dumps(cu, ensure_ascii=False)};")
    if extra:
        lines.append(extra)
    script = "\n".join(lines)
    return (
        '<!DOCTYPE html>\n<html lang="ko">\n<head><meta charset="utf-8"><title>CONSTRUCTED'
        "</title></head>\n<body>\n<div id='cTB13'>구성종목</div>\n"
        f'<script type="text/javascript">\n{script}\n</script>\n</body>\n</html>\n'
    )


def recorded_wisereport_pages() -> dict[str, str]:
    """cmp_cd -> page: the shared synthetic 069500 page, and CONSTRUCTED pages around the
    recorded 148070 and 132030 objects."""
    pages = {"069500": (DATA / "wisereport.ETF.index.069500.synthetic.html").read_text("utf-8")}
    for code in ("148070", "132030"):
        pages[code] = wisereport_page(
            data_json(f"wisereport.summary_data.{code}.recorded.json"),
            data_json(f"wisereport.CU_data.{code}.recorded.json"),
        )
    return pages


class FakeNaver:
    """Installs the three Naver endpoints on replay servers (one per host, or one for all).

    ``wisereport_pages`` and ``mobile_docs`` may be replaced between runs; ``overrides``
    maps ``(host, code)`` to a handler for failure injection.
    """

    def __init__(self, servers: Mapping[str, ReplayServer]) -> None:
        self.servers = dict(servers)
        self.list_body = data_bytes("etfItemList.response.euc-kr.bin")
        self.list_content_type = "text/plain;charset=EUC-KR"
        self.mobile_docs: dict[str, bytes] = {code: mobile_doc(code) for code in MOBILE_CODES}
        self.wisereport_pages = recorded_wisereport_pages()
        self.overrides: dict[tuple[str, str], Callable[[HttpRequest], HttpResponse]] = {}
        servers["list"].add_http_handler("GET", "/api/sise/etfItemList.nhn", self._list)
        for code in MOBILE_CODES:
            servers["mobile"].add_http_handler(
                "GET", f"/api/stock/{code}/etfAnalysis", self._mobile
            )
        for code in ("148070", "132030", "0000X0"):  # codes without a recorded document
            servers["mobile"].add_http_handler(
                "GET", f"/api/stock/{code}/etfAnalysis", self._mobile
            )
        servers["wisereport"].add_http_handler("GET", "/v2/ETF/index.aspx", self._wisereport)

    @property
    def endpoints(self) -> dict[str, str]:
        return {name: self.servers[name].http_url for name in ENDPOINTS}

    def _list(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(body=self.list_body, headers={"content-type": self.list_content_type})

    def _mobile(self, request: HttpRequest) -> HttpResponse:
        code = request.path.split("/")[3]
        if ("mobile", code) in self.overrides:
            return self.overrides[("mobile", code)](request)
        if code not in self.mobile_docs:
            return HttpResponse(404, "<html>404</html>", {"content-type": "text/html"})
        return HttpResponse(
            body=self.mobile_docs[code], headers={"content-type": "application/json"}
        )

    def _wisereport(self, request: HttpRequest) -> HttpResponse:
        code = request.query.get("cmp_cd", [""])[0]
        if ("wisereport", code) in self.overrides:
            return self.overrides[("wisereport", code)](request)
        page = self.wisereport_pages.get(code)
        if page is None:
            return HttpResponse(404, "<html>no such page</html>", {"content-type": "text/html"})
        return HttpResponse(body=page, headers={"content-type": "text/html; charset=utf-8"})

    def requests(self, host: str) -> list[HttpRequest]:
        """Requests the server of ``host`` saw for that host's paths."""
        prefix = {"list": "/api/sise", "mobile": "/api/stock", "wisereport": "/v2/ETF"}[host]
        return [r for r in self.servers[host].requests if r.path.startswith(prefix)]


class RecordingProgress:
    """A progress factory recording what the job reports."""

    def __init__(self) -> None:
        self.bars: list[dict[str, Any]] = []

    def __call__(self, description: str, total: int | None) -> RecordingProgress.Bar:
        bar = {"description": description, "total": total, "advanced": 0, "closed": False}
        self.bars.append(bar)
        return RecordingProgress.Bar(bar)

    class Bar:
        def __init__(self, bar: dict[str, Any]) -> None:
            self.bar = bar

        def advance(self, n: int = 1) -> None:
            self.bar["advanced"] += n

        def close(self) -> None:
            self.bar["closed"] = True


def make_context(
    config: NaverEtfConfig,
    endpoints: Mapping[str, str],
    progress: RecordingProgress | None = None,
) -> VenueContext:
    return VenueContext(
        venue="naver_etf",
        config=config,
        endpoints=endpoints,
        transport=get_transport("httpx-ws"),
        limiters=RateLimiters(),
        http=lambda: httpx.AsyncClient(),
        progress=progress,
    )


def fast_config(tmp_path: Path, **overrides: Any) -> NaverEtfConfig:
    """A config for tests: high rate, tiny backoff, state under ``tmp_path``."""
    values: dict[str, Any] = {
        "rate": 200.0,
        "retry_attempts": 3,
        "retry_wait_initial": 0.01,
        "retry_wait_max": 0.02,
        "timeout": 5.0,
        "state_dir": str(tmp_path / "state"),
        "contact_url": "https://example.test/contact",
    }
    values.update(overrides)
    return NaverEtfConfig(**values)


async def collect(run: Any) -> list[list[Any]]:
    """Every batch an async generator job yields."""
    return [list(batch) async for batch in run]
