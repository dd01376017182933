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
from gateway.translate.openai_common import (
    Tooling,
    cache_control,
    expect,
    image_block,
    json_answer_tool,
    mark,
    max_tokens,
    number,
    place_cache_breakpoints,
    thinking_for_effort,
    thinking_for_turn,
)

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
    expect(content, list, param, "a string or an array of text parts")
    texts = []
    for i, part in enumerate(content):
        expect(part, dict, f"{param}[{i}]", "an object")
        if part.get("type") != "text":
            raise invalid_request(
                f"'{param}[{i}].type' must be 'text' here, got {part.get('type')!r}", f"{param}[{i}].type"
            )
        texts.append(expect(part.get("text"), str, f"{param}[{i}].text", "a string"))
    return "\n".join(texts)


def _image_block(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    image = expect(part.get("image_url"), dict, f"{param}.image_url", "an object with 'url'")
    return image_block(expect(image.get("url"), str, f"{param}.image_url.url", "a string"), f"{param}.image_url.url")


def _user_content(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    expect(content, list, param, "a string or an array of content parts")
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        p = f"{param}[{i}]"
        expect(part, dict, p, "an object")
        kind = part.get("type")
        if kind == "text":
            text = expect(part.get("text"), str, f"{p}.text", "a string")
            if not text:
                continue
            block: dict[str, Any] = {"type": "text", "text": text}
        elif kind == "image_url":
            block = _image_block(part, p)
        else:
            raise invalid_request(f"'{p}.type' {kind!r} is not supported; use 'text' or 'image_url'", f"{p}.type")
        cache = cache_control(part, p)
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
                expect(part, dict, f"{param}.content[{i}]", "an object")
                texts.append(part.get("text") if part.get("type") == "text" else part.get("refusal"))
                expect(texts[-1], str, f"{param}.content[{i}]", "a text or refusal part")
            content = "".join(texts)
        text = expect(content, str, f"{param}.content", "a string, an array or null")
        if text:
            blocks.append({"type": "text", "text": text})
    tool_calls = msg.get("tool_calls")
    if tool_calls is not None:
        expect(tool_calls, list, f"{param}.tool_calls", "an array")
        for j, call in enumerate(tool_calls):
            p = f"{param}.tool_calls[{j}]"
            expect(call, dict, p, "an object")
            fn = expect(call.get("function"), dict, f"{p}.function", "an object")
            arguments = fn.get("arguments") or "{}"
            expect(arguments, str, f"{p}.function.arguments", "a JSON string")
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
                    "id": expect(call.get("id"), str, f"{p}.id", "a string"),
                    "name": expect(fn.get("name"), str, f"{p}.function.name", "a string"),
                    "input": tool_input,
                }
            )
    return blocks


