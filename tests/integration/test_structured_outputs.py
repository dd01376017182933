"""Structured outputs: native where an upstream serves them, a forced tool (said in the log) where
not, and a clear 400 for a native output_config.format a route cannot serve. Nothing silently dropped."""

from __future__ import annotations

from typing import Any

import httpx
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


@pytest.mark.parametrize(("model", "status"), [("claude-structured", 200), ("claude-sonnet-4-5", 400)])
def test_a_native_output_format_where_it_can_and_cannot_be_served(stack: Stack, model: str, status: int) -> None:
    body = {"model": model, "max_tokens": 200, "messages": HELLO,
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}  # fmt: skip
    response = httpx.post(stack.base + "/v1/messages", json=body)
    assert response.status_code == status, response.text
    if status == 400:
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "output_config.format (structured outputs) is not served by the deployments of" in error["message"]
    else:
        assert orjson.loads(response.json()["content"][0]["text"]) == {"city": "example", "celsius": 1}
