"""OpenAI Chat Completions request -> Anthropic Messages request: table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import GatewayError
from gateway.translate.chat_request import chat_to_messages
from gateway.translate.openai_common import JSON_TOOL_NAME

USER_HI = [{"role": "user", "content": "Hi"}]
ANTHROPIC_HI = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimal uses the route default", {"messages": USER_HI}, {"messages": ANTHROPIC_HI, "max_tokens": 4096}),
    (
        "max_completion_tokens wins over max_tokens",
        {"messages": USER_HI, "max_tokens": 10, "max_completion_tokens": 20},
        {"messages": ANTHROPIC_HI, "max_tokens": 20},
    ),
    (
        "system and developer are hoisted, in order",
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
                *USER_HI,
            ]
        },
        {
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use metric."}],
            "messages": ANTHROPIC_HI,
            "max_tokens": 4096,
        },
    ),
    (
        "sampling, stop and user",
        {"messages": USER_HI, "temperature": 0.2, "top_p": 0.9, "stop": "END", "user": "u-1"},
        {
            "messages": ANTHROPIC_HI,
            "max_tokens": 4096,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
        },
    ),
    (
        "stop list",
        {"messages": USER_HI, "stop": ["a", "b"]},
        {"messages": ANTHROPIC_HI, "max_tokens": 4096, "stop_sequences": ["a", "b"]},
    ),
    (
        "stream with usage",
        {"messages": USER_HI, "stream": True, "stream_options": {"include_usage": True}},
        {"messages": ANTHROPIC_HI, "max_tokens": 4096, "stream": True},
    ),
    (
        "images: data URL to base64, https URL passed on",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
                    ],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    ],
                }
            ],
            "max_tokens": 4096,
        },
    ),
    (
        "tool round trip: assistant tool_calls and tool results merge with the next user text",
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
                {"role": "user", "content": "Which is warmer?"},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": "auto",
        },
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
                        {"type": "text", "text": "Which is warmer?"},
                    ],
                },
            ],
            "max_tokens": 4096,
            "tools": [WEATHER_ANTHROPIC],
            "tool_choice": {"type": "auto"},
        },
    ),
    (
        "tool_choice required, no parallel calls",
        {"messages": USER_HI, "tools": [WEATHER_TOOL], "tool_choice": "required", "parallel_tool_calls": False},
        {
            "messages": ANTHROPIC_HI,
            "max_tokens": 4096,
            "tools": [WEATHER_ANTHROPIC],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        },
    ),
    (
        "tool_choice named",
        {
            "messages": USER_HI,
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        {
            "messages": ANTHROPIC_HI,
            "max_tokens": 4096,
            "tools": [WEATHER_ANTHROPIC],
            "tool_choice": {"type": "tool", "name": "get_weather"},
        },
    ),
    (
        "tool_choice none keeps the tools known",
        {"messages": USER_HI, "tools": [WEATHER_TOOL], "tool_choice": "none"},
        {"messages": ANTHROPIC_HI, "max_tokens": 4096, "tools": [WEATHER_ANTHROPIC], "tool_choice": {"type": "none"}},
    ),
    (
        "parallel_tool_calls false without tool_choice",
        {"messages": USER_HI, "tools": [WEATHER_TOOL], "parallel_tool_calls": False},
        {
            "messages": ANTHROPIC_HI,
            "max_tokens": 4096,
            "tools": [WEATHER_ANTHROPIC],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
    ),
    (
        "response_format json_schema becomes a forced tool",
        {
            "messages": USER_HI,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "city",
                    "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
            },
        },
        {
            "messages": ANTHROPIC_HI,
            "max_tokens": 4096,
            "tools": [
                {
                    "name": JSON_TOOL_NAME,
                    "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "description": "Give the answer as JSON matching the schema city",
                }
            ],
            "tool_choice": {"type": "tool", "name": JSON_TOOL_NAME},
        },
    ),
    (
        "response_format text is the default",
        {"messages": USER_HI, "response_format": {"type": "text"}},
        {"messages": ANTHROPIC_HI, "max_tokens": 4096},
    ),
    (
        "reasoning_effort sets a thinking budget and lifts the default max_tokens above it",
        {"messages": USER_HI, "reasoning_effort": "high"},
        {"messages": ANTHROPIC_HI, "max_tokens": 8192, "thinking": {"type": "enabled", "budget_tokens": 4096}},
    ),
    (
        "explicit thinking passes through",
        {"messages": USER_HI, "max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 2000}},
        {"messages": ANTHROPIC_HI, "max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 2000}},
    ),
    (
        "assistant text and refusal parts, empty turns dropped, harmless params ignored",
        {
            "messages": [
                *USER_HI,
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "Hel"}, {"type": "refusal", "refusal": "lo"}],
                },
                {"role": "user", "content": ""},
                {"role": "user", "content": "Again"},
            ],
            "seed": 7,
            "n": 1,
            "presence_penalty": 0,
            "store": False,
        },
        {
            "messages": [
                *ANTHROPIC_HI,
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                {"role": "user", "content": [{"type": "text", "text": "Again"}]},
            ],
            "max_tokens": 4096,
        },
    ),
]


@pytest.mark.parametrize(("name", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_translates(name: str, body: dict[str, Any], expected: dict[str, Any]) -> None:
    translated = chat_to_messages(body, max_tokens_default=4096)
    assert translated.body == expected
    assert translated.stream is bool(body.get("stream"))


def test_stream_flags_and_json_tool() -> None:
    t = chat_to_messages(
        {
            "messages": USER_HI,
            "stream": True,
            "stream_options": {"include_usage": True},
            "response_format": {"type": "json_object"},
        },
        max_tokens_default=100,
    )
    assert (t.stream, t.include_usage, t.json_tool) == (True, True, JSON_TOOL_NAME)
    assert chat_to_messages({"messages": USER_HI}, max_tokens_default=100).json_tool is None


ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    ("n above 1", {"messages": USER_HI, "n": 2}, "n", "must be 1"),
    ("logprobs", {"messages": USER_HI, "logprobs": True}, "logprobs", "not supported"),
    ("penalty", {"messages": USER_HI, "frequency_penalty": 0.5}, "frequency_penalty", "not supported"),
    ("unknown argument", {"messages": USER_HI, "frobnicate": 1}, "frobnicate", "Unrecognized request argument"),
    ("legacy functions", {"messages": USER_HI, "functions": []}, "functions", "use 'tools'"),
    ("messages missing", {}, "messages", "must be an array"),
    ("messages empty", {"messages": []}, "messages", "at least one"),
    ("message not an object", {"messages": ["hi"]}, "messages[0]", "must be an object"),
    ("unknown role", {"messages": [{"role": "function", "content": "x"}]}, "messages[0].role", "must be one of"),
    ("only system", {"messages": [{"role": "system", "content": "x"}]}, "messages", "at least one user"),
    ("temperature above Claude's range", {"messages": USER_HI, "temperature": 1.5}, "temperature", "between 0 and 1"),
    ("temperature not a number", {"messages": USER_HI, "temperature": "hot"}, "temperature", "must be a number"),
    ("boolean is not a number", {"messages": USER_HI, "top_p": True}, "top_p", "must be a number"),
    ("max_tokens zero", {"messages": USER_HI, "max_tokens": 0}, "max_tokens", "at least 1"),
    ("max_tokens float", {"messages": USER_HI, "max_tokens": 1.5}, "max_tokens", "an integer"),
    ("too many stops", {"messages": USER_HI, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    (
        "image URL scheme",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]},
        "messages[0].content[0].image_url.url",
        "https:// URL or a data: URL",
    ),
    (
        "bad data URL",
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain,hi"}}]}
            ]
        },
        "messages[0].content[0].image_url.url",
        "base64 data URL",
    ),
    (
        "audio part",
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        "messages[0].content[0].type",
        "not supported",
    ),
    (
        "tool arguments not JSON",
        {
            "messages": [
                *USER_HI,
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}],
                },
            ]
        },
        "messages[1].tool_calls[0].function.arguments",
        "not valid JSON",
    ),
    ("tool without id", {"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "a string"),
    ("tool type", {"messages": USER_HI, "tools": [{"type": "code_interpreter"}]}, "tools[0].type", "'function'"),
    (
        "tool_choice word",
        {"messages": USER_HI, "tools": [WEATHER_TOOL], "tool_choice": "always"},
        "tool_choice",
        "auto",
    ),
    ("tool_choice without tools", {"messages": USER_HI, "tool_choice": "required"}, "tool_choice", "needs 'tools'"),
    (
        "reasoning_effort value",
        {"messages": USER_HI, "reasoning_effort": "maximal"},
        "reasoning_effort",
        "must be one of",
    ),
    (
        "max_tokens below the thinking budget",
        {"messages": USER_HI, "max_tokens": 500, "reasoning_effort": "low"},
        "max_tokens",
        "greater than the thinking budget",
    ),
    (
        "response_format with thinking",
        {"messages": USER_HI, "reasoning_effort": "low", "response_format": {"type": "json_object"}},
        "response_format",
        "cannot be combined with thinking",
    ),
    (
        "json_schema that is not an object",
        {"messages": USER_HI, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "array"}}}},
        "response_format.json_schema.schema",
        "must describe an object",
    ),
    ("stream not boolean", {"messages": USER_HI, "stream": "yes"}, "stream", "a boolean"),
]


@pytest.mark.parametrize(("name", "body", "param", "fragment"), ERRORS, ids=[e[0] for e in ERRORS])
def test_refuses_with_named_parameter(name: str, body: dict[str, Any], param: str, fragment: str) -> None:
    with pytest.raises(GatewayError) as info:
        chat_to_messages(body, max_tokens_default=4096)
    assert info.value.status == 400
    assert info.value.param == param
    assert fragment in info.value.message


def test_route_without_default_needs_max_tokens() -> None:
    with pytest.raises(GatewayError) as info:
        chat_to_messages({"messages": USER_HI}, max_tokens_default=None)
    assert info.value.param == "max_completion_tokens"
    assert chat_to_messages({"messages": USER_HI, "max_tokens": 9}, max_tokens_default=None).body["max_tokens"] == 9


def test_input_is_not_mutated() -> None:
    body = {"messages": [{"role": "tool", "tool_call_id": "a", "content": "r"}, {"role": "user", "content": "u"}]}
    before = repr(body)
    chat_to_messages(body, max_tokens_default=1)
    assert repr(body) == before


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]
CONTINUED: list[dict[str, Any]] = [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]
THINKING_ON_TOOL_TURNS = [
    # (name, messages, thinking settings, thinking sent, adjusted)
    ("a fresh question keeps its thinking", USER_HI, {"reasoning_effort": "low"}, True, ()),
    ("tool results without the signed thinking: thinking off", CONTINUED, {"reasoning_effort": "low"}, False,
     ("thinking_off_for_tool_results",)),
    ("explicit thinking too", CONTINUED, {"thinking": {"type": "enabled", "budget_tokens": 2048}}, False,
     ("thinking_off_for_tool_results",)),
    ("tool results and a new question in one turn", [*CONTINUED, {"role": "user", "content": "and tomorrow?"}],
     {"reasoning_effort": "low"}, False, ("thinking_off_for_tool_results",)),
    ("a new question after the tool loop keeps its thinking",
     [*CONTINUED, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "thanks"}],
     {"reasoning_effort": "low"}, True, ()),
    ("no thinking asked, nothing changed", CONTINUED, {}, False, ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "messages", "settings", "thinking", "adjusted"),
    THINKING_ON_TOOL_TURNS,
    ids=[t[0] for t in THINKING_ON_TOOL_TURNS],
)
def test_thinking_on_a_turn_that_answers_tool_calls(
    name: str, messages: list[Any], settings: dict[str, Any], thinking: bool, adjusted: tuple[str, ...]
) -> None:
    translated = chat_to_messages({"messages": messages, "tools": TOOLS, **settings}, max_tokens_default=1000)
    assert ("thinking" in translated.body) is thinking
    assert translated.adjusted == adjusted
    if not thinking:
        assert translated.body["max_tokens"] == 1000, "no budget added for thinking that is not sent"


EPHEMERAL = {"type": "ephemeral"}
CACHING = [
    # (name, request fields, where the breakpoints land: list of (path into the body, cache_control))
    ("a text part", {"messages": [{"role": "user", "content": [{"type": "text", "text": "long",
                                                                 "cache_control": EPHEMERAL}]}]},
     [(("messages", 0, "content", 0), EPHEMERAL)]),
    ("a message, on its last block", {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
     {"type": "text", "text": "b"}], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
     [(("messages", 0, "content", 1), {"type": "ephemeral", "ttl": "1h"})]),
    ("a system message", {"messages": [{"role": "system", "content": "rules", "cache_control": EPHEMERAL}, *USER_HI]},
     [(("system", 0), EPHEMERAL)]),
    ("a system message's part", {"messages": [{"role": "system", "content": [{"type": "text", "text": "rules",
     "cache_control": EPHEMERAL}]}, *USER_HI]}, [(("system", 0), EPHEMERAL)]),
    ("a tool", {"messages": USER_HI, "tools": [{**TOOLS[0], "cache_control": EPHEMERAL}]}, [(("tools", 0), EPHEMERAL)]),
    ("a tool's function", {"messages": USER_HI, "tools": [{"type": "function", "function": {
     **TOOLS[0]["function"], "cache_control": EPHEMERAL}}]}, [(("tools", 0), EPHEMERAL)]),
    ("a tool result", {"messages": [*CONTINUED[:2], {**CONTINUED[2], "cache_control": EPHEMERAL}], "tools": TOOLS},
     [(("messages", 2, "content", 0), EPHEMERAL)]),
]  # fmt: skip


def at(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


@pytest.mark.parametrize(("name", "request_fields", "expected"), CACHING, ids=[c[0] for c in CACHING])
def test_cache_control_is_carried_to_claudes_blocks(name: str, request_fields: Any, expected: Any) -> None:
    body = chat_to_messages(request_fields, max_tokens_default=100).body
    for path, cache in expected:
        assert at(body, path)["cache_control"] == cache


def test_a_route_with_automatic_breakpoints_marks_the_end_of_tools_and_system() -> None:
    fields = {"messages": [{"role": "system", "content": "rules"}, *USER_HI], "tools": TOOLS}
    translated = chat_to_messages(fields, max_tokens_default=100, auto_cache=True)
    assert translated.body["tools"][-1]["cache_control"] == EPHEMERAL
    assert translated.body["system"][-1]["cache_control"] == EPHEMERAL
    assert translated.adjusted == ("cache_breakpoints_added",)
    assert "cache_control" not in str(chat_to_messages(fields, max_tokens_default=100).body), "off by default"
    own = {**fields, "tools": [{**TOOLS[0], "cache_control": EPHEMERAL}]}
    kept = chat_to_messages(own, max_tokens_default=100, auto_cache=True)
    assert "cache_control" not in kept.body["system"][-1] and kept.adjusted == (), "a client's own are left alone"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"messages": [{"role": "user", "content": "x", "cache_control": {"type": "forever"}}]}, "must be 'ephemeral'"),
        ({"messages": [{"role": "user", "content": "x", "cache_control": {"type": "ephemeral", "ttl": "1d"}}]},
         "'5m' or '1h'"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": str(i), "cache_control": EPHEMERAL}
                                                    for i in range(5)]}]}, "at most 4 per request"),
    ],
    ids=["type", "ttl", "five breakpoints"],
)  # fmt: skip
def test_bad_cache_control_is_a_400(fields: Any, fragment: str) -> None:
    with pytest.raises(GatewayError, match=fragment):
        chat_to_messages(fields, max_tokens_default=100)


SCHEMA: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
STRICT_FORMAT = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}}
STRICT_TOOL = [{"type": "function", "function": {"name": "f", "strict": True, "parameters": SCHEMA}}]
STRUCTURED = [
    # (name, fields, native structured outputs served, output_config, strict tool, adjusted)
    ("strict schema, served natively", {"response_format": STRICT_FORMAT}, True,
     {"format": {"type": "json_schema", "schema": SCHEMA}}, None, ()),
    ("strict schema, not served: a forced tool", {"response_format": STRICT_FORMAT}, False,
     None, None, ("json_schema_as_forced_tool",)),
    ("a schema that asks for no strictness: a forced tool, nothing to say",
     {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}}, True,
     None, None, ()),
    ("strict tool, served", {"tools": STRICT_TOOL}, True, None, True, ()),
    ("strict tool, not served", {"tools": STRICT_TOOL}, False, None, False, ("strict_not_enforced",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "fields", "served", "output_config", "strict", "adjusted"),
    STRUCTURED,
    ids=[s[0] for s in STRUCTURED],
)
def test_structured_outputs_native_or_said(
    name: str, fields: Any, served: bool, output_config: Any, strict: Any, adjusted: Any
) -> None:
    translated = chat_to_messages({"messages": USER_HI, **fields}, max_tokens_default=100, structured_outputs=served)
    assert translated.body.get("output_config") == output_config
    if strict is not None:
        assert translated.body["tools"][0].get("strict", False) is strict
    assert translated.adjusted == adjusted
    assert "strict_schema" not in str(translated.body), "a marker of the translator's own never leaves it"
