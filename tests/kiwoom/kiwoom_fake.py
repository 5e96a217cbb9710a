"""A fake Kiwoom REST server on the replay kit (spec section 8 checklist), plus helpers.

The fake issues tokens from the documented au10001 body (token made unique per issue,
``expires_dt`` set by the test), checks ``authorization`` on data calls (answers the
recorded 8005 body for unknown tokens), routes on the ``api-id`` header (1501 when
missing) and serves each api-id from a queue of scripted responses.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from marketfeed import RateLimiters, VenueContext, get_transport
from marketfeed.testing import HttpRequest, HttpResponse, ReplayServer
from marketfeed_kiwoom import KST, KiwoomConfig
from marketfeed_kiwoom.plugin import ENDPOINTS

DATA = Path(__file__).parent / "data"
APP_KEY = "AxserEsdcredca....."  # placeholders from au10001.request.json
SECRET_KEY = "SEefdcwcforehDre2fdvc...."
WS_PATH = "/api/dostk/websocket"


def load(name: str) -> Any:
    """A fixture file of tests/kiwoom/data, parsed with plain json."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def plain_int(value: str) -> int:
    """Independent reading of a Kiwoom number for expectations: signs stripped."""
    return int(value.lstrip("+-"))


Reply = HttpResponse | Callable[[HttpRequest], HttpResponse]


class FakeKiwoom:
    """Token endpoint, revoke endpoint and data endpoints of a fake Kiwoom."""

    def __init__(self, lifetime: _dt.timedelta = _dt.timedelta(hours=24)) -> None:
        self.lifetime = lifetime
        self.issued: list[str] = []
        self.revoked: list[str] = []
        self.valid: set[str] = set()
        self.scripts: dict[str, deque[Reply]] = {}
        self.defaults: dict[str, Reply] = {}
        self.data_requests: list[HttpRequest] = []
        self.token_requests: list[HttpRequest] = []

    def install(self, server: ReplayServer) -> None:
        server.add_http_handler("POST", "/oauth2/token", self._token)
        server.add_http_handler("POST", "/oauth2/revoke", self._revoke)
        for path in ("/api/dostk/chart", "/api/dostk/stkinfo", "/api/dostk/mrkcond"):
            server.add_http_handler("POST", path, self._data)

    def script(self, api_id: str, *replies: Reply) -> None:
        """Answer the next calls of ``api_id`` with ``replies`` in order."""
        self.scripts.setdefault(api_id, deque()).extend(replies)

    def default(self, api_id: str, reply: Reply) -> None:
        """Answer ``api_id`` with ``reply`` once its script is used up."""
        self.defaults[api_id] = reply

    def invalidate(self) -> None:
        """Forget every issued token (the venue expired them)."""
        self.valid.clear()

    def _token(self, request: HttpRequest) -> HttpResponse:
        self.token_requests.append(request)
        body = request.json()
        if body.get("grant_type") != "client_credentials":
            return HttpResponse.json({"return_code": 8012, "return_msg": "grant_type"})
        if body.get("appkey") != APP_KEY or body.get("secretkey") != SECRET_KEY:
            return HttpResponse.json({"return_code": 8001, "return_msg": "App Key 검증 실패"})
        answer = load("au10001.response.json")
        token = f"{answer['token']}-{len(self.issued) + 1}"
        answer["token"] = token
        expires = _dt.datetime.now(KST) + self.lifetime
        answer["expires_dt"] = f"{expires:%Y%m%d%H%M%S}"
        self.issued.append(token)
        self.valid.add(token)
        return HttpResponse.json(answer)

    def _revoke(self, request: HttpRequest) -> HttpResponse:
        body = request.json()
        self.revoked.append(body.get("token", ""))
        self.valid.discard(body.get("token", ""))
        return HttpResponse.json(load("au10002.response.json"))

    def _data(self, request: HttpRequest) -> HttpResponse:
        self.data_requests.append(request)
        api_id = request.headers.get("api-id")
        if not api_id:
            return HttpResponse.json({"return_code": 1501, "return_msg": "API ID가 Null"})
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid:
            return HttpResponse.json(load("error.auth-token-invalid.recorded.json"))
        queue = self.scripts.get(api_id)
        reply = queue.popleft() if queue else self.defaults.get(api_id)
        if reply is None:
            return HttpResponse.json({"return_code": 1505, "return_msg": f"[1505:{api_id}]"})
        return reply(request) if callable(reply) else reply


def page(body: Any, *, cont: bool = False, next_key: str = "", api_id: str = "") -> HttpResponse:
    """A data response with Kiwoom's paging headers."""
    headers = {"cont-yn": "Y" if cont else "N", "next-key": next_key, "api-id": api_id}
    return HttpResponse(status=200, body=json.dumps(body, ensure_ascii=False), headers=headers)


class Progress:
    """Records ``context.progress`` use."""

    def __init__(self) -> None:
        self.bars: list[list[Any]] = []  # [description, total, advanced, closed]

    def __call__(self, description: str, total: int | None) -> Progress:
        self.bars.append([description, total, 0, False])
        return self

    def advance(self, n: int = 1) -> None:
        self.bars[-1][2] += n

    def close(self) -> None:
        self.bars[-1][3] = True


def make_context(
    server: ReplayServer, progress: Progress | None = None, **options: Any
) -> VenueContext:
    """A venue context pointing every Kiwoom endpoint at ``server`` (fast retries)."""
    settings: dict[str, Any] = {
        "app_key": APP_KEY,
        "secret_key": SECRET_KEY,
        "rate": 1000.0,
        "retry_initial": 0.01,
        "retry_max": 0.05,
        "retry_jitter": 0.0,
        "login_timeout": 5.0,
        "request_timeout": 5.0,
    }
    settings.update(options)
    endpoints = {
        **ENDPOINTS,
        "rest": server.http_url,
        "mock_rest": server.http_url,
        "ws": server.ws_url + WS_PATH,
        "mock_ws": server.ws_url + WS_PATH,
    }
    return VenueContext(
        venue="kiwoom",
        config=KiwoomConfig(**settings),
        endpoints=endpoints,
        transport=get_transport("httpx-ws"),
        limiters=RateLimiters(),
        http=lambda: httpx.AsyncClient(timeout=5.0),
        progress=progress,
    )
