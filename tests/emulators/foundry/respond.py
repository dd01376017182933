"""Deterministic answers: the same request always gets the same content, so tests can assert on it.

- The last user turn holds tool results: the reply quotes them ("Tool results: ...").
- Tools are offered and tool_choice allows them: with `any` or a named tool, that tool is
  called; with `auto`, each tool the last user text names as a word is called (text in a
  harness's <system-reminder> blocks, which name every tool, does not count)
  (several at once unless disable_parallel_tool_use). Inputs are built from the schema.
- Otherwise the reply is "You said: <last user text>", noting any images.
- Thinking enabled: a thinking block with a signature comes first.
- stop_sequences and max_tokens (1 token per word) cut the text as the real API does.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterator
from typing import Any, Protocol

import orjson

from tests.emulators.foundry.validate import thinking_on, thinking_signature


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def _user_words(content: Any) -> str:
    """What the person wrote: the text blocks other than a harness's <system-reminder> notes, which
    name every tool (Claude Code sends them) and are not a request to call any."""
    if isinstance(content, str):
        return content
    texts = (b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return " ".join(t for t in texts if not t.lstrip().startswith("<system-reminder>"))


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def _tool_result_text(block: dict[str, Any]) -> str:
    content = block.get("content", "")
    return content if isinstance(content, str) else _text_of(content)


def _value_for(schema: Any, path: str | None = None, name: str = "", command: str | None = None) -> Any:
    if not isinstance(schema, dict):
        return "example"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {key: _value_for(props.get(key), path, key, command) for key in required}
    if kind == "string" and path is not None and ("path" in name or "file" in name):
        return path
    if kind == "string" and command is not None and name in ("cmd", "command"):
        return command
    defaults: dict[Any, Any] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}
    return defaults.get(kind, "example")


def _tool_calls(body: dict[str, Any], last_text: str) -> list[dict[str, Any]]:
    tools = [t for t in body.get("tools") or [] if t.get("type", "custom") == "custom"]  # server tools run here
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or choice["type"] == "none":
        return []
    if choice["type"] == "tool":
        chosen = [t for t in tools if t["name"] == choice["name"]]
    elif choice["type"] == "any":
        mentioned = [t for t in tools if _mentions(last_text, t["name"])]
        chosen = mentioned[:1] or tools[:1]
    else:
        chosen = [t for t in tools if _mentions(last_text, t["name"])]
        if choice.get("disable_parallel_tool_use"):
            chosen = chosen[:1]
    return [
        {
            "type": "tool_use",
            "id": "toolu_" + secrets.token_hex(12),
            "name": t["name"],
            "input": _value_for(t["input_schema"], _path_in(last_text), command=_command_in(last_text)),
        }
        for t in chosen
    ]


def _web_search(body: dict[str, Any], last_text: str) -> list[dict[str, Any]]:
    """Claude's web search, where the request offers it and the user asks to "search the web": the
    search, its results, and a cited answer, as Claude gives them (the results' content encrypted)."""
    tool = next((t for t in body.get("tools") or [] if str(t.get("type", "")).startswith("web_search_")), None)
    if tool is None or "search the web" not in last_text.lower():
        return []
    query = last_text[last_text.lower().index("search the web") :].strip()
    domains = tool.get("allowed_domains") or ["docs.example.com"]
    url = f"https://{domains[0]}/{re.sub(r'[^a-z0-9]+', '-', query.lower()).strip('-')[:40]}"
    title = f"Results for {query[:40]}"
    search_id = "srvtoolu_" + secrets.token_hex(12)
    citation = {
        "type": "web_search_result_location",
        "url": url,
        "title": title,
        "encrypted_index": "eidx_" + secrets.token_hex(8),
        "cited_text": "The answer, as the page gives it.",
    }
    return [
        {"type": "server_tool_use", "id": search_id, "name": "web_search", "input": {"query": query}},
        {
            "type": "web_search_tool_result",
            "tool_use_id": search_id,
            "content": [
                {
                    "type": "web_search_result",
                    "url": url,
                    "title": title,
                    "encrypted_content": "enc_" + secrets.token_hex(16),
                    "page_age": "December 1, 2026",
                }
            ],
        },
        {"type": "text", "text": "The page says the answer.", "citations": [citation]},
    ]


def _command_in(text: str) -> str | None:
    """A command the user quoted in backticks, for a tool's cmd or command argument."""
    found = re.search(r"`([^`]+)`", text)
    return found.group(1) if found else None


def _path_in(text: str) -> str | None:
    """An absolute file path the user named, for a tool's path argument."""
    found = re.search(r"(/[\w.-]+(?:/[\w.-]+)+)", text)
    return found.group(1) if found else None


class PromptCache(Protocol):
    """One deployment's prompt cache (tests/emulators/foundry/quota.py)."""

    def has(self, prefix: str) -> bool: ...

    def write(self, prefix: str, ttl: float) -> None: ...


# Claude looks for a cached prefix at each block boundary up to this many blocks before a breakpoint.
_LOOKBACK_BLOCKS = 20


def _prompt_blocks(body: dict[str, Any]) -> list[Any]:
    """The prompt's blocks in Claude's prefix order: tools, system, then each message's content."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    blocks += system if isinstance(system, list) else []
    for msg in body["messages"]:
        content = msg["content"]
        blocks += content if isinstance(content, list) else [content]
    return blocks


def count_input_tokens(body: dict[str, Any]) -> int:
    prompt = orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")])
    return max(1, math.ceil(len(prompt) / 4))


def build_message(body: dict[str, Any], prompt_cache: PromptCache) -> dict[str, Any]:
    # System text that stands between turns (Claude Code's per-turn control) is not the turn answered.
    last = next(m for m in reversed(body["messages"]) if m["role"] != "system")
    content = last["content"]
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    out: list[dict[str, Any]] = []
    if thinking_on(body):
        thought = f"The user wrote {len(_text_of(content).split())} words; I will answer plainly."
        if body["thinking"].get("display") == "omitted":
            thought = ""  # a signature-only block, as newer models send when the summary is omitted
        out.append(
            {
                "type": "thinking",
                "thinking": thought,
                "signature": thinking_signature(thought),
            }
        )
    results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
    last_text = _user_words(content)
    calls = [] if results or last["role"] != "user" else _tool_calls(body, last_text)
    stop_reason, stop_sequence = "end_turn", None
    answer_format = (body.get("output_config") or {}).get("format")
    if results:
        text = "Tool results: " + "; ".join(_tool_result_text(b) for b in results)
    elif isinstance(answer_format, dict) and answer_format.get("type") == "json_schema":
        text = orjson.dumps(_value_for(answer_format.get("schema"))).decode()  # structured outputs: JSON only
    else:
        images = sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "image")
        text = f"You said: {last_text}" + (f" (with {images} image{'s' if images > 1 else ''})" if images else "")
    searched = _web_search(body, last_text) if not results and last["role"] == "user" else []
    if searched:
        out += searched
        text, calls = "", []
    if calls:
        stop_reason = "tool_use"
        text = "Let me use a tool." if (body.get("tool_choice") or {"type": "auto"})["type"] == "auto" else ""
    for seq in body.get("stop_sequences") or []:
        at = text.find(seq)
        if at >= 0 and not calls:
            text, stop_reason, stop_sequence = text[:at], "stop_sequence", seq
    words = text.split(" ") if text else []
    if len(words) > body["max_tokens"]:
        words, stop_reason, calls = words[: body["max_tokens"]], "max_tokens", []
        text = " ".join(words)
    if text:
        out.append({"type": "text", "text": text})
    out.extend(calls)
    input_tokens, cache_read, cache_creation = _input_usage(body, prompt_cache)
    usage_extra = {"server_tool_use": {"web_search_requests": 1}} if searched else {}
    output_tokens = (
        len(words)
        + sum(len(orjson.dumps(c["input"])) // 4 + 1 for c in calls)
        + (10 if out and out[0]["type"] == "thinking" else 0)
    )
    return {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": out,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": cache_creation,
            "cache_read_input_tokens": cache_read,
            "output_tokens": output_tokens,
            **usage_extra,
        },
    }


def _input_usage(body: dict[str, Any], prompt_cache: PromptCache) -> tuple[int, int, int]:
    """(input after the last breakpoint, cache reads, cache writes), as Claude counts them.

    Each breakpoint writes the prompt up to it to this deployment's cache (for its TTL; a read
    refreshes it). A request reads the longest cached prefix that ends at a block boundary within
    20 blocks before one of its breakpoints (so a conversation's next turn reads what its last
    turn wrote); what lies between that and the last breakpoint is written. Tokens are the
    prompt's counted tokens in proportion to the bytes up to each boundary."""
    total = count_input_tokens(body)
    blocks = _prompt_blocks(body)
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    if not marked:
        return total, 0, 0
    digest = hashlib.sha256()
    sizes: list[int] = []
    prefixes: list[str] = []
    for block in blocks:
        # A block's cache_control marks where a prefix ends; it is not part of what is cached.
        content = {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block
        raw = orjson.dumps(content)
        digest.update(raw)
        sizes.append(len(raw) + (sizes[-1] if sizes else 0))
        prefixes.append(digest.copy().hexdigest())
    read_end = -1
    for mark in marked:
        for i in range(mark, max(-1, mark - _LOOKBACK_BLOCKS - 1), -1):
            if i > read_end and prompt_cache.has(prefixes[i]):
                read_end = i
                break
    for mark in marked:
        control = blocks[mark]["cache_control"]
        prompt_cache.write(
            prefixes[mark], 3600.0 if isinstance(control, dict) and control.get("ttl") == "1h" else 300.0
        )
    if read_end >= 0:
        prompt_cache.write(prefixes[read_end], 300.0)  # a read refreshes its entry

    def tokens(end: int) -> int:
        return total * sizes[end] // sizes[-1]

    cacheable = tokens(marked[-1])
    cache_read = tokens(read_end) if read_end >= 0 else 0
    return total - cacheable, cache_read, cacheable - cache_read


def _pieces(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


def stream_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Messages stream for a finished message, in the order the real API sends it."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "web_search_tool_result":
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        if kind == "text":
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            )
            for citation in block.get("citations", ()):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "citations_delta", "citation": citation},
                    },
                )
            words = block["text"].split(" ")
            for i, word in enumerate(words):
                piece = word if i == len(words) - 1 else word + " "
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
                )
        elif kind == "thinking":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
            )
            for piece in _pieces(block["thinking"], 16):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "thinking_delta", "thinking": piece},
                    },
                )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": block["signature"]},
                },
            )
        elif kind in ("tool_use", "server_tool_use"):
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": kind, "id": block["id"], "name": block["name"], "input": {}},
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": ""},
                },
            )
            for piece in _pieces(orjson.dumps(block["input"]).decode(), 7):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}
