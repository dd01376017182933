"""Anthropic Messages response -> OpenAI Responses response object. Pure: dict in, dict out.

Each content block becomes one output item: thinking a `reasoning` item (its text as the
summary, the block itself sealed in `encrypted_content`), text a `message` item, tool_use a
`function_call` item (or, for the JSON-answer tool of `text.format`, a message holding its
JSON). Item ids come from the message id and the block index, so a stream's events and its
final response name the same items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.translate.chat_response import openai_usage

Seal = Callable[[Mapping[str, Any]], str]

# stop_reason -> incomplete_details.reason; every other stop completes the response.
INCOMPLETE_REASONS: Mapping[str, str] = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}


@dataclass(slots=True)  # not frozen: made once a request, and a frozen dataclass is slower to make
class ResponseFrame:
    """What every Response object of one request carries, streamed or not: its id (made by the
    gateway, never the upstream's message id, which an upstream may repeat or leave out and which
    stored responses are keyed by), the model the client named, when it was made, the request's
    fields it echoes, the seal for its reasoning, and the JSON-answer tool's name if any."""

    rid: str
    model: str
    created: int
    echo: Mapping[str, Any]
    seal: Seal
    json_tool: str | None = None

    def is_json_answer(self, block: Mapping[str, Any]) -> bool:
        return self.json_tool is not None and block.get("name") == self.json_tool


def item_id(kind: str, rid: str, index: int) -> str:
    """An output item's id, made from its response's: unique wherever the response id is."""
    return f"{ {'reasoning': 'rs', 'message': 'msg', 'function_call': 'fc'}[kind] }_{rid.removeprefix('resp_')}_{index}"


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [output_text(text)] if status == "completed" else []
    return {"id": item, "type": "message", "role": "assistant", "status": status, "content": content}


def reasoning_item(item: str, block: Mapping[str, Any] | None, seal: Seal) -> dict[str, Any]:
    """`block` None: the item as it opens in a stream, before its thinking is known."""
    out: dict[str, Any] = {"id": item, "type": "reasoning", "summary": []}
    if block is not None:
        thinking = block.get("thinking")
        if isinstance(thinking, str) and thinking:
            out["summary"] = [{"type": "summary_text", "text": thinking}]
        out["encrypted_content"] = seal(block)
    return out


def function_call_item(
    item: str, block: Mapping[str, Any], arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item,
        "type": "function_call",
        "status": status,
        "call_id": block.get("id"),
        "name": block.get("name"),
        "arguments": arguments,
    }


def responses_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    counted = openai_usage(usage)
    return {
        "input_tokens": counted["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": counted["prompt_tokens_details"]["cached_tokens"]},
        "output_tokens": counted["completion_tokens"],
        # Claude counts thinking in output_tokens and does not report it apart.
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": counted["total_tokens"],
    }


def response_object(
    frame: ResponseFrame,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: Mapping[str, Any] | None,
    stop_reason: Any = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    reason = INCOMPLETE_REASONS.get(stop_reason) if isinstance(stop_reason, str) else None
    if status == "completed" and reason is not None:
        status = "incomplete"
    return {
        "id": frame.rid,
        "object": "response",
        "created_at": frame.created,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": reason} if status == "incomplete" else None,
        "model": frame.model,
        "output": output,
        **frame.echo,
        "usage": responses_usage(usage) if usage is not None else None,
    }


def message_to_response(message: Mapping[str, Any], frame: ResponseFrame) -> dict[str, Any]:
    rid, seal = frame.rid, frame.seal
    output: list[dict[str, Any]] = []
    content = message.get("content")
    for index, block in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("thinking", "redacted_thinking"):
            output.append(reasoning_item(item_id("reasoning", rid, index), block, seal))
        elif kind == "text":
            output.append(message_item(item_id("message", rid, index), str(block.get("text", ""))))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input", {})).decode()
            if frame.is_json_answer(block):
                output.append(message_item(item_id("message", rid, index), arguments))
            else:
                output.append(function_call_item(item_id("function_call", rid, index), block, arguments))
    usage = message.get("usage")
    return response_object(
        frame,
        status="completed",
        output=output,
        usage=usage if isinstance(usage, dict) else {},
        stop_reason=message.get("stop_reason"),
    )
