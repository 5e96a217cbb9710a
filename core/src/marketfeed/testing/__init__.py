"""marketfeed's testing kit: capture format, replay server, fault injection, in-memory sink
and the conformance suite for plugin authors (architecture section 8).

* :func:`read_capture`, :func:`read_http_capture`, :func:`write_capture`,
  :class:`CaptureWriter`: the JSON Lines capture format (:class:`CaptureFrame`,
  :class:`HttpRecord`).
* :class:`ReplayServer`: a loopback fake venue (WebSocket replays with :class:`Faults`,
  recorded HTTP responses, scripted handlers), one port, routed by URL path.
* :class:`MemorySink`: the in-process ``memory`` sink plugin.

pytest fixtures (plugin ``marketfeed``, loaded automatically): ``replay_server`` and
``memory_sink``.
"""

from ._capture import (
    CaptureFrame,
    CaptureWriter,
    HttpRecord,
    read_capture,
    read_http_capture,
    write_capture,
)
from ._memory import MemorySink
from ._record import RecordingTransport, redact_frame
from ._replay import (
    Faults,
    HttpRequest,
    HttpResponse,
    ReplayServer,
    ReplaySession,
    ReplayWebSocket,
)

__all__ = [
    "CaptureFrame",
    "CaptureWriter",
    "Faults",
    "HttpRecord",
    "HttpRequest",
    "HttpResponse",
    "MemorySink",
    "ReplayServer",
    "ReplaySession",
    "ReplayWebSocket",
    "RecordingTransport",
    "read_capture",
    "read_http_capture",
    "redact_frame",
    "write_capture",
]
