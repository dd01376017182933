"""Anthropic Messages response -> OpenAI Chat Completion: table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.translate.chat_response import finish_reason, message_to_completion, openai_usage

USAGE = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2}
OPENAI_USAGE = {
    "prompt_tokens": 15,
    "completion_tokens": 5,
    "total_tokens": 20,
    "prompt_tokens_details": {"cached_tokens": 3},
}


def _message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "dep",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": USAGE,
    }


CASES: list[tuple[str, dict[str, Any], str | None, dict[str, Any], str]] = [
    (
        "text",
        _message([{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]),
        None,
        {"role": "assistant", "content": "Hello world", "refusal": None},
        "stop",
    ),
    (
        "tool calls with text",
        _message(
            [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
            "tool_use",
        ),
        None,
        {
            "role": "assistant",
            "content": "Checking.",
            "refusal": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        "tool_calls",
    ),
    (
        "only tool calls: content is null",
        _message([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "tool_use"),
        None,
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        "tool_calls",
    ),
    (
        "thinking becomes reasoning_content",
        _message(
            [
                {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "text", "text": "42"},
            ]
        ),
        None,
        {"role": "assistant", "content": "42", "refusal": None, "reasoning_content": "Let me see."},
        "stop",
    ),
    (
        "the response_format tool is the answer",
        _message([{"type": "tool_use", "id": "t", "name": "json_response", "input": {"a": 1}}], "tool_use"),
        "json_response",
        {"role": "assistant", "content": '{"a":1}', "refusal": None},
        "stop",
    ),
    (
        "max_tokens",
        _message([{"type": "text", "text": "cut"}], "max_tokens"),
        None,
        {"role": "assistant", "content": "cut", "refusal": None},
        "length",
    ),
]


@pytest.mark.parametrize(("name", "message", "json_tool", "expected", "finish"), CASES, ids=[c[0] for c in CASES])
def test_message_to_completion(
    name: str, message: dict[str, Any], json_tool: str | None, expected: dict[str, Any], finish: str
) -> None:
    out = message_to_completion(message, model="claude-sonnet-4-5", created=1700000000, json_tool=json_tool)
    assert out == {
        "id": "msg_1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-sonnet-4-5",
        "choices": [{"index": 0, "message": expected, "finish_reason": finish, "logprobs": None}],
        "usage": OPENAI_USAGE,
    }


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("some_future_reason", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reason(stop_reason: str | None, expected: str) -> None:
    assert finish_reason(stop_reason) == expected


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    assert openai_usage(USAGE) == OPENAI_USAGE
    assert openai_usage({}) == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
