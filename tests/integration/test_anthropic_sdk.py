"""The official anthropic SDK against the native relay, in front of the Foundry emulator."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest

from devtools.harness import write_token
from tests.integration.conftest import API_KEY, BEARER, CLIENT_KEY, Stack

MODEL = "claude-sonnet-4-5"
HELLO: list[Any] = [{"role": "user", "content": "Hello relay"}]


def test_create_swaps_model_and_credentials(stack: Stack) -> None:
    message = stack.anthropic().messages.create(model=MODEL, max_tokens=100, messages=HELLO, metadata={"user_id": "u1"})
    assert message.content[0].type == "text" and message.content[0].text == "You said: Hello relay"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 4
    sent = stack.last_request()
    assert sent["path"] == "/anthropic/v1/messages"
    assert sent["body"] == {
        "model": "sonnet-deployment",
        "max_tokens": 100,
        "messages": HELLO,
        "metadata": {"user_id": "u1"},
    }
    headers = sent["headers"]
    assert headers["x-api-key"] == API_KEY and headers["api-key"] == API_KEY
    assert headers["anthropic-version"], "the SDK's own version is forwarded"
    assert CLIENT_KEY not in orjson.dumps(sent).decode()


def test_anthropic_prefix_path(stack: Stack) -> None:
    message = stack.anthropic("/anthropic").messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    assert message.content[0].type == "text"
    assert stack.last_request()["body"]["model"] == "sonnet-deployment"


def test_stream_is_relayed_event_for_event(stack: Stack) -> None:
    with stack.anthropic().messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: Hello relay"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4

    body = {"model": MODEL, "max_tokens": 100, "messages": HELLO, "stream": True}
    with httpx.stream("POST", stack.base + "/v1/messages", json=body) as response:
        raw = response.read().decode()
    events = [block.split("\n", 1)[0].removeprefix("event: ") for block in raw.strip().split("\n\n")]
    assert events == ["message_start", "ping", "content_block_start", *["content_block_delta"] * 4,
                      "content_block_stop", "message_delta", "message_stop"]  # fmt: skip


def test_tool_use_thinking_and_beta_header(stack: Stack) -> None:
    tools: Any = [{"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    message = stack.anthropic().messages.create(
        model=MODEL,
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=tools,
        messages=[{"role": "user", "content": "please lookup this"}],
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.stop_reason == "tool_use"
    assert stack.last_request()["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"


def test_client_chosen_anthropic_version_is_kept_and_defaulted(stack: Stack) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": HELLO}
    assert httpx.post(stack.base + "/v1/messages", json=body).status_code == 200
    assert stack.last_request()["headers"]["anthropic-version"] == "2023-06-01"
    headers = {"anthropic-version": "2023-01-01", "authorization": "Bearer client-token", "cookie": "session=1"}
    assert httpx.post(stack.base + "/v1/messages", json=body, headers=headers).status_code == 200
    sent = stack.last_request()["headers"]
    assert sent["anthropic-version"] == "2023-01-01"
    assert "authorization" not in sent and "cookie" not in sent
    assert sent["user-agent"] == "foundry-gateway"  # the gateway names itself, not the client or aiohttp
    # The emulator compresses JSON when asked, as HTTP allows; the gateway relays bytes, so asks for none.
    assert sent["accept-encoding"] == "identity"


def test_count_tokens(stack: Stack) -> None:
    count = stack.anthropic().messages.count_tokens(model=MODEL, messages=HELLO)
    assert count.input_tokens > 0
    sent = stack.last_request()
    assert sent["path"] == "/anthropic/v1/messages/count_tokens" and sent["body"]["model"] == "sonnet-deployment"


async def test_async_client(stack: Stack) -> None:
    client = stack.async_anthropic()
    message = await client.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
    assert message.content[0].type == "text"
    async with client.messages.stream(model=MODEL, max_tokens=20, messages=HELLO) as stream:
        assert "".join([t async for t in stream.text_stream]) == "You said: Hello relay"
    await client.close()


# --- errors: Anthropic's shape, the SDK's own classes ----------------------------------------------------


def test_unknown_model(stack: Stack) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        stack.anthropic().messages.create(model="claude-2", max_tokens=5, messages=HELLO)
    assert info.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": info.value.body["error"]["message"]},  # type: ignore[index]
        "request_id": info.value.response.headers["x-request-id"],
    }
    assert "Available models" in info.value.message


def test_upstream_validation_error_is_relayed_as_is(stack: Stack) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        bad: Any = [{"role": "system", "content": "x"}]
        stack.anthropic().messages.create(model=MODEL, max_tokens=5, messages=bad)
    assert 'Unexpected role "system"' in info.value.message


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        ({"status": 429, "retry_after": "3"}, anthropic.RateLimitError),
        ({"status": 529}, anthropic.OverloadedError),
        ({"status": 500}, anthropic.InternalServerError),
        ({"status": 401, "azure_shape": True}, anthropic.AuthenticationError),
    ],
)
def test_upstream_errors_keep_status(stack: Stack, fault: dict[str, Any], error_class: type[Exception]) -> None:
    stack.fault(**fault)
    with pytest.raises(error_class) as info:
        stack.anthropic().messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    assert isinstance(info.value, anthropic.APIStatusError)
    if "retry_after" in fault:
        assert info.value.response.headers["retry-after"] == "3"
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["message"]


def test_body_too_large(stack: Stack) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        stack.anthropic().messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "y" * 300_000}]
        )
    assert info.value.status_code == 413
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "request_too_large"


def test_gateway_errors_on_native_paths(stack: Stack) -> None:
    for raw, fragment in ((b"nope", "not valid JSON"), (b'{"max_tokens": 1}', "'model' is required")):
        response = httpx.post(stack.base + "/v1/messages", content=raw)
        assert response.status_code == 400
        assert response.json()["type"] == "error" and fragment in response.json()["error"]["message"]
    with pytest.raises(anthropic.InternalServerError) as info:
        stack.anthropic().messages.create(model="claude-dead", max_tokens=5, messages=HELLO)
    assert info.value.status_code == 502
    with pytest.raises(anthropic.APIStatusError) as expired:
        stack.anthropic().messages.create(model="claude-expired", max_tokens=5, messages=HELLO)
    assert expired.value.status_code == 503 and "expired" in expired.value.message


def test_a_token_expiring_mid_stream_ends_no_open_stream_and_stops_new_requests(stack: Stack) -> None:
    """Foundry checked the token when the stream opened: its expiry mid-way must not cut the stream,
    and from then on requests are refused up front until the sidecar writes a fresh token."""
    stack.fault(stall_after=3, stall=1.0)  # the stream pauses mid-way while the token expires
    client = stack.anthropic()
    try:
        with client.messages.stream(model="claude-entra", max_tokens=50, messages=HELLO) as stream:
            events = iter(stream)
            assert next(events).type == "message_start"
            write_token(stack.token_file, BEARER, -60)
            rest = [event.type for event in events]
            final = stream.get_final_message()
        assert rest[-1] == "message_stop" and final.stop_reason == "end_turn" and final.content
        with pytest.raises(anthropic.APIStatusError) as info:
            client.messages.create(model="claude-entra", max_tokens=5, messages=HELLO)
        assert info.value.status_code == 503 and "expired at" in info.value.message
        assert BEARER not in info.value.message
        assert len(stack.recorded()) == 1, "no upstream call with the expired token"
    finally:
        write_token(stack.token_file, BEARER, 3600)
    assert client.messages.create(model="claude-entra", max_tokens=5, messages=HELLO).content


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [({"error_after": 4}, "Overloaded"), ({"cut_after": 4}, "connection was cut")],
)
def test_mid_stream_failures_end_with_an_error_event(stack: Stack, fault: dict[str, Any], fragment: str) -> None:
    stack.fault(**fault)
    received = ""
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        stack.anthropic().messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream,
    ):
        for text in stream.text_stream:
            received += text
    assert fragment in str(info.value)
    assert received == "You "

    stack.fault(**fault)
    body = {"model": MODEL, "max_tokens": 100, "messages": HELLO, "stream": True}
    with httpx.stream("POST", stack.base + "/v1/messages", json=body) as response:
        raw = response.read().decode()
    assert "event: message_stop" not in raw
    assert raw.rstrip().split("\n\n")[-1].startswith("event: error\ndata: ")


def test_entra_upstream_uses_the_token_file_and_follows_rotation(stack: Stack) -> None:
    client = stack.anthropic()
    client.messages.create(model="claude-entra", max_tokens=5, messages=HELLO)
    sent = stack.last_request()["headers"]
    assert sent["authorization"] == f"Bearer {BEARER}"
    assert "api-key" not in sent and "x-api-key" not in sent
    try:
        write_token(stack.token_file, "a-token-foundry-does-not-know", 3600)
        with pytest.raises(anthropic.AuthenticationError) as info:
            client.messages.create(model="claude-entra", max_tokens=5, messages=HELLO)
        assert "refused the gateway's credentials (401)" in info.value.message
        assert "a-token-foundry-does-not-know" not in info.value.message
    finally:
        write_token(stack.token_file, BEARER, 3600)
    client.messages.create(model="claude-entra", max_tokens=5, messages=HELLO)
