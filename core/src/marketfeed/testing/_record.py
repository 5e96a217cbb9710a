"""Recording live traffic in the capture format (``marketfeed record``).

:class:`RecordingTransport` wraps any :class:`marketfeed.Transport`: every connection it
opens writes its frames, both directions, to ``<folder>/<host><path>.<n>.jsonl`` in the
capture format that :class:`ReplayServer` serves. Frames the client sends are redacted
before they are written: known secrets become ``***`` and so do the values of JSON fields
named like a credential (``token``, ``sign``, ``passphrase``, ``apiKey``, ...), so a
recording never holds an access token (e.g. Kiwoom's LOGIN frame).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._contract import Connection, Frame
from .._transport import Transport
from ._capture import CaptureWriter

__all__ = ["RecordingTransport", "redact_frame"]

_CREDENTIAL_FIELD = re.compile(
    r'("(?:[A-Za-z_]*(?:token|secret|sign|passphrase|password|api_?key|apikey|appkey)'
    r'[A-Za-z_]*)"\s*:\s*)"[^"]*"',
    re.IGNORECASE,
)


def redact_frame(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every credential-named JSON string value
    replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _CREDENTIAL_FIELD.sub(r'\1"***"', text)


class _RecordingConnection:
    def __init__(self, inner: Connection, writer: CaptureWriter, secrets: tuple[str, ...]) -> None:
        self._inner = inner
        self._writer = writer
        self._secrets = secrets

    async def send(self, frame: Frame) -> None:
        await self._inner.send(frame)
        text = frame.decode("utf-8", "backslashreplace") if isinstance(frame, bytes) else frame
        redacted = redact_frame(text, self._secrets)
        payload: Frame = redacted.encode() if isinstance(frame, bytes) else redacted
        self._writer.write_frame(payload, "out", time.time())

    async def receive(self) -> Frame:
        frame = await self._inner.receive()
        self._writer.write_frame(frame, "in", time.time())
        return frame

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        await self._inner.aclose(code, reason)

    def __getattr__(self, name: str) -> Any:  # ping() and transport extras
        return getattr(self._inner, name)


class RecordingTransport:
    """A transport that records every connection of ``inner`` into ``folder``.

    Args:
        inner: The transport doing the real work.
        folder: Where capture files go (created).
        secrets: Values never to be written (e.g. ``marketfeed.secrets_of(config)``).

    Attributes:
        files: Capture files written so far, in connection order.
    """

    def __init__(self, inner: Transport, folder: str | Path, secrets: Iterable[str] = ()) -> None:
        self.name = f"recording({inner.name})"
        self._inner = inner
        self._folder = Path(folder)
        self._secrets = tuple(s for s in secrets if s)
        self.files: list[Path] = []

    def _path_for(self, url: str) -> Path:
        parts = urlsplit(url)
        stem = (parts.hostname or "local") + parts.path.replace("/", "_")
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).strip("_")
        n = sum(1 for f in self.files if f.name.startswith(stem + "."))
        return self._folder / f"{stem}.{n + 1}.jsonl"

    @asynccontextmanager
    async def connect(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[Connection]:
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._path_for(url)
        self.files.append(path)
        async with CaptureWriter(path) as writer, self._inner.connect(url, headers=headers) as conn:
            yield _RecordingConnection(conn, writer, self._secrets)
