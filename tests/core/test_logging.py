"""Secrets never reach log output."""

from __future__ import annotations

import io
import logging

from marketfeed import RedactingFilter, configure_logging, parse_config, secrets_of


def test_secrets_of_config_and_redaction() -> None:
    cfg = parse_config(
        {
            "venues": {
                "kiwoom": {"app_key": "AK-1234567890", "secret_key": "SK-abcdefghij", "rate": 5},
                "okx": {"api_key": "okx-key-1", "passphrase": "pass-phrase-9", "books": "x"},
            },
            "sinks": [{"url": "postgresql://user:db-pass-77@127.0.0.1/db"}],
        }
    )
    secrets = set(secrets_of(cfg))
    assert secrets == {"AK-1234567890", "SK-abcdefghij", "okx-key-1", "pass-phrase-9", "db-pass-77"}
    f = RedactingFilter(secrets)
    text = f.redact("token for AK-1234567890/SK-abcdefghij at postgresql://user:db-pass-77@h/db")
    assert "AK-" not in text and "SK-" not in text and "db-pass-77" not in text
    assert text.count("***") == 3


def test_configured_handler_redacts_messages_args_and_tracebacks() -> None:
    redactor = configure_logging("DEBUG", secrets=["s3cr3t-value"])
    redactor.add("runtime-token-xyz")
    stream = io.StringIO()
    root = logging.getLogger()
    handler = next(h for h in root.handlers if getattr(h, "_marketfeed", False))
    handler.stream = stream  # type: ignore[attr-defined]
    log = logging.getLogger("marketfeed.test")
    log.info("login with %s", "s3cr3t-value")
    try:
        raise RuntimeError("bad token runtime-token-xyz")
    except RuntimeError:
        log.exception("failed")
    out = stream.getvalue()
    assert "login with ***" in out
    assert "s3cr3t-value" not in out and "runtime-token-xyz" not in out
    assert "RuntimeError: bad token ***" in out
    root.removeHandler(handler)
