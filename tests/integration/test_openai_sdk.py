"""The official openai SDK against the gateway in front of the Foundry emulator, all real processes."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.integration.conftest import API_KEY, CLIENT_KEY, Stack

MODEL = "claude-sonnet-4-5"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME: Any = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
}
PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def test_completion_reaches_foundry_with_the_gateway_credentials(stack: Stack) -> None:
    completion = stack.openai().chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        temperature=0.5,
        user="user-42",
    )
    assert completion.model == MODEL
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "You said: Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 4

    sent = stack.last_request()
    assert sent["path"] == "/anthropic/v1/messages"
    assert sent["body"] == {
        "model": "sonnet-deployment",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "Be brief."}],
        "temperature": 0.5,
        "metadata": {"user_id": "user-42"},
    }
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["x-api-key"] == API_KEY and headers["api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert CLIENT_KEY not in orjson.dumps(sent).decode()


def test_stream_follows_the_chunk_protocol(stack: Stack) -> None:
    stream = stack.openai().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.model for c in chunks} == {MODEL} and len({c.id for c in chunks}) == 1


def test_stream_wire_ends_with_done(stack: Stack) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", stack.base + "/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    payloads = [orjson.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(p["object"] == "chat.completion.chunk" and "usage" not in p for p in payloads)


async def test_async_client(stack: Stack) -> None:
    client = stack.async_openai()
    completion = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "async"}])
    assert completion.choices[0].message.content == "You said: async"
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a b"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "You said: a b"
    await client.close()


def test_tool_call_round_trip(stack: Stack) -> None:
    client = stack.openai()
    messages: list[Any] = [{"role": "user", "content": "Use get_weather for Paris"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "example"}

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Tool results: 18C"
    assert second.choices[0].finish_reason == "stop"
    sent = stack.last_request()["body"]["messages"]
    assert sent[1]["content"][-1] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_weather",
        "input": {"city": "example"},
    }
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}]


def test_streamed_parallel_tool_calls(stack: Stack) -> None:
    stream = stack.openai().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Call get_weather and get_time"}],
        tools=[WEATHER, TIME],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                assert not entry["id"], "id comes only in the first delta of a call"
                entry["id"] = delta.id
                entry["name"] = delta.function.name if delta.function and delta.function.name else ""
            if delta.function and delta.function.arguments:
                entry["arguments"] += delta.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert orjson.loads(calls[0]["arguments"]) == {"city": "example"}
    assert orjson.loads(calls[1]["arguments"]) == {"tz": "example"}
    assert all(c["id"].startswith("toolu_") for c in calls.values())


def test_parallel_tool_calls_false_and_named_choice(stack: Stack) -> None:
    client = stack.openai()
    one = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Call get_weather and get_time"}],
        tools=[WEATHER, TIME],
        parallel_tool_calls=False,
    )
    assert one.choices[0].message.tool_calls is not None and len(one.choices[0].message.tool_calls) == 1
    assert stack.last_request()["body"]["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    named = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "anything"}],
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls: Any = named.choices[0].message.tool_calls
    assert calls[0].function.name == "get_time"


def test_images_are_passed_on_not_downloaded(stack: Stack) -> None:
    completion = stack.openai().chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}},
                    {"type": "image_url", "image_url": {"url": "https://images.invalid/cat.jpg"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "You said: Compare (with 2 images)"
    content = stack.last_request()["body"]["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}}
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://images.invalid/cat.jpg"}}


def test_thinking_as_reasoning_content(stack: Stack) -> None:
    client = stack.openai()
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Think"}], reasoning_effort="low"
    )
    message = completion.choices[0].message
    assert message.content == "You said: Think"
    assert (message.model_extra or {}).get("reasoning_content", "").startswith("The user wrote 1 words")
    assert stack.last_request()["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Think"}],
        stream=True,
        max_tokens=3000,
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 2000}},
    )
    reasoning, text = "", ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        text += delta.content or ""
    assert reasoning.startswith("The user wrote 1 words") and text == "You said: Think"


def test_response_format_json_schema(stack: Stack) -> None:
    schema: Any = {"type": "object", "properties": {"city": {"type": "string"}, "rank": {"type": "integer"}}}
    completion = stack.openai().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Best city?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.tool_calls is None
    assert orjson.loads(completion.choices[0].message.content or "") == {"city": "example", "rank": 1}


def test_stop_sequence_and_length(stack: Stack) -> None:
    client = stack.openai()
    cut = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "alpha STOP beta"}], stop=["STOP"]
    )
    assert cut.choices[0].message.content == "You said: alpha " and cut.choices[0].finish_reason == "stop"
    short = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "one two three four"}], max_completion_tokens=2
    )
    assert short.choices[0].message.content == "You said:" and short.choices[0].finish_reason == "length"


# --- errors: each in OpenAI's shape, each raising the SDK's own exception class ----------------------------


def test_unsupported_parameter_is_a_400_naming_it(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stack.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], n=2)
    assert info.value.param == "n" and "must be 1" in info.value.message
    body: Any = info.value.body
    assert body == {"message": body["message"], "type": "invalid_request_error", "param": "n",
                               "code": "invalid_request_error"}  # fmt: skip
    assert stack.recorded() == [], "a refused request never reaches Foundry"


def test_unknown_model_is_a_404_listing_the_models(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        stack.openai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "'gpt-4o' does not exist" in info.value.message and "claude-sonnet-4-5" in info.value.message


def test_route_without_default_needs_max_tokens(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stack.openai().chat.completions.create(model="claude-no-default", messages=[{"role": "user", "content": "x"}])
    assert info.value.param == "max_completion_tokens"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "empty"),
        (b'{"model": 5, "messages": []}', "'model' is required"),
        (b'{"model": "claude-sonnet-4-5", "messages": "hi"}', "'messages' must be an array"),
    ],
)
def test_malformed_bodies_are_400s(stack: Stack, raw: bytes, fragment: str) -> None:
    response = httpx.post(
        stack.base + "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert fragment in error["message"] and error["type"] == "invalid_request_error"


def test_body_over_the_limit_is_a_413(stack: Stack) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        stack.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 300_000}])
    assert info.value.status_code == 413 and "262144 bytes" in info.value.message


def test_unknown_path_and_method(stack: Stack) -> None:
    missing = httpx.post(stack.base + "/v1/completions", json={})
    assert missing.status_code == 404 and "POST /v1/chat/completions" in missing.json()["error"]["message"]
    wrong = httpx.get(stack.base + "/v1/chat/completions")
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_upstream_429_keeps_status_and_retry_after(stack: Stack) -> None:
    stack.fault(status=429, retry_after="7")
    with pytest.raises(openai.RateLimitError) as info:
        stack.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_error" and "Rate limit exceeded" in info.value.message


@pytest.mark.parametrize(("status", "code"), [(529, "overloaded_error"), (500, "api_error"), (503, "api_error")])
def test_upstream_5xx_keeps_status(stack: Stack, status: int, code: str) -> None:
    stack.fault(status=status)
    with pytest.raises(openai.InternalServerError) as info:
        stack.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status and info.value.code == code


def test_upstream_validation_error_is_relayed(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stack.openai().chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"thinking": {"type": "enabled", "budget_tokens": 100}},
        )
    assert "budget_tokens" in info.value.message


def test_azure_shaped_auth_failure(stack: Stack) -> None:
    stack.fault(status=403, azure_shape=True)
    with pytest.raises(openai.PermissionDeniedError) as info:
        stack.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert "refused the gateway's credentials (403)" in info.value.message


@pytest.mark.parametrize("body", ["not json", "[1, 2]"])
def test_a_garbled_upstream_answer_is_a_502(stack: Stack, body: str) -> None:
    stack.fault(body=body)
    with pytest.raises(openai.InternalServerError) as info:
        stack.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502 and "not a Messages API message" in info.value.message


def test_unreachable_upstream_is_a_502(stack: Stack) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        stack.openai().chat.completions.create(model="claude-dead", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502 and "upstream dead is unreachable" in info.value.message


def test_upstream_timeout_is_a_504(stack: Stack) -> None:
    stack.fault(delay=3)
    with pytest.raises(openai.InternalServerError) as info:
        stack.openai().chat.completions.create(model="claude-slow", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 504 and "did not answer in time" in info.value.message


def test_expired_token_fails_fast_with_503(stack: Stack) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        stack.openai().chat.completions.create(model="claude-expired", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503 and "expired at" in info.value.message
    assert stack.recorded() == [], "no upstream call without a usable token"


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ({"error_after": 4, "error_type": "overloaded_error"}, "Overloaded"),
        ({"cut_after": 4}, "connection was cut"),
        ({"malformed_after": 4}, "not a JSON object"),
    ],
)
def test_mid_stream_failure_raises_and_never_looks_complete(stack: Stack, fault: dict[str, Any], fragment: str) -> None:
    stack.fault(**fault)
    received = ""
    with pytest.raises(openai.APIError) as info:
        for chunk in stack.openai().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "a b c d e f"}], stream=True
        ):
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert fragment in info.value.message
    assert received == "You ", "what came before the failure is delivered, nothing after it"

    stack.fault(**fault)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a b c d e f"}], "stream": True}
    with httpx.stream("POST", stack.base + "/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
    assert "data: [DONE]" not in lines
    assert orjson.loads(lines[-1].removeprefix("data: "))["error"]["message"]


def test_stalled_stream_ends_with_an_error(stack: Stack) -> None:
    stack.fault(stall_after=3, stall=5)
    with pytest.raises(openai.APIError) as info:
        list(
            stack.openai().chat.completions.create(
                model="claude-slow", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    assert "stalled" in info.value.message


def test_reasoning_with_tools_over_several_turns(stack: Stack) -> None:
    """An OpenAI client (as the Agents SDK does) sets reasoning_effort and loops over tool calls; it
    cannot send Claude's signed thinking back, and Claude refuses a thinking request whose tool
    turn lacks it. The turn that carries tool results goes without thinking; the next question
    has it again."""
    client = stack.openai()
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
    messages: Any = [{"role": "user", "content": "call get_weather for Paris"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=tools, reasoning_effort="low")
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].message.reasoning_content  # type: ignore[attr-defined]
    assert stack.last_request()["body"]["thinking"]["type"] == "enabled"
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]  # fmt: skip
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=tools, reasoning_effort="low")
    assert "sunny, 21 C" in (second.choices[0].message.content or "")
    assert "thinking" not in stack.last_request()["body"]
    line = stack.last_access_line()
    assert line["adjusted"] == ["thinking_off_for_tool_results"]
    messages += [second.choices[0].message.model_dump(exclude_none=True), {"role": "user", "content": "thanks"}]
    third = client.chat.completions.create(model=MODEL, messages=messages, tools=tools, reasoning_effort="low")
    assert third.choices[0].message.content
    assert stack.last_request()["body"]["thinking"]["type"] == "enabled"


def test_the_emulator_refuses_a_thinking_tool_turn_without_its_thinking(stack: Stack) -> None:
    """What the gateway avoids, as Claude answers it (checked through the native relay)."""
    body = {"model": MODEL, "max_tokens": 3000, "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [{"role": "user", "content": "weather?"},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w",
                                                            "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content": "sunny"}]}],
            "tools": [{"name": "w", "input_schema": {"type": "object"}}]}  # fmt: skip
    response = httpx.post(stack.base + "/v1/messages", json=body)
    assert response.status_code == 400
    assert "Expected `thinking` or `redacted_thinking`, but found `tool_use`" in response.json()["error"]["message"]


SYSTEM_PROMPT = "You are a careful assistant for the weather desk. " * 40


def cached_tokens(completion: Any) -> int:
    return int(completion.usage.prompt_tokens_details.cached_tokens)


def test_prompt_caching_from_the_openai_dialect(stack: Stack) -> None:
    """cache_control on a system message, as LiteLLM's convention has it: the second identical
    prompt reads from the cache, and the OpenAI client, the metrics and the log all see it."""
    client = stack.openai()
    messages: Any = [
        {"role": "system", "content": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "Is it raining in Lyon?"},
    ]
    sample = 'foundry_gateway_tokens_total{route="claude-sonnet-4-5",type="cache_read"}'
    before = stack.metric(sample)
    first = client.chat.completions.create(model=MODEL, messages=messages)
    assert stack.last_request()["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    second = client.chat.completions.create(model=MODEL, messages=messages)
    assert cached_tokens(first) == 0 < cached_tokens(second)
    assert stack.metric(sample) == before + cached_tokens(second)
    line = stack.last_access_line()
    assert line["cache_read_tokens"] == cached_tokens(second)


def test_a_route_places_breakpoints_for_clients_that_never_will(stack: Stack) -> None:
    client = stack.openai()
    messages: Any = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "And in Nice?"}]
    client.chat.completions.create(model="claude-cached", messages=messages)
    assert stack.last_request()["body"]["system"][-1]["cache_control"] == {"type": "ephemeral"}
    second = client.chat.completions.create(model="claude-cached", messages=messages)
    assert cached_tokens(second) > 0
