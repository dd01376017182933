"""Fitting a Messages request to what a route's deployments have. Pure: dict in, dict out.

For each thing the deployments lack, one of two things, never a third: a faithful downgrade
(the request means the same to Claude without it), or a 400 before Foundry is called that names
the feature and the route. A beta that is dropped takes its body fields with it, since Claude
refuses half a pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from gateway.capabilities.profile import STRICT_TOOLS, STRUCTURED_OUTPUTS, RouteProfile
from gateway.errors import GatewayError, invalid_request
from gateway.translate.json_answer import emulate_format

# Claude's context without the 1M beta; the input is estimated at 4 bytes a token, as quota is.
CONTEXT_200K_TOKENS = 200_000
_BYTES_PER_TOKEN = 4


class Fitted(NamedTuple):  # made on every native request: a NamedTuple is quicker to make than a dataclass
    body: dict[str, Any]  # the client's own dict when nothing changed
    betas: str | None  # the anthropic-beta value to send; None: none
    betas_dropped: tuple[str, ...] = ()
    adjusted: tuple[str, ...] = ()  # what was downgraded, for the access log
    json_answer: bool = False  # output_config.format is carried by a forced tool: the answer is translated back


def _refusal(feature: str, route: str, profile: RouteProfile, hint: str = "") -> GatewayError:
    return invalid_request(
        f"{feature} is not served by the deployments of {route!r} (hosting {profile.hosting}, capability profile "
        f"in upstreams[].capabilities){hint}",
        feature.split(" ", 1)[0].rstrip(":"),
    )


def _drop_context_management(body: dict[str, Any]) -> str | None:
    return "context_management_dropped" if body.pop("context_management", None) is not None else None


def _drop_effort(body: dict[str, Any]) -> str | None:
    config = body.get("output_config")
    if not isinstance(config, dict) or "effort" not in config:
        return None
    rest = {k: v for k, v in config.items() if k != "effort"}
    if rest:
        body["output_config"] = rest
    else:
        del body["output_config"]
    return "effort_dropped"


def _fold_system_turns(body: dict[str, Any]) -> str | None:
    """System-role messages (Claude Code's mid-conversation instructions) as text in the user turn
    after them, or before them at the end, so the turns still alternate as Claude requires."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        return None
    folded: list[Any] = []
    waiting: list[dict[str, Any]] = []  # system text looking for the next user turn
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "system":
            waiting += _text_blocks(message.get("content"))
            continue
        if waiting and isinstance(message, dict) and message.get("role") == "user":
            message = {**message, "content": _after_results(_blocks(message.get("content")), waiting)}
            waiting = []
        folded.append(message)
    if waiting:
        last = folded[-1] if folded else None
        if isinstance(last, dict) and last.get("role") == "user":
            folded[-1] = {**last, "content": _blocks(last.get("content")) + waiting}
        else:
            folded.append({"role": "user", "content": waiting})
    body["messages"] = folded
    return "system_turns_folded"


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": b["text"]} for b in _blocks(content) if isinstance(b, dict) and "text" in b]


def _after_results(blocks: list[Any], text: list[dict[str, Any]]) -> list[Any]:
    # Claude wants a user turn's tool results first: the folded text goes after them.
    at = next((i for i, b in enumerate(blocks) if not (isinstance(b, dict) and b.get("type") == "tool_result")), None)
    at = len(blocks) if at is None else at
    return blocks[:at] + text + blocks[at:]


# Betas whose dropping takes something from the body, and what: each returns what it adjusted (None: nothing).
BETA_DOWNGRADES: Mapping[str, Callable[[dict[str, Any]], str | None]] = {
    "context-management": _drop_context_management,
    "effort": _drop_effort,
    "mid-conversation-system": _fold_system_turns,
    "per-turn-control": _fold_system_turns,
}


def _uses_files(body: Mapping[str, Any]) -> bool:
    """A content block whose source is a file of the Files API (asked only when its beta is dropped)."""
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            source = block.get("source") if isinstance(block, dict) else None
            if isinstance(source, dict) and source.get("type") == "file":
                return True
    return False


# Betas whose feature a body may use with no faithful downgrade: dropped, they leave a request Claude refuses.
BETA_NEEDED_BY: Mapping[str, Callable[[Mapping[str, Any]], bool]] = {"files-api": _uses_files}
# Body fields with a faithful downgrade of their own (output_config.format is emulated apart).
FIELD_DOWNGRADES: Mapping[str, Callable[[dict[str, Any]], str | None]] = {
    "context_management": _drop_context_management,
    "output_config.effort": _drop_effort,
}


def has_downgrade(kind: str, name: str) -> bool:
    """Whether a request means the same to Claude without this beta or field: every beta (its body
    fields go with it), the fields with a downgrade of their own, and structured outputs (emulated)."""
    return kind == "beta" or (
        kind == "field" and (name in FIELD_DOWNGRADES or name in (STRUCTURED_OUTPUTS, STRICT_TOOLS))
    )


def present(body: Mapping[str, Any], path: str) -> bool:
    """A dotted body path is there: output_config.format; tools.strict is a key of any tool."""
    head, _, rest = path.partition(".")
    value = body.get(head)
    if value is None:
        return False
    if not rest:
        return True
    if isinstance(value, list):
        return any(isinstance(v, dict) and present(v, rest) for v in value)
    return isinstance(value, dict) and present(value, rest)


def fit_request(
    body: dict[str, Any], betas: str | None, profile: RouteProfile, route: str, request_bytes: int
) -> Fitted:
    """The request as the route's deployments take it (`betas` the client's anthropic-beta)."""
    if profile.complete:
        return Fitted(body, betas)
    out = body
    adjusted: list[str] = []
    emulate = False
    sent, dropped, families = profile.fit_betas(betas) if betas else (None, (), ())
    if dropped:
        out = dict(body)
        for beta, kind in zip(dropped, families, strict=True):
            _drop_beta(out, beta, kind, profile, route, request_bytes, adjusted)
            emulate = emulate or kind == "structured-outputs"
    tools = out.get("tools")
    # A tool with a type (a server tool) or strict: the one look at every tool, and a closer one only then.
    special = profile.looks_at_tools and isinstance(tools, list) and _typed_or_strict(tools)
    if profile.lacks_structured_outputs:
        # Strict tools go with structured outputs, with or without a format.
        config = out.get("output_config")
        emulate = emulate or special or (isinstance(config, dict) and "format" in config)
    for head, path in profile.other_fields:
        if out.get(head) is None or (path != head and not present(out, path)):  # one lookup for most requests
            continue
        downgrade = FIELD_DOWNGRADES.get(path)
        if downgrade is None:
            raise _refusal(path, route, profile)
        out = out if out is not body else dict(body)
        adjusted.append(downgrade(out) or path)
    json_answer = False
    if emulate:
        out = out if out is not body else dict(body)
        json_answer, emulated = emulate_format(out)
        adjusted += emulated
    if special:
        _refuse_lacking_server_tools(out, profile, route)
    if out is body and not dropped:
        return Fitted(body, betas)  # the common case: nothing to change, the header as the client wrote it
    return Fitted(out, sent, dropped, tuple(dict.fromkeys(adjusted)), json_answer)


def _typed_or_strict(tools: list[Any]) -> bool:
    try:
        for tool in tools:  # a plain loop: a generator's frame per tool costs more, on every request
            if "type" in tool or "strict" in tool:
                return True
    except TypeError:
        return True  # a tool that is no object: the closer look, which passes over it (Claude refuses it)
    return False


def _drop_beta(
    body: dict[str, Any], beta: str, kind: str, profile: RouteProfile, route: str, size: int, adjusted: list[str]
) -> None:
    """A beta the deployments lack leaves the request, with what in the body needs it."""
    if kind == "context-1m" and size // _BYTES_PER_TOKEN > CONTEXT_200K_TOKENS:
        raise _refusal(
            f"anthropic-beta {beta} (1M-token context)",
            route,
            profile,
            f": this request's input (about {size // _BYTES_PER_TOKEN:,} tokens) does not fit Claude's "
            f"{CONTEXT_200K_TOKENS:,} without it",
        )
    needed = BETA_NEEDED_BY.get(kind)
    if needed is not None and needed(body):
        raise _refusal(f"anthropic-beta {beta}", route, profile, ", and this request uses it")
    downgrade = BETA_DOWNGRADES.get(kind)
    done = downgrade(body) if downgrade is not None else None
    if done is not None:
        adjusted.append(done)


def _lacking_server_tool(body: Mapping[str, Any], profile: RouteProfile) -> tuple[int, dict[str, Any]] | None:
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind != "custom" and profile.lacks_server_tool(kind):
            return i, tool
    return None


def _refuse_lacking_server_tools(body: Mapping[str, Any], profile: RouteProfile, route: str) -> None:
    lacking = _lacking_server_tool(body, profile)
    if lacking is not None:
        raise _refusal(f"tools[{lacking[0]}].type {lacking[1]['type']}", route, profile)


def refuse_lacking_server_tools(body: Mapping[str, Any], profile: RouteProfile, route: str) -> None:
    """For a translated request (the OpenAI dialects): the server tools it asks for must be there.
    The client named the tool its own way, so the refusal names it by name (web_search)."""
    lacking = _lacking_server_tool(body, profile) if not profile.complete else None
    if lacking is not None:
        tool = lacking[1]
        raise _refusal(
            f"tools: the built-in {tool.get('name')} tool (Claude's {tool['type']})",
            route,
            profile,
            "; leave the tool out, or use a route whose deployments have it",
        )
