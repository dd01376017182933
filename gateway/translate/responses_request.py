"""OpenAI Responses request -> Anthropic Messages request. Pure: dict in, dict out.

Every parameter is mapped, accepted on purpose without effect (`_IGNORED`), or refused with a
400 that names it. Reasoning items a client sends back are opened with the gateway's seal
(`open_reasoning`) into the thinking blocks Claude signed; one that does not open counts as a
turn without thinking (messages_request.thinking_for_turn), never as a failed request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import echo, invalid_request
from gateway.translate.openai_common import (
    Tooling,
    data_url,
    expect,
    image_block,
    json_answer_tool,
    max_tokens,
    number,
    place_cache_breakpoints,
    thinking_for_effort,
    thinking_for_turn,
)

OpenReasoning = Callable[[Any], dict[str, Any] | None]

_IGNORED = frozenset(
    {"model", "store", "metadata", "service_tier", "prompt_cache_key", "prompt_cache_retention", "stream_options"}
)
# Accepted as OpenAI accepts them, with no Claude meaning: without effect, and said so in the access log
# (`adjusted`). Codex CLI sends client_metadata (its installation, session and turn ids) on every request.
_NO_EFFECT = frozenset({"client_metadata", "prompt_cache_options"})
_MAPPED = frozenset(
    {
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "text",
        "user",
        "safety_identifier",
        "stream",
        "include",
        "truncation",
    }
)
# What needs responses the gateway has kept, which it does not keep without a store.
_STATEFUL = ("previous_response_id", "conversation", "background")
_INCLUDABLE = frozenset({"reasoning.encrypted_content"})  # sent every time, asked for or not
_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class TranslatedResponsesRequest:
    body: dict[str, Any]
    stream: bool
    json_tool: str | None  # set when text.format is carried by a forced tool
    echo: dict[str, Any]  # the request's settings as every response object repeats them
    adjusted: tuple[str, ...] = ()
    namespaced: Mapping[str, tuple[str, str]] | None = None  # flat tool name -> (namespace, name)


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    if body.get("previous_response_id") is not None:
        raise invalid_request(
            "'previous_response_id' needs stored responses, and this gateway keeps none (responses.store_ttl_seconds "
            "with state.redis): send the conversation's items in 'input' instead ('store': false, as stateless "
            "clients do)",
            "previous_response_id",
        )
    for name in ("conversation", "background"):
        if body.get(name) not in (None, False):
            raise invalid_request(
                f"'{name}' is not served by this gateway: send the conversation's items in 'input' (or chain "
                "with previous_response_id where responses are stored), and read the answer as it streams",
                name,
            )
    truncation = body.get("truncation")
    if truncation not in (None, "disabled"):
        raise invalid_request("'truncation' must be 'disabled': Claude does not truncate a conversation", "truncation")
    include = body.get("include")
    if include is not None:
        for i, value in enumerate(expect(include, list, "include", "an array")):
            if value not in _INCLUDABLE:
                raise invalid_request(f"'include[{i}]' {echo(value)} is not served by this gateway", f"include[{i}]")
    for name in ("max_tool_calls", "top_logprobs", "prompt", "context_management"):
        if body.get(name) is not None:
            raise invalid_request(f"'{name}' is not supported by Claude", name)
    for name in body:
        if name not in _MAPPED and name not in _IGNORED and name not in _STATEFUL and name not in _NO_EFFECT:
            raise invalid_request(f"Unrecognized request argument supplied: {echo(name)}", name)


def _image(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    if part.get("file_id") is not None:
        raise invalid_request(f"'{param}.file_id' needs the Files API, which Claude on Foundry does not serve", param)
    url = expect(part.get("image_url"), str, f"{param}.image_url", "a string (an https:// or data: URL)")
    return image_block(url, f"{param}.image_url")


def _file(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    if part.get("file_id") is not None or part.get("file_url") is not None:
        raise invalid_request(
            f"'{param}': send the file as file_data (a base64 PDF); file ids and URLs are not served", param
        )
    file_data = expect(part.get("file_data"), str, f"{param}.file_data", "a string (a base64 PDF, or its data URL)")
    data = data_url(file_data, f"{param}.file_data", "application/pdf")
    media_type, encoded = data if data is not None else ("application/pdf", file_data)
    if media_type != "application/pdf":
        raise invalid_request(f"'{param}.file_data' must be a PDF, got {echo(media_type)}", f"{param}.file_data")
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": encoded},
    }
    if isinstance(part.get("filename"), str):
        block["title"] = part["filename"]
    return block


def _content(content: Any, param: str, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    expect(content, list, param, "a string or an array of content parts")
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        p = f"{param}[{i}]"
        expect(part, dict, p, "an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text") or (kind == "refusal" and role == "assistant"):
            text = expect(part.get("refusal" if kind == "refusal" else "text"), str, f"{p}.text", "a string")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "input_image" and role == "user":
            blocks.append(_image(part, p))
        elif kind == "input_file" and role == "user":
            blocks.append(_file(part, p))
        else:
            raise invalid_request(f"'{p}.type' {echo(kind)} is not supported in a {role} message", f"{p}.type")
    return blocks


def _arguments(item: Mapping[str, Any], param: str) -> dict[str, Any]:
    arguments = expect(item.get("arguments") or "{}", str, f"{param}.arguments", "a JSON string")
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise invalid_request(f"'{param}.arguments' is not valid JSON", f"{param}.arguments") from None
    if not isinstance(value, dict):
        raise invalid_request(f"'{param}.arguments' must encode a JSON object", f"{param}.arguments")
    return value


def _output(item: Mapping[str, Any], param: str) -> str | list[dict[str, Any]]:
    output = item.get("output", "")
    if isinstance(output, str):
        return output
    return _content(output, f"{param}.output", "user")


def _items(items: Any, open_reasoning: OpenReasoning) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    """Input items -> (system blocks, Claude turns). Consecutive items of one role share a turn:
    a reasoning item, the message and the function calls after it are one assistant turn."""
    system: list[dict[str, Any]] = []
    turns: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(items):
        p = f"input[{i}]"
        expect(item, dict, p, "an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in _SYSTEM_ROLES:
                system += _content(item.get("content"), f"{p}.content", "user")
                continue
            if role not in ("user", "assistant"):
                raise invalid_request(
                    f"'{p}.role' must be user, assistant, system or developer; got {echo(role)}", f"{p}.role"
                )
            turns += [(role, block) for block in _content(item.get("content"), f"{p}.content", role)]
        elif kind == "function_call":
            name = expect(item.get("name"), str, f"{p}.name", "a string")
            namespace = item.get("namespace")
            if namespace is not None:
                name = flat_name(expect(namespace, str, f"{p}.namespace", "a string"), name)
            block = {
                "type": "tool_use",
                "id": expect(item.get("call_id"), str, f"{p}.call_id", "a string"),
                "name": name,
                "input": _arguments(item, p),
            }
            turns.append(("assistant", block))
        elif kind == "web_search_call":
            # A search Claude ran: its results came encrypted and are not in the item, and Claude needs
            # none of it to go on (the answer that cited them is in the message that follows).
            continue
        elif kind == "function_call_output":
            call_id = expect(item.get("call_id"), str, f"{p}.call_id", "a string")
            turns.append(("user", {"type": "tool_result", "tool_use_id": call_id, "content": _output(item, p)}))
        elif kind == "reasoning":
            thinking = open_reasoning(item.get("encrypted_content"))
            if thinking is not None and thinking.get("type") in ("thinking", "redacted_thinking"):
                turns.append(("assistant", thinking))
            # Otherwise not the gateway's, or tampered: the turn goes on without it.
        elif kind == "item_reference":
            raise invalid_request(
                f"'{p}' refers to an earlier item by id, which needs stored responses, and this gateway keeps "
                "none (responses.store_ttl_seconds with state.redis): send the item itself (clients do with "
                "'store': false; the AI SDK with providerOptions.openai.store = false)",
                f"{p}.type",
            )
        else:
            raise invalid_request(
                f"'{p}.type' {echo(kind)} is not served by this gateway: input items are messages, "
                "function_call, function_call_output, reasoning and web_search_call",
                f"{p}.type",
            )
    return system, turns


def _messages(turns: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for role, block in turns:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].append(block)
        else:
            messages.append({"role": role, "content": [block]})
    for message in messages:
        content = message["content"]
        if message["role"] == "user":
            content.sort(key=lambda block: block["type"] != "tool_result")  # Claude wants results first
        else:
            # A thinking block opens its turn, as Claude gave it; one that comes late (an item
            # order a client changed) is moved up rather than refused.
            content.sort(key=lambda block: block["type"] not in ("thinking", "redacted_thinking"))
    if not messages:
        raise invalid_request("'input' must contain at least one message with content", "input")
    return messages


_BUILT_IN = "file search, code interpreter, computer use, image generation, MCP and shell tools"
# OpenAI's web search tool types; each is served by Claude's web search (its 2025-03-05 version, which
# both of Foundry's hosting options serve) where the route's deployments have it.
_WEB_SEARCH = frozenset({"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"})
WEB_SEARCH_TOOL = "web_search_20250305"
# Between a namespace and its function's name in the flat name Claude sees: multi_agent_v1__spawn_agent.
NAMESPACE_SEPARATOR = "__"


def flat_name(namespace: str, name: str) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def _function(tool: Mapping[str, Any], p: str, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "input_schema": expect(
            tool.get("parameters") or {"type": "object", "properties": {}}, dict, f"{p}.parameters", "an object"
        ),
    }
    if tool.get("description") is not None:
        entry["description"] = expect(tool["description"], str, f"{p}.description", "a string")
    if tool.get("strict") is True:
        entry["strict"] = True
    return entry


def _web_search(tool: Mapping[str, Any], p: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    entry: dict[str, Any] = {"type": WEB_SEARCH_TOOL, "name": "web_search"}
    filters = tool.get("filters")
    if filters is not None:
        domains = expect(filters, dict, f"{p}.filters", "an object").get("allowed_domains")
        if domains is not None:
            entry["allowed_domains"] = expect(domains, list, f"{p}.filters.allowed_domains", "an array")
    location = tool.get("user_location")
    if location is not None:
        expect(location, dict, f"{p}.user_location", "an object")
        fields = ("city", "region", "country", "timezone")
        entry["user_location"] = {"type": "approximate", **{k: location[k] for k in fields if location.get(k)}}
    # Claude's search has no cache-only mode and no context size: it searches live, which the log says.
    adjusted = ("web_search_external_access",) if tool.get("external_web_access") is False else ()
    return entry, adjusted


def _tools(tools: Any) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]], tuple[str, ...]]:
    """Claude's tools; the flat names of namespaced functions -> (namespace, name); what was adjusted."""
    out: list[dict[str, Any]] = []
    namespaced: dict[str, tuple[str, str]] = {}
    adjusted: tuple[str, ...] = ()
    for i, tool in enumerate(expect(tools, list, "tools", "an array")):
        p = f"tools[{i}]"
        expect(tool, dict, p, "an object")
        kind = tool.get("type")
        if kind == "function":
            out.append(_function(tool, p, expect(tool.get("name"), str, f"{p}.name", "a string")))
        elif kind == "namespace":
            namespace = expect(tool.get("name"), str, f"{p}.name", "a string")
            for j, inner in enumerate(expect(tool.get("tools"), list, f"{p}.tools", "an array")):
                q = f"{p}.tools[{j}]"
                expect(inner, dict, q, "an object")
                if inner.get("type") != "function":
                    raise invalid_request(f"'{q}.type' {echo(inner.get('type'))} must be function", f"{q}.type")
                name = expect(inner.get("name"), str, f"{q}.name", "a string")
                flat = flat_name(namespace, name)
                namespaced[flat] = (namespace, name)
                out.append(_function(inner, q, flat))
        elif kind in _WEB_SEARCH:
            entry, said = _web_search(tool, p)
            out.append(entry)
            adjusted += said
        else:
            raise invalid_request(
                f"'{p}.type' {echo(kind)} is a built-in tool this gateway cannot serve ({_BUILT_IN} are not "
                "available); use function tools",
                f"{p}.type",
            )
    names = [t["name"] for t in out]
    if len(set(names)) != len(names):
        repeated = next(n for n in names if names.count(n) > 1)
        raise invalid_request(
            f"'tools' name {echo(repeated)} twice (a namespace's functions are named <namespace>__<name> for Claude)",
            "tools",
        )
    return out, namespaced, adjusted


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in ("auto", "required", "none"):
        return {"type": {"required": "any"}.get(choice, choice)}
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        namespace = choice.get("namespace")
        name = flat_name(namespace, choice["name"]) if isinstance(namespace, str) else choice["name"]
        return {"type": "tool", "name": name}
    raise invalid_request(
        '\'tool_choice\' must be auto, required, none or {"type": "function", "name": ...}', "tool_choice"
    )


