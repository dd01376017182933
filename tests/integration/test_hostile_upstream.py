"""A broken or hostile upstream: redirects, odd statuses, bodies that are not answers, unbounded
bodies and events, echoed secrets, its own error types. None of it reaches a client as a success,
breaks a started stream, or leaks a key: each is a 502 (or an error event) in the caller's dialect.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devtools.harness import emulator_control, rss_mb, start_foundry_emulator, start_gateway
from gateway.app import create_app
from gateway.config import parse_config
from gateway.translate.chat_stream import ChatStream
from gateway.translate.messages import NativeStream
from tests.integration.conftest import API_KEY, BEARER, Stack, error_of

MODEL = "claude-sonnet-4-5"
HELLO: list[Any] = [{"role": "user", "content": "Hello hostile"}]
DIALECTS = ["openai", "anthropic"]


def post(stack: Stack, dialect: str, *, model: str = MODEL, stream: bool = False, path: str = "") -> httpx.Response:
    if dialect == "openai":
        url, body = "/v1/chat/completions", {"model": model, "messages": HELLO, "stream": stream}
    else:
        url, body = path or "/v1/messages", {"model": model, "max_tokens": 50, "messages": HELLO, "stream": stream}
    return httpx.post(stack.base + url, json=body, timeout=20)


def unusable(stack: Stack, reason: str) -> float:
    return stack.metric(f'foundry_gateway_upstream_unusable_answers_total{{reason="{reason}",upstream="foundry"}}')


def events(raw: str) -> list[str]:
    return [block for block in raw.strip().split("\n\n") if block]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed(stack: Stack, dialect: str, status: int) -> None:
    before = unusable(stack, "redirect")
    stack.fault(redirect=status)
    response = post(stack, dialect)
    assert response.status_code == 502
    assert f"redirect (HTTP {status})" in error_of(response, dialect)["message"]
    assert stack.canary_hits() == [], "the redirect target was never asked, so it saw neither key nor prompt"
    assert unusable(stack, "redirect") == before + 1
    assert '"event":"upstream_answer_refused"' in stack.gateway.log()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("status", [201, 204, 206])
def test_a_success_other_than_200_is_a_502_not_the_clients_status(stack: Stack, dialect: str, status: int) -> None:
    message = {"id": "m", "type": "message", "role": "assistant", "content": [], "stop_reason": "end_turn"}
    stack.fault(bare_status=status, body=orjson.dumps(message).decode())
    response = post(stack, dialect)
    assert response.status_code == 502
    assert f"answered HTTP {status}" in error_of(response, dialect)["message"]


NOT_ANSWERS = ["<html><body>Gateway Timeout</body></html>", "[]", "{}", '{"type": "message"}', '"text"']


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("body", NOT_ANSWERS)
def test_a_200_whose_body_is_not_an_answer_is_a_502(stack: Stack, dialect: str, body: str) -> None:
    before = unusable(stack, "not_a_message")
    stack.fault(body=body)
    response = post(stack, dialect)
    assert response.status_code == 502
    assert "not a Messages API message" in error_of(response, dialect)["message"]
    assert unusable(stack, "not_a_message") == before + 1


def test_a_token_count_that_is_not_one_is_a_502(stack: Stack) -> None:
    stack.fault(body='{"tokens": "many"}')
    response = post(stack, "anthropic", path="/v1/messages/count_tokens")
    assert response.status_code == 502 and "not a token count" in error_of(response, "anthropic")["message"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_oversized_answer_is_refused_not_buffered(stack: Stack, dialect: str) -> None:
    before = unusable(stack, "too_large")
    stack.fault(huge_body=8 * 1024 * 1024)  # the stack reads at most 1 MiB
    response = post(stack, dialect)
    assert response.status_code == 502
    assert "over the 1048576 bytes" in error_of(response, dialect)["message"]
    assert unusable(stack, "too_large") == before + 1


def test_a_huge_error_body_is_read_only_as_far_as_its_message(stack: Stack) -> None:
    pid = stack.gateway.popen.pid
    before = rss_mb(pid)
    stack.fault(huge_error=256 * 1024 * 1024)
    started = time.monotonic()
    response = post(stack, "anthropic")
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    message = error_of(response, "anthropic")["message"]
    assert message.startswith("upstream answered HTTP 500: xxxx") and len(message) < 300
    assert elapsed < 5, "256 MB were not read"
    assert rss_mb(pid) - before < 20


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_event_that_never_ends_is_bounded(stack: Stack, dialect: str) -> None:
    endless = "event: content_block_delta\ndata: " + "x" * 200_000  # no blank line, ever
    stack.fault(raw_after=2, raw=endless)
    response = post(stack, dialect, stream=True)
    assert response.status_code == 200
    last = events(response.text)[-1]
    if dialect == "anthropic":
        assert last.startswith("event: error\ndata: ")
    else:
        assert last.startswith('data: {"error"')
    assert "over 65536 bytes" in last


def hostile_stream(message_start: Any, usage: Any) -> str:
    """A whole stream whose message_start and message_delta carry shapes the gateway cannot use."""
    blocks = [
        ("message_start", {"type": "message_start", "message": message_start}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": "not a block"}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "hi there"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return "".join(f"event: {name}\ndata: {orjson.dumps(data).decode()}\n\n" for name, data in blocks)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("message_start", "usage"),
    [
        ("a string, not a message", {"output_tokens": 3}),
        ({"id": "msg_1", "usage": [1, 2]}, [4, 5]),
        ({"id": ["not", "a", "string"], "usage": {"input_tokens": "many", "output_tokens": -3}}, "lots"),
    ],
    ids=["message-is-a-string", "usage-is-a-list", "ids-and-counts-of-the-wrong-type"],
)
def test_unusable_event_shapes_never_corrupt_a_started_stream(
    stack: Stack, dialect: str, message_start: Any, usage: Any
) -> None:
    stack.fault(raw_after=0, raw=hostile_stream(message_start, usage))
    response = post(stack, dialect, stream=True)
    assert response.status_code == 200
    raw = response.text
    assert "HTTP/1.1" not in raw, "no response written inside the stream"
    if dialect == "openai":
        assert events(raw)[-1] == "data: [DONE]"
        assert "hi there" in raw
    else:
        assert events(raw)[-1] == 'event: message_stop\ndata: {"type":"message_stop"}'
    logged = stack.last_access_line()
    assert logged["status"] == 200
    assert all(isinstance(logged.get(k, 0), int) for k in ("input_tokens", "output_tokens"))


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("model", "secret"), [(MODEL, API_KEY), ("claude-entra", BEARER)])
def test_an_upstream_echoing_the_gateways_credential_is_scrubbed(
    stack: Stack, dialect: str, model: str, secret: str
) -> None:
    stack.fault(echo_credential=True)
    response = post(stack, dialect, model=model)
    assert response.status_code == 400
    message = error_of(response, dialect)["message"]
    assert "[redacted]" in message and secret not in response.text
    assert secret not in stack.gateway.log()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_echo_in_a_stream_error_event_is_scrubbed(stack: Stack, dialect: str) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": f"key {API_KEY} is overloaded"}}
    stack.fault(raw_after=3, raw=f"event: error\ndata: {orjson.dumps(error).decode()}\n\n")
    response = post(stack, dialect, stream=True)
    assert "is overloaded" in response.text and "[redacted]" in response.text
    assert API_KEY not in response.text and API_KEY not in stack.gateway.log()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_upstream_error_types_are_not_passed_on_or_counted_as_labels(stack: Stack, dialect: str) -> None:
    stack.fault(error_type_value="evil_type_7f1c")
    response = post(stack, dialect)
    assert response.status_code == 400
    error = error_of(response, dialect)
    assert error["type"] == "invalid_request_error"
    error = {"type": "error", "error": {"type": "evil_stream_type_3b9a", "message": "odd"}}
    stack.fault(raw_after=3, raw=f"event: error\ndata: {orjson.dumps(error).decode()}\n\n")
    post(stack, dialect, stream=True)
    metrics = stack.metrics()
    assert "evil_type_7f1c" not in metrics and "evil_stream_type_3b9a" not in metrics


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_failure_of_the_gateway_itself_mid_stream_ends_in_an_error_event(
    stack: Stack, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-all: whatever raises once the response has started (here, a bug planted in the
    dialect's translation), the client gets an error event in its dialect and a whole body."""
    monkeypatch.setenv("FOUNDRY_TEST_KEY", API_KEY)
    config = parse_config(
        {
            "upstreams": [{"name": "foundry", "base_url": stack.foundry,
                           "auth": {"type": "api_key", "key_env": "FOUNDRY_TEST_KEY"}}],
            "routes": [{"model": MODEL, "targets": [{"upstream": "foundry", "deployment": "d"}]}],
        }
    )  # fmt: skip
    dialect_class = ChatStream if dialect == "openai" else NativeStream
    real_feed = dialect_class.feed

    def planted(self: Any, chunk: bytes) -> bytes:
        if b"text_delta" in chunk:  # once the response has started: message_start comes first
            raise KeyError("a bug")
        return real_feed(self, chunk)

    monkeypatch.setattr(dialect_class, "feed", planted)
    client = TestClient(TestServer(create_app(config)))
    await client.start_server()
    try:
        path = "/v1/chat/completions" if dialect == "openai" else "/v1/messages"
        body = {"model": MODEL, "messages": HELLO, "max_tokens": 20, "stream": True}
        response = await client.post(path, json=body)
        assert response.status == 200
        raw = (await response.read()).decode()
    finally:
        await client.close()
    last = events(raw)[-1]
    if dialect == "openai":
        assert last.startswith('data: {"error"')
    else:
        assert last.startswith("event: error\ndata: ")
    assert "the gateway failed while relaying the stream" in last
    assert "HTTP/1.1" not in raw


