"""Anthropic Messages response -> OpenAI Chat Completion. Pure: dict in, dict out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, json_tool: str | None = None) -> str:
    if stop_reason == "tool_use" and json_tool is not None:
        # The forced response_format tool is the answer itself, not a call for the client to run.
        return "stop"
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) else 0


def openai_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Prompt tokens include cache reads and writes, as OpenAI counts every prompt token."""
    cache_read = _count(usage, "cache_read_input_tokens")
    prompt = _count(usage, "input_tokens") + cache_read + _count(usage, "cache_creation_input_tokens")
    completion = _count(usage, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    }


def tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input", {})).decode()},
    }


def message_to_completion(
    message: Mapping[str, Any], *, model: str, created: int, json_tool: str | None = None
) -> dict[str, Any]:
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    content = message.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            if json_tool is not None and block.get("name") == json_tool:
                texts.append(orjson.dumps(block.get("input", {})).decode())
            else:
                tool_calls.append(tool_call(block))
    out_message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    usage = message.get("usage")
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": finish_reason(message.get("stop_reason"), json_tool),
                "logprobs": None,
            }
        ],
        "usage": openai_usage(usage if isinstance(usage, dict) else {}),
    }
