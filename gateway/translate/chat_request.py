"""OpenAI Chat Completions request -> Anthropic Messages request. Pure: dict in, dict out.

Every value an OpenAI client can send is either mapped, ignored on purpose (listed in
`_IGNORED`), or refused with a 400 that names the parameter; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import echo, invalid_request

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

_ROLE_SYSTEM = frozenset({"system", "developer"})

# Accepted and deliberately without effect on Claude.
_IGNORED = frozenset(
    {
        "model",
        "seed",
        "store",
        "metadata",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "safety_identifier",
        "verbosity",
    }
)
_MAPPED = frozenset(
    {
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "thinking",
        "reasoning_effort",
        "n",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "presence_penalty",
        "frequency_penalty",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "functions",
        "function_call",
    }
)


@dataclass(frozen=True, slots=True)
class TranslatedRequest:
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    json_tool: str | None  # set when response_format is carried by a forced tool
    adjusted: tuple[str, ...] = ()  # what the gateway changed so Claude accepts the request (access log)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    # bool is an int subclass in Python, but JSON true is not a number.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise invalid_request(f"'{param}' must be {what}, got {_type_name(value)}", param)
    return value


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    _expect(value, (int, float), name, "a number")
    if not low <= value <= high:
        raise invalid_request(f"'{name}' must be between {low:g} and {high:g} for Claude, got {value}", name)
    return float(value) if isinstance(value, float) else value


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid_request("'n' must be 1: Claude returns one choice per request", "n")
    if body.get("logprobs"):
        raise invalid_request("'logprobs' is not supported by Claude", "logprobs")
    if body.get("top_logprobs") is not None:
        raise invalid_request("'top_logprobs' is not supported by Claude", "top_logprobs")
    if body.get("logit_bias"):
        raise invalid_request("'logit_bias' is not supported by Claude", "logit_bias")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise invalid_request(f"'{name}' is not supported by Claude; omit it or send 0", name)
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise invalid_request("'modalities' supports only [\"text\"] with Claude", "modalities")
    for name in ("audio", "prediction", "web_search_options", "functions", "function_call"):
        if body.get(name) is not None:
            hint = "; use 'tools'" if name.startswith("function") else ""
            raise invalid_request(f"'{name}' is not supported by this gateway{hint}", name)
    for name in body:
        if name not in _MAPPED and name not in _IGNORED:
            raise invalid_request(f"Unrecognized request argument supplied: {echo(name)}", name)


def _text_of(content: Any, param: str) -> str:
    """Content that must be text: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    _expect(content, list, param, "a string or an array of text parts")
    texts = []
    for i, part in enumerate(content):
        _expect(part, dict, f"{param}[{i}]", "an object")
        if part.get("type") != "text":
            raise invalid_request(
                f"'{param}[{i}].type' must be 'text' here, got {part.get('type')!r}", f"{param}[{i}].type"
            )
        texts.append(_expect(part.get("text"), str, f"{param}[{i}].text", "a string"))
    return "\n".join(texts)


# Claude's limit on cache breakpoints in one request (tools, system and messages together).
MAX_CACHE_BREAKPOINTS = 4


def _cache_control(holder: Mapping[str, Any], param: str) -> dict[str, Any] | None:
    """A prompt-cache breakpoint, as LiteLLM and others accept it on OpenAI content parts, messages
    and tools: {"type": "ephemeral"} with an optional "ttl" of 5m or 1h. None when there is none."""
    cache = holder.get("cache_control")
    if cache is None:
        return None
    _expect(cache, dict, f"{param}.cache_control", 'an object like {"type": "ephemeral"}')
    if cache.get("type") != "ephemeral":
        raise invalid_request(f"'{param}.cache_control.type' must be 'ephemeral'", f"{param}.cache_control.type")
    out = {"type": "ephemeral"}
    ttl = cache.get("ttl")
    if ttl is not None:
        if ttl not in ("5m", "1h"):
            raise invalid_request(f"'{param}.cache_control.ttl' must be '5m' or '1h'", f"{param}.cache_control.ttl")
        out["ttl"] = ttl
    return out