def test_an_oversized_answer_costs_at_most_its_bound_in_memory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With the default bound (8 MiB), a 96 MB answer: read up to the bound, never copied whole, the rest unread."""
    work = tmp_path_factory.mktemp("oversized")
    emulator, foundry = start_foundry_emulator("--api-key", API_KEY, log_dir=work)
    config = {
        "upstreams": [{"name": "f", "base_url": foundry, "auth": {"type": "api_key", "key_env": "K"}}],
        "routes": [{"model": MODEL, "targets": [{"upstream": "f", "deployment": "d"}]}],
        "retries": {"max_attempts": 1},
    }
    gateway, base, _ = start_gateway(config, env={"K": API_KEY}, log_dir=work)
    try:
        httpx.post(base + "/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": HELLO})  # warm
        before = rss_mb(gateway.popen.pid, "VmHWM")
        emulator_control(foundry, "faults", [{"huge_body": 96 * 1024 * 1024}])
        response = httpx.post(base + "/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": HELLO},
                              timeout=60)  # fmt: skip
        assert response.status_code == 502 and "over the 8388608 bytes" in response.text
        grown = rss_mb(gateway.popen.pid, "VmHWM") - before
        assert grown < 40, f"the gateway's peak memory grew {grown:.0f} MB for an answer it refused"
    finally:
        gateway.stop()
        emulator.stop()