def _tool_result(msg: Mapping[str, Any], param: str) -> dict[str, Any]:
    tool_call_id = expect(msg.get("tool_call_id"), str, f"{param}.tool_call_id", "a string")
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
    expect(messages, list, "messages", "an array")
    if not messages:
        raise invalid_request("'messages' must contain at least one message", "messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        expect(msg, dict, param, "an object")
        role = msg.get("role")
        cache = cache_control(msg, param)
        if role in _ROLE_SYSTEM:
            text = _text_of(msg.get("content"), f"{param}.content")
            content = msg.get("content")
            parts = content if isinstance(content, list) else []
            # On the message or on any of its parts: the system block is one block either way.
            cache = cache or next((c for i, part in enumerate(parts)
                                   if (c := cache_control(part, f"{param}.content[{i}]"))), None)  # fmt: skip
            if text:
                system.append(mark([{"type": "text", "text": text}], cache)[0])
            continue
        if role == "user":
            anthropic_role, blocks = "user", mark(_user_content(msg.get("content"), f"{param}.content"), cache)
        elif role == "assistant":
            anthropic_role, blocks = "assistant", mark(_assistant_content(msg, param), cache)
        elif role == "tool":
            anthropic_role, blocks = "user", mark([_tool_result(msg, param)], cache)
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
    expect(tools, list, "tools", "an array")
    out = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        expect(tool, dict, p, "an object")
        if tool.get("type") != "function":
            raise invalid_request(f"'{p}.type' must be 'function', got {tool.get('type')!r}", f"{p}.type")
        fn = expect(tool.get("function"), dict, f"{p}.function", "an object")
        entry: dict[str, Any] = {
            "name": expect(fn.get("name"), str, f"{p}.function.name", "a string"),
            "input_schema": expect(
                fn.get("parameters") or {"type": "object", "properties": {}},
                dict,
                f"{p}.function.parameters",
                "an object",
            ),
        }
        if fn.get("description") is not None:
            entry["description"] = expect(fn["description"], str, f"{p}.function.description", "a string")
        if fn.get("strict") is True:
            entry["strict"] = True  # the caller keeps it (native structured outputs) or says it is not enforced
        cache = cache_control(tool, p) or cache_control(fn, f"{p}.function")
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
    expect(choice, dict, "tool_choice", "a string or an object")
    fn = choice.get("function")
    if choice.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise invalid_request(
            '\'tool_choice\' object must be {"type": "function", "function": {"name": ...}}', "tool_choice"
        )
    return {"type": "tool", "name": fn["name"]}


def _response_format(fmt: Any) -> dict[str, Any] | None:
    """The forced tool that carries a JSON answer, or None for plain text."""
    expect(fmt, dict, "response_format", "an object")
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = expect(fmt.get("json_schema"), dict, "response_format.json_schema", "an object")
        return json_answer_tool("json_schema", spec, "response_format.json_schema")
    return json_answer_tool(kind, {}, "response_format")


def _thinking(body: Mapping[str, Any]) -> dict[str, Any] | None:
    thinking = body.get("thinking")
    effort = body.get("reasoning_effort")
    if thinking is not None:
        expect(thinking, dict, "thinking", 'an object like {"type": "enabled", "budget_tokens": 2048}')
        if thinking.get("type") == "enabled":
            expect(thinking.get("budget_tokens"), int, "thinking.budget_tokens", "an integer")
        elif thinking.get("type") != "disabled":
            raise invalid_request("'thinking.type' must be enabled or disabled", "thinking.type")
        return dict(thinking)
    return thinking_for_effort(effort, "reasoning_effort")


def _max_tokens(body: Mapping[str, Any], default: int | None, thinking: Mapping[str, Any] | None) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            return max_tokens(body[name], name, default, thinking)
    return max_tokens(None, "max_completion_tokens", default, thinking)


def _stop_sequences(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    expect(stop, list, "stop", "a string or an array of up to 4 strings")
    if len(stop) > 4:
        raise invalid_request("'stop' may hold at most 4 sequences", "stop")
    for i, item in enumerate(stop):
        expect(item, str, f"stop[{i}]", "a string")
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
    thinking, adjusted = thinking_for_turn(_thinking(body), messages)
    out: dict[str, Any] = {
        "messages": messages,
        "max_tokens": _max_tokens(body, max_tokens_default, thinking),
    }
    if system:
        out["system"] = system
    if thinking is not None:
        out["thinking"] = thinking
    temperature = number(body, "temperature", 0, 1)
    if temperature is not None:
        out["temperature"] = temperature
    top_p = number(body, "top_p", 0, 1)
    if top_p is not None:
        out["top_p"] = top_p
    if body.get("stop") is not None:
        out["stop_sequences"] = _stop_sequences(body["stop"])
    user = body.get("user")
    if user is not None:
        out["metadata"] = {"user_id": expect(user, str, "user", "a string")}
    tooling = Tooling(
        tools=_tools(body["tools"]) if body.get("tools") is not None else [],
        choice=_tool_choice(body["tool_choice"]) if body.get("tool_choice") is not None else None,
        json_tool=_response_format(body["response_format"]) if body.get("response_format") is not None else None,
        parallel=body.get("parallel_tool_calls"),
        format_param="response_format",
    )
    json_tool, tool_adjustments = tooling.apply(out, thinking, structured_outputs=structured_outputs)
    adjusted += tool_adjustments + place_cache_breakpoints(out, auto_cache)

    stream = body.get("stream") or False
    expect(stream, bool, "stream", "a boolean")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        expect(options, dict, "stream_options", "an object")
        include_usage = bool(options.get("include_usage"))
    if stream:
        out["stream"] = True
    return TranslatedRequest(out, stream, include_usage, json_tool, adjusted)
