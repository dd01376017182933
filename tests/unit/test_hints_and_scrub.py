"""Pure pieces of the hardening, table-driven: retry hints, secret scrubbing, usage counts, echoes."""

from __future__ import annotations

from typing import Any

import pytest

from foundry_common import scrub
from gateway.errors import GatewayError, echo, known_error_type, upstream_error_message
from gateway.translate.usage import merge_usage
from gateway.upstream.retry import retry_after_seconds

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z

HINTS = [
    ("seconds", {"retry-after": "3"}, 3.0),
    ("milliseconds win", {"retry-after-ms": "1500", "retry-after": "3"}, 1.5),
    ("a long hint is clamped", {"retry-after": "86400"}, 60.0),
    ("an HTTP date", {"retry-after": "Fri, 15 Jan 2027 08:00:10 GMT"}, 10.0),
    ("a date in year 9999 is clamped", {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, 60.0),
    ("inf is ignored", {"retry-after": "inf"}, None),
    ("nan is ignored", {"retry-after": "nan"}, None),
    ("1e308 is clamped", {"retry-after": "1e308"}, 60.0),
    ("1e309 is inf, ignored", {"retry-after": "1e309"}, None),
    ("negative is ignored", {"retry-after": "-5"}, None),
    ("garbage is ignored", {"retry-after": "soon"}, None),
    ("a date in the past is ignored", {"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, None),
    ("bad ms falls back to seconds", {"retry-after-ms": "inf", "retry-after": "2"}, 2.0),
    ("ms inf alone is ignored", {"retry-after-ms": "inf"}, None),
    ("none at all", {}, None),
]


@pytest.mark.parametrize(("name", "headers", "expected"), HINTS, ids=[h[0] for h in HINTS])
def test_retry_after_seconds(name: str, headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, cap=60.0, now=NOW) == (pytest.approx(expected) if expected else expected)


def test_scrub_removes_every_registered_secret_and_only_those() -> None:
    scrub.forget_all()
    try:
        scrub.remember("short")  # too short to be a key: scrubbing it would scrub words
        scrub.remember("sk-live-key-0123456789")
        scrub.remember("eyJhbGciOiJSUzI1NiJ9.payload.signature")
        text = "you sent sk-live-key-0123456789 and eyJhbGciOiJSUzI1NiJ9.payload.signature; short stays"
        assert scrub.scrub(text) == "you sent [redacted] and [redacted]; short stays"
        assert scrub.scrub_bytes(text.encode()) == scrub.scrub(text).encode()
    finally:
        scrub.forget_all()


def test_scrub_keeps_a_bounded_number_of_values() -> None:
    scrub.forget_all()
    try:
        for i in range(100):
            scrub.remember(f"token-number-{i:04d}")
        assert scrub.scrub("token-number-0000") == "token-number-0000", "the oldest are forgotten"
        assert scrub.scrub("token-number-0099") == "[redacted]"
    finally:
        scrub.forget_all()


USAGE = [
    ("counts", {"input_tokens": 3, "output_tokens": 4}, {"input_tokens": 3, "output_tokens": 4}),
    ("a list", [1, 2], {}),
    ("a string", "lots", {}),
    ("wrong types dropped", {"input_tokens": "3", "output_tokens": 2.5, "cache_read_input_tokens": True}, {}),
    ("negative dropped", {"output_tokens": -1}, {}),
    ("null dropped", {"output_tokens": None}, {}),
    ("nested objects dropped", {"server_tool_use": {"web_search_requests": 1}, "output_tokens": 1},
     {"output_tokens": 1}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "usage", "expected"), USAGE, ids=[u[0] for u in USAGE])
def test_merge_usage_keeps_only_counts(name: str, usage: Any, expected: dict[str, int]) -> None:
    into: dict[str, Any] = {}
    merge_usage(into, usage)
    assert into == expected


def test_echoes_and_messages_are_bounded() -> None:
    assert echo("claude") == "'claude'"
    long = echo("m" * 10_000)
    assert len(long) < 300 and "10000 characters in all" in long
    error = GatewayError(400, "x" * 100_000, param="p" * 1000)
    assert len(error.message) < 4200 and error.param is not None and len(error.param) == 200


ERRORS = [
    ("Anthropic shape", {"error": {"type": "overloaded_error", "message": "Busy"}}, ("overloaded_error", "Busy")),
    ("an unknown type is not passed on", {"error": {"type": "x_custom", "message": "m"}}, (None, "m")),
    ("Azure shape", {"error": {"code": "DeploymentNotFound", "message": "gone"}}, (None, "DeploymentNotFound: gone")),
    ("a string", {"error": "plain"}, (None, "plain")),
    ("nothing readable", [], (None, "the upstream answered with an error and no readable message")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "expected"), ERRORS, ids=[e[0] for e in ERRORS])
def test_upstream_error_message(name: str, body: Any, expected: tuple[str | None, str]) -> None:
    assert upstream_error_message(body) == expected


def test_known_error_types() -> None:
    assert known_error_type("rate_limit_error") == "rate_limit_error"
    assert known_error_type("evil") is None and known_error_type(7) is None
