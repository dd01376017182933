"""The parts of a Messages API request that every OpenAI dialect builds the same way. Pure.

The Chat Completions and Responses translators differ in how a request is spelled; what it
becomes for Claude (thinking from a reasoning effort, max_tokens against the thinking budget,
tools with a JSON-answer tool when structured outputs are not served, cache breakpoints) is
decided once, here, so both dialects answer the same request the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import invalid_request

# The forced tool that carries response_format: Foundry's Azure-hosted Claude deployments
# reject native structured outputs, so JSON answers come back as this tool's input.
JSON_TOOL_NAME = "json_response"

# reasoning_effort -> thinking budget (Anthropic's minimum budget is 1024 tokens).
REASONING_BUDGETS: Mapping[str, int] = {
    "minimal": 1024,
    "low": 1024,
    "medium": 2048,
    "high": 4096,
    "xhigh": 8192,
    "max": 16384,
}


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    # bool is an int subclass in Python, but JSON true is not a number.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise invalid_request(f"'{param}' must be {what}, got {type_name(value)}", param)
    return value


def number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    expect(value, (int, float), name, "a number")
    if not low <= value <= high:
        raise invalid_request(f"'{name}' must be between {low:g} and {high:g} for Claude, got {value}", name)
    return float(value) if isinstance(value, float) else value


# Claude's limit on cache breakpoints in one request (tools, system and messages together).
MAX_CACHE_BREAKPOINTS = 4


def cache_control(holder: Mapping[str, Any], param: str) -> dict[str, Any] | None:
    """A prompt-cache breakpoint, as LiteLLM and others accept it on OpenAI content parts, messages
    and tools: {"type": "ephemeral"} with an optional "ttl" of 5m or 1h. None when there is none."""
    cache = holder.get("cache_control")
    if cache is None:
        return None
    expect(cache, dict, f"{param}.cache_control", 'an object like {"type": "ephemeral"}')
    if cache.get("type") != "ephemeral":
        raise invalid_request(f"'{param}.cache_control.type' must be 'ephemeral'", f"{param}.cache_control.type")
    out = {"type": "ephemeral"}
    ttl = cache.get("ttl")
    if ttl is not None:
        if ttl not in ("5m", "1h"):
            raise invalid_request(f"'{param}.cache_control.ttl' must be '5m' or '1h'", f"{param}.cache_control.ttl")
        out["ttl"] = ttl
    return out


def data_url(url: str, param: str, example: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a base64 data URL; None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise invalid_request(f"'{param}' must be a base64 data URL like data:{example};base64,...", param)
    return media_type, data


def image_block(url: str, param: str) -> dict[str, Any]:
    """An image the client sent as a URL (`param` names where): a data URL's bytes, or an https://
    URL passed on for Foundry to fetch; the gateway never downloads a URL a client names."""
    data = data_url(url, param, "image/png")
    if data is not None:
        if not data[0].startswith("image/"):
            raise invalid_request(f"'{param}' must be a base64 data URL like data:image/png;base64,...", param)
        return {"type": "image", "source": {"type": "base64", "media_type": data[0], "data": data[1]}}
    if url.startswith("https://"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid_request(f"'{param}' must be an https:// URL or a data: URL", param)


def mark(blocks: list[dict[str, Any]], cache: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A message-level cache_control marks the message's last block, where its prefix ends."""
    if cache is not None and blocks:
        blocks[-1]["cache_control"] = cache
    return blocks


def breakpoints(body: Mapping[str, Any]) -> int:
    blocks = [*body.get("tools", ()), *body.get("system", ())]
    for turn in body["messages"]:
        blocks += turn["content"]
    return sum(1 for block in blocks if "cache_control" in block)


def continues_tool_use(messages: list[dict[str, Any]]) -> bool:
    """The last message carries tool results for an assistant turn's tool calls."""
    if not messages or messages[-1]["role"] != "user":
        return False
    content = messages[-1]["content"]
    return isinstance(content, list) and any(block.get("type") == "tool_result" for block in content)


_THINKING_BLOCKS = ("thinking", "redacted_thinking")


