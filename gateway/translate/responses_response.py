"""Anthropic Messages response -> OpenAI Responses response object. Pure: dict in, dict out.

Each content block becomes one output item: thinking a `reasoning` item (its text as the
summary, the block itself sealed in `encrypted_content`), text a `message` item (web-search
citations as url_citation annotations), tool_use a `function_call` item under the name and
namespace the client declared (or, for the JSON-answer tool of `text.format`, a message holding
its JSON), and a web search with its results one `web_search_call` item. Item ids come from
the response id and the block index, so a stream's events and its final response name the same
items.
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
    namespaced: Mapping[str, tuple[str, str]] | None = None  # flat tool name -> (namespace, name) the client gave

    def is_json_answer(self, block: Mapping[str, Any]) -> bool:
        return self.json_tool is not None and block.get("name") == self.json_tool

    def function_call_item(
        self, item: str, block: Mapping[str, Any], arguments: str, status: str = "completed"
    ) -> dict[str, Any]:
        """A tool call, under the name (and namespace) the client declared."""
        name = block.get("name")
        out = {"id": item, "type": "function_call", "status": status, "call_id": block.get("id")}
        declared = self.namespaced.get(name) if self.namespaced is not None and isinstance(name, str) else None
        if declared is not None:
            out["namespace"], name = declared
        out["name"], out["arguments"] = name, arguments
        return out


def item_id(kind: str, rid: str, index: int) -> str:
    """An output item's id, made from its response's: unique wherever the response id is."""
    prefix = {"reasoning": "rs", "message": "msg", "function_call": "fc", "web_search_call": "ws"}[kind]
    return f"{prefix}_{rid.removeprefix('resp_')}_{index}"


def output_text(text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def message_item(
    item: str, text: str, status: str = "completed", annotations: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    content = [output_text(text, annotations)] if status == "completed" else []
    return {"id": item, "type": "message", "role": "assistant", "status": status, "content": content}


def url_citation(citation: Any, text: str) -> dict[str, Any] | None:
    """A Claude web-search citation as an OpenAI annotation; Claude cites a whole text block."""
    if not isinstance(citation, dict) or not isinstance(citation.get("url"), str):
        return None
    title = citation.get("title")
    return {
        "type": "url_citation",
        "url": citation["url"],
        "title": title if isinstance(title, str) else "",
        "start_index": 0,
        "end_index": len(text),
    }


def annotations_of(citations: Any, text: str) -> list[dict[str, Any]]:
    found = (url_citation(c, text) for c in (citations if isinstance(citations, list) else ()))
    return [a for a in found if a is not None]


def web_search_item(item: str, query: Any, result: Any, status: str = "completed") -> dict[str, Any]:
    """Claude's web search (its query, and its web_search_tool_result's content: None while it
    runs) as OpenAI's web_search_call item."""
    action: dict[str, Any] = {"type": "search", "query": query if isinstance(query, str) else ""}
    if isinstance(result, list):
        action["sources"] = [
            {"type": "url", "url": r["url"]} for r in result if isinstance(r, dict) and isinstance(r.get("url"), str)
        ]
    elif result is not None:  # an error object: Claude's search failed (too many requests, unavailable, ...)
        status = "failed"
    return {"id": item, "type": "web_search_call", "status": status, "action": action}


def search_query(block: Mapping[str, Any]) -> Any:
    arguments = block.get("input")
    return arguments.get("query") if isinstance(arguments, dict) else None


def reasoning_item(item: str, block: Mapping[str, Any] | None, seal: Seal) -> dict[str, Any]:
    """`block` None: the item as it opens in a stream, before its thinking is known."""
    out: dict[str, Any] = {"id": item, "type": "reasoning", "summary": []}
    if block is not None:
        thinking = block.get("thinking")
        if isinstance(thinking, str) and thinking:
            out["summary"] = [{"type": "summary_text", "text": thinking}]
        out["encrypted_content"] = seal(block)
    return out


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
    searches: dict[Any, int] = {}  # a web search's id -> its item's place in output
    content = message.get("content")
    for index, block in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("thinking", "redacted_thinking"):
            output.append(reasoning_item(item_id("reasoning", rid, index), block, seal))
        elif kind == "text":
            text = str(block.get("text", ""))
            annotations = annotations_of(block.get("citations"), text)
            output.append(message_item(item_id("message", rid, index), text, annotations=annotations))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input", {})).decode()
            if frame.is_json_answer(block):
                output.append(message_item(item_id("message", rid, index), arguments))
            else:
                output.append(frame.function_call_item(item_id("function_call", rid, index), block, arguments))
        elif kind == "server_tool_use" and block.get("name") == "web_search":
            searches[block.get("id")] = len(output)
            output.append(web_search_item(item_id("web_search_call", rid, index), search_query(block), None))
        elif kind == "web_search_tool_result" and block.get("tool_use_id") in searches:
            at = searches[block.get("tool_use_id")]
            output[at] = web_search_item(output[at]["id"], output[at]["action"]["query"], block.get("content"))
    usage = message.get("usage")
    return response_object(
        frame,
        status="completed",
        output=output,
        usage=usage if isinstance(usage, dict) else {},
        stop_reason=message.get("stop_reason"),
    )
