"""One way to write a moment for people and headers: RFC 3339 in UTC, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_text(seconds: float) -> str:
    """Unix seconds as 2026-12-06T21:34:26Z."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