def thinking_for_turn(
    thinking: dict[str, Any] | None, messages: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """The thinking setting Claude will accept for this turn, and what was adjusted to get it.

    With thinking on, Claude requires the assistant turn whose tool calls this turn answers to
    open with the signed thinking it gave. A client that could not send it back (Chat Completions
    has no place for it; a Responses reasoning item the gateway cannot open) gets this turn
    without thinking rather than a certain 400. Stateless: any replica decides the same.
    """
    if thinking is None or thinking.get("type") != "enabled" or not continues_tool_use(messages):
        return thinking, ()
    answered = messages[-2]["content"] if len(messages) > 1 and messages[-2]["role"] == "assistant" else []
    if answered and answered[0].get("type") in _THINKING_BLOCKS:
        return thinking, ()
    return None, ("thinking_off_for_tool_results",)


def thinking_for_effort(effort: Any, param: str) -> dict[str, Any] | None:
    """A reasoning effort (OpenAI's names) as a Claude thinking budget; None for none or unset."""
    if effort is None or effort == "none":
        return None
    budget = REASONING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise invalid_request(f"'{param}' must be one of none, {', '.join(REASONING_BUDGETS)}; got {effort!r}", param)
    return {"type": "enabled", "budget_tokens": budget}


def max_tokens(value: Any, param: str, default: int | None, thinking: Mapping[str, Any] | None) -> int:
    """Claude's max_tokens from the client's limit (`value`, None when unset) or the route's default."""
    budget = thinking.get("budget_tokens") if thinking and thinking.get("type") == "enabled" else None
    if value is not None:
        limit = int(expect(value, int, param, "an integer"))
        if limit < 1:
            raise invalid_request(f"'{param}' must be at least 1, got {limit}", param)
        if isinstance(budget, int) and limit <= budget:
            raise invalid_request(
                f"'{param}' ({limit}) must be greater than the thinking budget ({budget} tokens)", param
            )
        return limit
    if default is None:
        raise invalid_request(f"'{param}' is required for this model", param)
    if isinstance(budget, int) and default <= budget:
        # The route default was meant for the answer; thinking comes on top of it.
        return int(budget) + default
    return default


def json_answer_tool(kind: Any, spec: Mapping[str, Any], param: str) -> dict[str, Any] | None:
    """The forced tool that carries a JSON answer (`kind` json_object or json_schema, `spec` holding
    the schema's name, schema, description and strict), or None for plain text."""
    if kind == "text":
        return None
    if kind == "json_object":
        return {
            "name": JSON_TOOL_NAME,
            "description": "Give the answer as a JSON object.",
            "input_schema": {"type": "object", "additionalProperties": True},
        }
    if kind == "json_schema":
        schema = expect(spec.get("schema", {"type": "object"}), dict, f"{param}.schema", "an object")
        if schema.get("type") != "object":
            raise invalid_request(
                f"'{param}.schema' must describe an object (type: object) for Claude", f"{param}.schema"
            )
        name = spec.get("name", "")
        tool: dict[str, Any] = {
            "name": JSON_TOOL_NAME,
            "input_schema": schema,
            "description": spec.get("description") or f"Give the answer as JSON matching the schema {name}".strip(),
        }
        if spec.get("strict") is True:
            tool["strict_schema"] = schema  # sent natively, or said not to be enforced (Tooling.apply)
        return tool
    param = param.removesuffix(".json_schema")
    raise invalid_request(f"'{param}.type' must be text, json_object or json_schema, got {kind!r}", f"{param}.type")


@dataclass(slots=True)
class Tooling:
    """A request's tools as Claude takes them: function tools (`strict` kept where the caller
    asked), the tool choice, the JSON-answer tool of a response format, and parallel calls."""

    tools: list[dict[str, Any]]
    choice: dict[str, Any] | None
    json_tool: dict[str, Any] | None
    parallel: Any
    format_param: str  # where the client asked for JSON: response_format, text.format

    def apply(
        self, out: dict[str, Any], thinking: Mapping[str, Any] | None, *, structured_outputs: bool
    ) -> tuple[str | None, tuple[str, ...]]:
        """Put the tools into `out`; returns the JSON-answer tool's name (None when the answer is
        plain or native structured output) and what was adjusted.

        `structured_outputs` (every target serves Claude's native structured outputs): a strict
        json_schema goes as output_config.format and strict tools stay strict. Without it the
        answer comes through a forced tool and strict is not enforced, which `adjusted` says."""
        tools, choice, json_tool = self.tools, self.choice, self.json_tool
        adjusted: tuple[str, ...] = ()
        strict = [tool for tool in tools if tool.pop("strict", False)]
        if strict and structured_outputs:
            for tool in strict:
                tool["strict"] = True
        elif strict:
            adjusted += ("strict_not_enforced",)
        if json_tool is not None and structured_outputs and json_tool.get("strict_schema") is not None:
            out["output_config"] = {"format": {"type": "json_schema", "schema": json_tool["strict_schema"]}}
            json_tool = None
        elif json_tool is not None and json_tool.pop("strict_schema", None) is not None:
            adjusted += ("json_schema_as_forced_tool",)
        if json_tool is not None:
            if thinking is not None and thinking.get("type") == "enabled":
                raise invalid_request(
                    f"'{self.format_param}' cannot be combined with thinking or a reasoning effort on Claude "
                    "(it is carried by a forced tool call, which thinking does not allow)",
                    self.format_param,
                )
            tools = [*tools, json_tool]
            choice = {"type": "tool", "name": JSON_TOOL_NAME}
        if self.parallel is not None:
            expect(self.parallel, bool, "parallel_tool_calls", "a boolean")
        if tools:
            out["tools"] = tools
            if self.parallel is False and (choice is None or choice["type"] != "none"):
                choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
            if choice is not None:
                out["tool_choice"] = choice
        elif choice is not None and choice["type"] != "none":
            raise invalid_request("'tool_choice' needs 'tools'", "tool_choice")
        return (JSON_TOOL_NAME if json_tool is not None else None), adjusted


def place_cache_breakpoints(out: dict[str, Any], auto_cache: bool) -> tuple[str, ...]:
    """With a route's `cache_breakpoints: auto` and none set by the client: one after the tools and
    one after the system prompt, where the stable prefix ends. Refuses more than Claude takes."""
    count = breakpoints(out)
    if auto_cache and count == 0 and (out.get("tools") or out.get("system")):
        for blocks in (out.get("tools"), out.get("system")):
            if blocks:
                blocks[-1]["cache_control"] = {"type": "ephemeral"}
        return ("cache_breakpoints_added",)
    if count > MAX_CACHE_BREAKPOINTS:
        raise invalid_request(
            f"{count} cache_control breakpoints; Claude takes at most {MAX_CACHE_BREAKPOINTS} per request", "messages"
        )
    return ()
