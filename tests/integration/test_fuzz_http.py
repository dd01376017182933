"""Arbitrary JSON and bytes at both dialects of the running gateway: a 2xx or a clear 4xx, never a 500.

Bodies go out with the stdlib encoder, which writes integers of any size; the gateway's
codec refuses those beyond 64 bits with a 400, which these tests also cover.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Stack
from tests.unit.test_fuzz import BODY, JSON

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PATHS = st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"])


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        message = body["error"]["message"]
        assert isinstance(message, str) and message and "Traceback" not in message


@FUZZ
@given(body=BODY, stream=st.booleans())
def test_openai_bodies(stack: Stack, body: dict[str, Any], stream: bool) -> None:
    body = {**body, "model": "claude-sonnet-4-5", "stream": stream}
    with httpx.Client(timeout=10) as client:
        check(client.post(stack.base + "/v1/chat/completions", content=json.dumps(body)))


@FUZZ
@given(path=PATHS, body=st.dictionaries(st.sampled_from(["model", "messages", "max_tokens", "system", "tools",
                                                        "stream", "thinking", "x"]), JSON, max_size=5))  # fmt: skip
def test_anthropic_bodies(stack: Stack, path: str, body: dict[str, Any]) -> None:
    with httpx.Client(timeout=10) as client:
        check(client.post(stack.base + path, content=json.dumps({"model": "claude-sonnet-4-5", **body})))


@FUZZ
@given(path=PATHS, raw=st.binary(max_size=300))
def test_arbitrary_bytes(stack: Stack, path: str, raw: bytes) -> None:
    with httpx.Client(timeout=10) as client:
        check(client.post(stack.base + path, content=raw))
