"""The access log's fast path writes the line structlog's chain would write, secrets redacted."""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import structlog

from foundry_common.log_setup import configure_logging, redact_secrets
from foundry_common.scrub import REDACTED
from gateway.observability.logging import AccessLog

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0LXN1YmplY3QifQ.c2lnbmF0dXJlLXBhcnQ"


def structlog_line(fields: dict[str, Any]) -> bytes:
    """What the gateway's structlog chain (logging.configure_logging, JSON) writes for the same call."""
    out = io.BytesIO()
    logger = structlog.wrap_logger(
        structlog.BytesLogger(out),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
    )
    logger.info("request", **fields)
    return out.getvalue()


def access_line(fields: dict[str, Any], level: str = "info") -> bytes:
    out = io.BytesIO()
    AccessLog(level, "json", out).record(dict(fields))
    return out.getvalue()


FIELDS: list[dict[str, Any]] = [
    {"request_id": "0f" * 16, "method": "POST", "path": "/v1/messages", "status": 200, "duration_ms": 12.5},
    {"request_id": "short", "client": "team-a", "error": f"upstream said: Authorization: Bearer {JWT}", "retries": 1},
    {"request_id": JWT, "path": "/v1/chat/completions", "stream": True, "input_tokens": 10, "api_key": "sk-abc"},
]


@pytest.mark.parametrize("fields", FIELDS)
def test_the_line_is_the_one_structlog_writes(fields: dict[str, Any]) -> None:
    ours, theirs = access_line(fields), structlog_line(fields)
    assert ours.endswith(b"\n") and ours.count(b"\n") == 1
    ours_parsed, theirs_parsed = orjson.loads(ours), orjson.loads(theirs)
    assert list(ours_parsed) == list(theirs_parsed), "same keys in the same order"
    stamps = ours_parsed.pop("timestamp"), theirs_parsed.pop("timestamp")
    assert ours_parsed == theirs_parsed
    for stamp in stamps:
        assert ISO_UTC.match(stamp), stamp
    written = datetime.fromisoformat(stamps[0])
    assert abs((datetime.now(UTC) - written).total_seconds()) < 5


def test_secrets_are_redacted() -> None:
    line = access_line(FIELDS[1]) + access_line(FIELDS[2])
    assert JWT.encode() not in line and b"sk-abc" not in line
    assert line.count(REDACTED.encode()) == 3


def test_nothing_below_the_configured_level() -> None:
    assert access_line(FIELDS[0], level="warning") == b""


def test_the_console_format_escapes_what_a_terminal_would_run(capsys: pytest.CaptureFixture[str]) -> None:
    """A percent-encoded ESC in a path reaches the log decoded; the console must not write it raw."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("info", "console")
    try:
        AccessLog("info", "console").record({"path": "/v1/\x1b[2J\x1b[31mred", "status": 401})
        logging.getLogger("somelib").warning("bell \x07 from a library")
        out = capsys.readouterr().out
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level
    assert "\x1b" not in out and "\x07" not in out
    assert "/v1/\\x1b[2J\\x1b[31mred" in out and "bell \\x07 from a library" in out
