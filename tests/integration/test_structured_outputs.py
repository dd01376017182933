"""Structured outputs: native where an upstream serves them, a forced tool (said in the log) where
not, and a clear 400 for a native output_config.format a route cannot serve. Nothing silently dropped."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import orjson
import pytest

from tests.integration.conftest import Stack

HELLO: list[Any] = [{"role": "user", "content": "Weather in Paris as JSON"}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}},
          "required": ["city", "celsius"], "additionalProperties": False}  # fmt: skip
FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "strict": True, "parameters": SCHEMA}}]


def test_a_strict_json_schema_is_native_where_the_upstream_serves_it(stack: Stack) -> None:
    completion = stack.openai().chat.completions.create(model="claude-structured", messages=HELLO,
                                                        response_format=FORMAT)  # fmt: skip
    assert orjson.loads(completion.choices[0].message.content or "") == {"city": "example", "celsius": 1}
    sent = stack.last_request()
    assert sent["body"]["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "tools" not in sent["body"]
    assert "adjusted" not in stack.last_access_line()


def test_a_strict_json_schema_comes_through_a_forced_tool_elsewhere_and_the_log_says_so(stack: Stack) -> None:
    completion = stack.openai().chat.completions.create(model="claude-sonnet-4-5", messages=HELLO,
                                                        response_format=FORMAT)  # fmt: skip
    assert orjson.loads(completion.choices[0].message.content or "") == {"city": "example", "celsius": 1}
    sent = stack.last_request()
    assert "output_config" not in sent["body"] and sent["body"]["tool_choice"]["type"] == "tool"
    assert "anthropic-beta" not in sent["headers"]
    assert stack.last_access_line()["adjusted"] == ["json_schema_as_forced_tool"]


@pytest.mark.parametrize(("model", "strict"), [("claude-structured", True), ("claude-sonnet-4-5", False)])
def test_strict_tools(stack: Stack, model: str, strict: bool) -> None:
    stack.openai().chat.completions.create(model=model, messages=[{"role": "user", "content": "get_weather"}],
                                           tools=TOOLS)  # fmt: skip
    tool = stack.last_request()["body"]["tools"][0]
    assert tool.get("strict", False) is strict
    assert stack.last_access_line().get("adjusted") == (None if strict else ["strict_not_enforced"])


NATIVE_FORMAT: dict[str, Any] = {"format": {"type": "json_schema", "schema": SCHEMA}}


def test_a_native_output_format_is_relayed_where_the_deployments_have_it(stack: Stack) -> None:
    body = {"model": "claude-structured", "max_tokens": 200, "messages": HELLO, "output_config": NATIVE_FORMAT}
    response = httpx.post(stack.base + "/v1/messages", json=body)
    assert response.status_code == 200, response.text
    jsonschema.validate(orjson.loads(response.json()["content"][0]["text"]), SCHEMA)
    assert stack.last_request()["body"]["output_config"] == NATIVE_FORMAT
    assert "adjusted" not in stack.last_access_line()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_native_output_format_is_emulated_where_the_deployments_lack_it(stack: Stack, stream: bool) -> None:
    """An Azure-hosted deployment refuses output_config.format (the emulator does, as Foundry does): the
    gateway sends the schema as a forced tool, and the client gets the JSON text block it asked for."""
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": HELLO,
                            "output_config": {**NATIVE_FORMAT, "effort": "low"}, "stream": stream}  # fmt: skip
    client = stack.anthropic()
    if stream:
        with client.messages.stream(**{k: v for k, v in body.items() if k != "stream"},
                                    extra_headers={"anthropic-beta": "effort-2025-11-24"}) as events:  # fmt: skip
            kinds = [event.type for event in events]
            message = events.get_final_message()
        assert "input_json" not in kinds and "text" in kinds  # the JSON streamed as text deltas
    else:
        message = client.messages.create(**body, extra_headers={"anthropic-beta": "effort-2025-11-24"})
    assert [block.type for block in message.content] == ["text"]
    answer = orjson.loads(message.content[0].text)  # type: ignore[union-attr]
    jsonschema.validate(answer, SCHEMA)
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    sent = stack.last_request()["body"]
    assert sent["output_config"] == {"effort": "low"}  # the format went; what the deployment has stayed
    assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert sent["tools"] == [{"name": "json_response", "description": "Give the answer as JSON matching the schema.",
                              "input_schema": SCHEMA}]  # fmt: skip
    assert stack.last_access_line()["adjusted"] == ["structured_outputs_emulated"]


def test_native_strict_tools_become_plain_where_the_deployments_lack_structured_outputs(stack: Stack) -> None:
    tools = [{"name": "get_weather", "input_schema": SCHEMA, "strict": True}]
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 200, "tools": tools,
                            "messages": [{"role": "user", "content": "get_weather"}]}  # fmt: skip
    message = stack.anthropic().messages.create(**body)
    assert message.stop_reason == "tool_use"
    call = message.content[-1]
    assert call.type == "tool_use"
    jsonschema.validate(call.input, SCHEMA)
    assert stack.last_request()["body"]["tools"] == [{"name": "get_weather", "input_schema": SCHEMA}]
    assert stack.last_access_line()["adjusted"] == ["strict_not_enforced"]


def test_an_emulated_format_that_cannot_be_carried_by_a_tool_is_refused_before_foundry(stack: Stack) -> None:
    before = len(stack.recorded())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "cannot be combined with thinking"),
        ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "array"}}}}, "describe an object"),
    ]
    for extra, says in cases:
        body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 2000, "messages": HELLO,
                                "output_config": NATIVE_FORMAT, **extra}  # fmt: skip
        response = httpx.post(stack.base + "/v1/messages", json=body)
        assert response.status_code == 400 and says in response.json()["error"]["message"], response.text
    assert len(stack.recorded()) == before
