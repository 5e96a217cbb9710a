"""The capture format: recorded WebSocket frames and HTTP responses as JSON Lines.

WebSocket capture, one frame per line, in recorded order::

    {"t": 1652459225.5073643, "dir": "in", "frame": "{\\"arg\\":...}"}
    {"t": 1617646620.849474, "dir": "in", "frame": "{\\"ty\\":...}", "binary": true}

HTTP capture, one response per line::

    {"t": 1652458996.256593, "method": "GET", "url": "https://www.okx.com/api/v5/...",
     "status": null, "body": "{\\"code\\":\\"0\\",...}"}

Our own recordings (``marketfeed record``) may add ``"headers"`` (response headers) and
``"request_body"`` (the request's body, e.g. a Kiwoom POST JSON) to HTTP lines.
Source: the shared ``fixtures/captures/README.md``, section "File format".
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

import anyio
import msgspec

from .._contract import Frame

__all__ = [
    "CaptureFrame",
    "CaptureWriter",
    "HttpRecord",
    "read_capture",
    "read_http_capture",
    "write_capture",
]

PathLike = str | os.PathLike[str]
_T = TypeVar("_T")


class CaptureFrame(msgspec.Struct, frozen=True, omit_defaults=True):
    """One recorded WebSocket message.

    Attributes:
        t: Client clock in float seconds since the Unix epoch (receive time for ``"in"``,
            send time for ``"out"``); never decreases within a capture.
        dir: ``"in"`` (venue to client) or ``"out"`` (client to venue).
        frame: The message text exactly as sent; for a binary message, its bytes decoded
            as UTF-8.
        binary: ``True`` when the message was a binary WebSocket message (every Upbit
            frame); its payload is ``frame.encode("utf-8")``. Written only when true.
    """

    t: float
    dir: Literal["in", "out"]
    frame: str
    binary: bool = False

    @property
    def payload(self) -> Frame:
        """The message as a transport sends it: ``bytes`` when binary, else ``str``."""
        return self.frame.encode("utf-8") if self.binary else self.frame

    @classmethod
    def from_payload(
        cls, payload: Frame, dir: Literal["in", "out"], t: float | None = None
    ) -> CaptureFrame:
        """Build a frame from a received or sent message.

        Args:
            payload: ``str`` (text message) or ``bytes`` (binary message, must be UTF-8).
            dir: ``"in"`` or ``"out"``.
            t: Epoch seconds; ``None`` means now (``time.time()``).

        Raises:
            ValueError: a binary payload is not valid UTF-8 (the format cannot keep it).
        """
        when = time.time() if t is None else t
        if isinstance(payload, bytes | bytearray | memoryview):
            try:
                text = bytes(payload).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"binary frame is not UTF-8 and cannot be stored in a capture: {exc}"
                ) from None
            return cls(t=when, dir=dir, frame=text, binary=True)
        return cls(t=when, dir=dir, frame=payload)


class HttpRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """One recorded HTTP exchange (the response, plus the request line).

    Attributes:
        t: Client clock (epoch seconds) when the response body had been read.
        method: HTTP method, upper case (``"GET"``, ``"POST"``).
        url: Full request URL including the query string.
        status: HTTP status code, ``None`` when the recorder did not store it (the
            replay server then answers 200).
        body: Response body text.
        headers: Response headers, when recorded (our own recordings).
        request_body: Request body text (e.g. a POST JSON), when recorded.
    """

    t: float
    method: str
    url: str
    status: int | None
    body: str
    headers: dict[str, str] | None = None
    request_body: str | None = None


_frame_decoder = msgspec.json.Decoder(CaptureFrame)
_frames_decoder = msgspec.json.Decoder(list[CaptureFrame])
_http_decoder = msgspec.json.Decoder(HttpRecord)
_https_decoder = msgspec.json.Decoder(list[HttpRecord])
_encoder = msgspec.json.Encoder()


def _decode_lines(
    path: PathLike, one: msgspec.json.Decoder[_T], many: msgspec.json.Decoder[list[_T]]
) -> list[_T]:
    data = Path(path).read_bytes()
    lines = [line for line in data.splitlines() if line.strip()]
    try:
        # One decoder call over the whole file: much faster than a call per line.
        return many.decode(b"[" + b",".join(lines) + b"]")
    except msgspec.DecodeError:
        pass
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            one.decode(line)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{os.fspath(path)}:{lineno}: not a capture line: {exc}") from None
    raise ValueError(f"{os.fspath(path)}: not a capture file")  # pragma: no cover


def read_capture(path: PathLike) -> list[CaptureFrame]:
    """Read a WebSocket capture (``*.ws.*.jsonl``), all lines in file order.

    Blank lines are skipped. Filter with ``[f for f in frames if f.dir == "in"]``.

    Raises:
        OSError: the file cannot be read.
        ValueError: a line is not a capture frame (message names ``path:line``).
    """
    return _decode_lines(path, _frame_decoder, _frames_decoder)


def read_http_capture(path: PathLike) -> list[HttpRecord]:
    """Read an HTTP capture (``*.http.jsonl``), all records in file order.

    Raises:
        OSError: the file cannot be read.
        ValueError: a line is not an HTTP record (message names ``path:line``).
    """
    return _decode_lines(path, _http_decoder, _https_decoder)


def write_capture(path: PathLike, records: Iterable[CaptureFrame | HttpRecord]) -> int:
    """Write ``records`` to ``path`` as JSON Lines, replacing the file.

    Returns:
        The number of lines written.

    Raises:
        OSError: the file cannot be written.
    """
    count = 0
    buf = bytearray()
    for record in records:
        _encoder.encode_into(record, buf, len(buf))
        buf += b"\n"
        count += 1
    Path(path).write_bytes(buf)
    return count


class CaptureWriter:
    """Appends frames or HTTP records to a capture file (the writer behind
    ``marketfeed record``).

    Records are encoded at once into an in-memory buffer; the buffer is appended to the
    file when it holds ``buffer_size`` bytes, on :meth:`flush`/:meth:`aflush` and on
    close. The async methods do the file I/O in a worker thread, so a receive loop is not
    blocked by the disk. A line is written whole or not at all.

    Use as ``with CaptureWriter(path) as w:`` or ``async with CaptureWriter(path) as w:``.

    Args:
        path: File to append to (created if missing).
        buffer_size: Bytes buffered before a write to the file.

    Raises:
        OSError: the file cannot be opened or written.
    """

    def __init__(self, path: PathLike, *, buffer_size: int = 64 * 1024) -> None:
        self.path = Path(path)
        self.buffer_size = buffer_size
        self.count = 0
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._file = self.path.open("ab")

    @property
    def closed(self) -> bool:
        """Whether the writer was closed."""
        return self._file.closed

    def write(self, record: CaptureFrame | HttpRecord) -> None:
        """Buffer one record; writes to the file (blocking) when the buffer is full.

        Raises:
            ValueError: the writer is closed.
        """
        if self._add(record):
            self.flush()

    async def awrite(self, record: CaptureFrame | HttpRecord) -> None:
        """Buffer one record; a full buffer is written in a worker thread."""
        if self._add(record):
            await self.aflush()

    def write_frame(
        self, payload: Frame, dir: Literal["in", "out"], t: float | None = None
    ) -> None:
        """Buffer one WebSocket message (``bytes`` are stored as a binary frame).

        Raises:
            ValueError: a binary payload is not UTF-8, or the writer is closed.
        """
        self.write(CaptureFrame.from_payload(payload, dir, t))

    def _add(self, record: CaptureFrame | HttpRecord) -> bool:
        if self._file.closed:
            raise ValueError(f"capture writer for {self.path} is closed")
        line = _encoder.encode(record)
        with self._lock:
            self._buf += line
            self._buf += b"\n"
            self.count += 1
            return len(self._buf) >= self.buffer_size

    def _flush_sync(self) -> None:
        with self._lock:
            if self._buf and not self._file.closed:
                self._file.write(self._buf)
                self._file.flush()
                self._buf.clear()

    def flush(self) -> None:
        """Append everything buffered to the file (blocking)."""
        self._flush_sync()

    async def aflush(self) -> None:
        """Append everything buffered to the file, in a worker thread."""
        await anyio.to_thread.run_sync(self._flush_sync)

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if not self._file.closed:
            self._flush_sync()
            self._file.close()

    async def aclose(self) -> None:
        """Flush (in a worker thread) and close the file (idempotent)."""
        if not self._file.closed:
            with anyio.CancelScope(shield=True):
                await self.aflush()
            self._file.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> CaptureWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