def _text_format(text: Any) -> dict[str, Any] | None:
    expect(text, dict, "text", "an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    expect(fmt, dict, "text.format", "an object")
    return json_answer_tool(fmt.get("type"), fmt, "text.format")


def _thinking(reasoning: Any) -> dict[str, Any] | None:
    if reasoning is None:
        return None
    expect(reasoning, dict, "reasoning", "an object")
    return thinking_for_effort(reasoning.get("effort"), "reasoning.effort")


def responses_to_messages(
    body: Mapping[str, Any],
    *,
    max_tokens_default: int | None,
    open_reasoning: OpenReasoning,
    auto_cache: bool = False,
    structured_outputs: bool = False,
) -> TranslatedResponsesRequest:
    """The Messages request body, without `model`: the caller adds the deployment it picks."""
    _refuse_unsupported(body)
    source = body.get("input")
    if isinstance(source, str):
        source = [{"role": "user", "content": source}]
    system, turns = _items(expect(source, list, "input", "a string or an array of items"), open_reasoning)
    instructions = body.get("instructions")
    if instructions is not None and expect(instructions, str, "instructions", "a string"):
        system.insert(0, {"type": "text", "text": instructions})
    messages = _messages(turns)
    thinking, adjusted = thinking_for_turn(_thinking(body.get("reasoning")), messages)
    out: dict[str, Any] = {
        "messages": messages,
        "max_tokens": max_tokens(body.get("max_output_tokens"), "max_output_tokens", max_tokens_default, thinking),
    }
    if system:
        out["system"] = system
    if thinking is not None:
        out["thinking"] = thinking
    for name in ("temperature", "top_p"):
        value = number(body, name, 0, 1)
        if value is not None:
            out[name] = value
    user = body.get("safety_identifier", body.get("user"))
    if user is not None:
        out["metadata"] = {"user_id": expect(user, str, "safety_identifier", "a string")}
    tools, namespaced, tool_notes = _tools(body["tools"]) if body.get("tools") is not None else ([], {}, ())
    adjusted += tool_notes
    tooling = Tooling(
        tools=tools,
        choice=_tool_choice(body["tool_choice"]) if body.get("tool_choice") is not None else None,
        json_tool=_text_format(body["text"]) if body.get("text") is not None else None,
        parallel=body.get("parallel_tool_calls"),
        format_param="text.format",
    )
    json_tool, tool_adjustments = tooling.apply(out, thinking, structured_outputs=structured_outputs)
    adjusted += tool_adjustments + place_cache_breakpoints(out, auto_cache)
    adjusted += tuple(f"{name}_ignored" for name in sorted(_NO_EFFECT.intersection(body)))
    stream = body.get("stream") or False
    expect(stream, bool, "stream", "a boolean")
    if stream:
        out["stream"] = True
    return TranslatedResponsesRequest(out, stream, json_tool, _echo(body, out), adjusted, namespaced or None)


def _echo(body: Mapping[str, Any], out: Mapping[str, Any]) -> dict[str, Any]:
    """The request's settings, as a response object repeats them (the client's own spelling)."""
    reasoning = body.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, dict) else {}
    text = body.get("text")
    text = text if isinstance(text, dict) else {}
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": out["max_tokens"],
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "user": body.get("user"),
    }
