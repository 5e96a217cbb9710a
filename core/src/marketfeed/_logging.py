"""Structured logging that never prints secrets."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._config import Config

__all__ = ["RedactingFilter", "configure_logging", "secrets_of"]

_SECRET_KEY = re.compile(r"(key|secret|token|passphrase|password|credential)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@/\s]+)(@)")


def secrets_of(config: Config) -> list[str]:
    """Values in ``config`` that must never be printed: venue options whose key names a
    secret (``*key*``, ``*secret*``, ``*token*``, ``*passphrase*``, ``*password*``) and
    passwords in sink URLs."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value and _SECRET_KEY.search(key):
            found.append(value)

    for venue in config.venues.values():
        walk(venue.options)
    for sink in config.sinks:
        m = _URL_PASSWORD.search(sink.url)
        if m:
            found.append(m.group(2))
        walk(sink.options)
    return [s for s in found if len(s) >= 4]


class RedactingFilter(logging.Filter):
    """Replaces every known secret (and any URL password) in log records by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def add(self, secret: str) -> None:
        """Redact ``secret`` from now on (e.g. a token obtained at run time)."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with secrets replaced."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _URL_PASSWORD.sub(r"\1***\3", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = self.redact(message)
        record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", *, secrets: Iterable[str] = (), json_lines: bool = False
) -> RedactingFilter:
    """Log to stderr as ``time level logger: message`` (or JSON Lines), with secrets
    redacted. Returns the filter so callers can add secrets learnt at run time."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler()
    handler.addFilter(redactor)
    handler.setFormatter(
        _JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_marketfeed", False):
            root.removeHandler(old)
    handler._marketfeed = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return redactor