def _mark(blocks: list[dict[str, Any]], cache: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A message-level cache_control marks the message's last block, where its prefix ends."""
    if cache is not None and blocks:
        blocks[-1]["cache_control"] = cache
    return blocks


def _image_block(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    image = _expect(part.get("image_url"), dict, f"{param}.image_url", "an object with 'url'")
    url = _expect(image.get("url"), str, f"{param}.image_url.url", "a string")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type.startswith("image/"):
            raise invalid_request(
                f"'{param}.image_url.url' must be a base64 data URL like data:image/png;base64,...",
                f"{param}.image_url.url",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith("https://"):
        # Passed on for Foundry to fetch: the gateway never downloads a URL a client names.
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid_request(f"'{param}.image_url.url' must be an https:// URL or a data: URL", f"{param}.image_url.url")


def _user_content(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    _expect(content, list, param, "a string or an array of content parts")
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        p = f"{param}[{i}]"
        _expect(part, dict, p, "an object")
        kind = part.get("type")
        if kind == "text":
            text = _expect(part.get("text"), str, f"{p}.text", "a string")
            if not text:
                continue
            block: dict[str, Any] = {"type": "text", "text": text}
        elif kind == "image_url":
            block = _image_block(part, p)
        else:
            raise invalid_request(f"'{p}.type' {kind!r} is not supported; use 'text' or 'image_url'", f"{p}.type")
        cache = _cache_control(part, p)
        if cache is not None:
            block["cache_control"] = cache
        blocks.append(block)
    return blocks


def _assistant_content(msg: Mapping[str, Any], param: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = msg.get("content")
    if content is not None:
        if isinstance(content, list):
            # Assistant parts are text or refusal; both are plain text to Claude.
            texts = []
            for i, part in enumerate(content):
                _expect(part, dict, f"{param}.content[{i}]", "an object")
                texts.append(part.get("text") if part.get("type") == "text" else part.get("refusal"))
                _expect(texts[-1], str, f"{param}.content[{i}]", "a text or refusal part")
            content = "".join(texts)
        text = _expect(content, str, f"{param}.content", "a string, an array or null")
        if text:
            blocks.append({"type": "text", "text": text})
    tool_calls = msg.get("tool_calls")
    if tool_calls is not None:
        _expect(tool_calls, list, f"{param}.tool_calls", "an array")
        for j, call in enumerate(tool_calls):
            p = f"{param}.tool_calls[{j}]"
            _expect(call, dict, p, "an object")
            fn = _expect(call.get("function"), dict, f"{p}.function", "an object")
            arguments = fn.get("arguments") or "{}"
            _expect(arguments, str, f"{p}.function.arguments", "a JSON string")
            try:
                tool_input = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                raise invalid_request(
                    f"'{p}.function.arguments' is not valid JSON", f"{p}.function.arguments"
                ) from None
            if not isinstance(tool_input, dict):
                raise invalid_request(f"'{p}.function.arguments' must encode a JSON object", f"{p}.function.arguments")
            blocks.append(
                {
                    "type": "tool_use",
                    "id": _expect(call.get("id"), str, f"{p}.id", "a string"),
                    "name": _expect(fn.get("name"), str, f"{p}.function.name", "a string"),
                    "input": tool_input,
                }
            )
    return blocks


def _tool_result(msg: Mapping[str, Any], param: str) -> dict[str, Any]:
    tool_call_id = _expect(msg.get("tool_call_id"), str, f"{param}.tool_call_id", "a string")
    return {
        "type": "tool_result",
        "tool_use_id": tool_call_id,
        "content": _text_of(msg.get("content", ""), f"{param}.content"),
    }


def translate_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (Anthropic system blocks, Anthropic messages).

    System and developer messages are hoisted into `system`; consecutive turns of one
    role (tool results and the user text after them, say) merge into one turn.
    """
    _expect(messages, list, "messages", "an array")
    if not messages:
        raise invalid_request("'messages' must contain at least one message", "messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        _expect(msg, dict, param, "an object")
        role = msg.get("role")
        cache = _cache_control(msg, param)
        if role in _ROLE_SYSTEM:
            text = _text_of(msg.get("content"), f"{param}.content")
            content = msg.get("content")
            parts = content if isinstance(content, list) else []
            # On the message or on any of its parts: the system block is one block either way.
            cache = cache or next((c for i, part in enumerate(parts)
                                   if (c := _cache_control(part, f"{param}.content[{i}]"))), None)  # fmt: skip
            if text:
                system.append(_mark([{"type": "text", "text": text}], cache)[0])
            continue
        if role == "user":
            anthropic_role, blocks = "user", _mark(_user_content(msg.get("content"), f"{param}.content"), cache)
        elif role == "assistant":
            anthropic_role, blocks = "assistant", _mark(_assistant_content(msg, param), cache)
        elif role == "tool":
            anthropic_role, blocks = "user", _mark([_tool_result(msg, param)], cache)
        else:
            raise invalid_request(
                f"'{param}.role' must be one of system, developer, user, assistant, tool; got {role!r}", f"{param}.role"
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == anthropic_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": anthropic_role, "content": blocks})
    if not turns:
        raise invalid_request("'messages' must contain at least one user or assistant message with content", "messages")
    for turn in turns:
        # Claude wants tool results before any other content in their turn.
        content = turn["content"]
        if turn["role"] == "user" and len(content) > 1:
            content.sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def _tools(tools: Any) -> list[dict[str, Any]]:
    _expect(tools, list, "tools", "an array")
    out = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        _expect(tool, dict, p, "an object")
        if tool.get("type") != "function":
            raise invalid_request(f"'{p}.type' must be 'function', got {tool.get('type')!r}", f"{p}.type")
        fn = _expect(tool.get("function"), dict, f"{p}.function", "an object")
        entry: dict[str, Any] = {
            "name": _expect(fn.get("name"), str, f"{p}.function.name", "a string"),
            "input_schema": _expect(
                fn.get("parameters") or {"type": "object", "properties": {}},
                dict,
                f"{p}.function.parameters",
                "an object",
            ),
        }
        if fn.get("description") is not None:
            entry["description"] = _expect(fn["description"], str, f"{p}.function.description", "a string")
        if fn.get("strict") is True:
            entry["strict"] = True  # the caller keeps it (native structured outputs) or says it is not enforced
        cache = _cache_control(tool, p) or _cache_control(fn, f"{p}.function")
        if cache is not None:
            entry["cache_control"] = cache
        out.append(entry)
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str):
        mapped = {"auto": "auto", "required": "any", "none": "none"}.get(choice)
        if mapped is None:
            raise invalid_request(
                f"'tool_choice' must be auto, required, none or a named function, got {echo(choice)}", "tool_choice"
            )
        return {"type": mapped}
    _expect(choice, dict, "tool_choice", "a string or an object")
    fn = choice.get("function")
    if choice.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise invalid_request(
            '\'tool_choice\' object must be {"type": "function", "function": {"name": ...}}', "tool_choice"
        )
    return {"type": "tool", "name": fn["name"]}


def _response_format(fmt: Any) -> dict[str, Any] | None:
    """The forced tool that carries a JSON answer, or None for plain text."""
    _expect(fmt, dict, "response_format", "an object")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {
            "name": JSON_TOOL_NAME,
            "description": "Give the answer as a JSON object.",
            "input_schema": {"type": "object", "additionalProperties": True},
        }
    if kind == "json_schema":
        spec = _expect(fmt.get("json_schema"), dict, "response_format.json_schema", "an object")
        schema = _expect(
            spec.get("schema", {"type": "object"}), dict, "response_format.json_schema.schema", "an object"
        )
        if schema.get("type") != "object":
            raise invalid_request(
                "'response_format.json_schema.schema' must describe an object (type: object) for Claude",
                "response_format.json_schema.schema",
            )
        tool: dict[str, Any] = {"name": JSON_TOOL_NAME, "input_schema": schema}
        description = (
            spec.get("description") or f"Give the answer as JSON matching the schema {spec.get('name', '')}".strip()
        )
        tool["description"] = description
        if spec.get("strict") is True:
            tool["strict_schema"] = schema  # the caller sends it natively, or says it is not enforced
        return tool
    raise invalid_request(
        f"'response_format.type' must be text, json_object or json_schema, got {kind!r}", "response_format.type"
    )


def _thinking(body: Mapping[str, Any]) -> dict[str, Any] | None:
    thinking = body.get("thinking")
    effort = body.get("reasoning_effort")
    if thinking is not None:
        _expect(thinking, dict, "thinking", 'an object like {"type": "enabled", "budget_tokens": 2048}')
        if thinking.get("type") == "enabled":
            _expect(thinking.get("budget_tokens"), int, "thinking.budget_tokens", "an integer")
        elif thinking.get("type") != "disabled":
            raise invalid_request("'thinking.type' must be enabled or disabled", "thinking.type")
        return dict(thinking)
    if effort is None or effort == "none":
        return None
    budget = REASONING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise invalid_request(
            f"'reasoning_effort' must be one of none, {', '.join(REASONING_BUDGETS)}; got {effort!r}",
            "reasoning_effort",
        )
    return {"type": "enabled", "budget_tokens": budget}


def _max_tokens(body: Mapping[str, Any], default: int | None, thinking: Mapping[str, Any] | None) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            value = int(_expect(value, int, name, "an integer"))
            if value < 1:
                raise invalid_request(f"'{name}' must be at least 1, got {value}", name)
            budget = thinking.get("budget_tokens") if thinking and thinking.get("type") == "enabled" else None
            if isinstance(budget, int) and value <= budget:
                raise invalid_request(
                    f"'{name}' ({value}) must be greater than the thinking budget ({budget} tokens)", name
                )
            return value
    if default is None:
        raise invalid_request("'max_completion_tokens' is required for this model", "max_completion_tokens")
    if thinking and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens", 0)
        if isinstance(budget, int) and default <= budget:
            # The route default was meant for the answer; thinking comes on top of it.
            return budget + default
    return default


def _stop_sequences(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    _expect(stop, list, "stop", "a string or an array of up to 4 strings")
    if len(stop) > 4:
        raise invalid_request("'stop' may hold at most 4 sequences", "stop")
    for i, item in enumerate(stop):
        _expect(item, str, f"stop[{i}]", "a string")
    return list(stop)


def chat_to_messages(
    body: Mapping[str, Any],
    *,
    max_tokens_default: int | None,
    auto_cache: bool = False,
    structured_outputs: bool = False,
) -> TranslatedRequest:
    """The Messages request body, without `model`: the caller adds the deployment it picks.

    `auto_cache` (a route's `cache_breakpoints: auto`) marks where the stable prefix ends, after
    the tools and after the system prompt, for a client that sets no breakpoint of its own.
    `structured_outputs` (every target serves Claude's native structured outputs) sends a
    json_schema response format as output_config.format and strict tools as strict; without it,
    the answer comes through a forced tool and strict is not enforced, and `adjusted` says so.
    """
    _refuse_unsupported(body)
    system, messages = translate_messages(body.get("messages"))
    thinking = _thinking(body)
    adjusted: tuple[str, ...] = ()
    if thinking is not None and thinking.get("type") == "enabled" and _continues_tool_use(messages):
        # With thinking on, Claude requires the turn whose tool calls this answers to open with the
        # signed thinking it gave; an OpenAI client has no way to send that back, so this turn goes
        # without thinking rather than to a certain 400. Stateless: any replica decides the same.
        thinking = None
        adjusted = ("thinking_off_for_tool_results",)
    out: dict[str, Any] = {
        "messages": messages,
        "max_tokens": _max_tokens(body, max_tokens_default, thinking),
    }
    if system:
        out["system"] = system
    if thinking is not None:
        out["thinking"] = thinking
    temperature = _number(body, "temperature", 0, 1)
    if temperature is not None:
        out["temperature"] = temperature
    top_p = _number(body, "top_p", 0, 1)
    if top_p is not None:
        out["top_p"] = top_p
    if body.get("stop") is not None:
        out["stop_sequences"] = _stop_sequences(body["stop"])
    user = body.get("user")
    if user is not None:
        out["metadata"] = {"user_id": _expect(user, str, "user", "a string")}

    tools = _tools(body["tools"]) if body.get("tools") is not None else []
    strict = [tool for tool in tools if tool.pop("strict", False)]
    if strict and structured_outputs:
        for tool in strict:
            tool["strict"] = True
    elif strict:
        adjusted += ("strict_not_enforced",)
    tool_choice = _tool_choice(body["tool_choice"]) if body.get("tool_choice") is not None else None
    json_tool = _response_format(body["response_format"]) if body.get("response_format") is not None else None
    if json_tool is not None and structured_outputs and json_tool.get("strict_schema") is not None:
        out["output_config"] = {"format": {"type": "json_schema", "schema": json_tool["strict_schema"]}}
        json_tool = None
    elif json_tool is not None and json_tool.pop("strict_schema", None) is not None:
        adjusted += ("json_schema_as_forced_tool",)
    if json_tool is not None:
        if thinking is not None and thinking.get("type") == "enabled":
            raise invalid_request(
                "'response_format' cannot be combined with thinking or reasoning_effort on Claude "
                "(it is carried by a forced tool call, which thinking does not allow)",
                "response_format",
            )
        tools.append(json_tool)
        tool_choice = {"type": "tool", "name": JSON_TOOL_NAME}
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        _expect(parallel, bool, "parallel_tool_calls", "a boolean")
    if tools:
        out["tools"] = tools
        if parallel is False and (tool_choice is None or tool_choice["type"] != "none"):
            tool_choice = {**(tool_choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if tool_choice is not None:
            out["tool_choice"] = tool_choice
    elif tool_choice is not None and tool_choice["type"] != "none":
        raise invalid_request("'tool_choice' needs 'tools'", "tool_choice")
    breakpoints = _breakpoints(out)
    if auto_cache and breakpoints == 0 and (out.get("tools") or out.get("system")):
        for blocks in (out.get("tools"), out.get("system")):
            if blocks:
                blocks[-1]["cache_control"] = {"type": "ephemeral"}
        adjusted += ("cache_breakpoints_added",)
    elif breakpoints > MAX_CACHE_BREAKPOINTS:
        raise invalid_request(
            f"{breakpoints} cache_control breakpoints; Claude takes at most {MAX_CACHE_BREAKPOINTS} per request",
            "messages",
        )

    stream = body.get("stream") or False
    _expect(stream, bool, "stream", "a boolean")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        _expect(options, dict, "stream_options", "an object")
        include_usage = bool(options.get("include_usage"))
    if stream:
        out["stream"] = True
    return TranslatedRequest(out, stream, include_usage, JSON_TOOL_NAME if json_tool is not None else None, adjusted)


def _breakpoints(body: Mapping[str, Any]) -> int:
    blocks = [*body.get("tools", ()), *body.get("system", ())]
    for turn in body["messages"]:
        blocks += turn["content"]
    return sum(1 for block in blocks if "cache_control" in block)


def _continues_tool_use(messages: list[dict[str, Any]]) -> bool:
    """The last message carries tool results for an assistant turn's tool calls."""
    if not messages or messages[-1]["role"] != "user":
        return False
    content = messages[-1]["content"]
    return isinstance(content, list) and any(block.get("type") == "tool_result" for block in content)
