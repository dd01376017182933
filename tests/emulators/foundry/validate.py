"""Request validation with the Messages API's rules and its error wording."""

from __future__ import annotations

import hashlib
import re
from typing import Any


class InvalidRequest(Exception):
    def __init__(self, message: str, status: int = 400, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type


_TOP_LEVEL = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_config",
}
# Betas under which a message may have the role system.
_SYSTEM_TURN_BETAS = ("mid-conversation-system-", "per-turn-control-")
# Body fields that travel with a beta: the request is refused when only one half arrives.
_PAIRED_BETAS = {
    "context_management": "context-management-",
    "output_config.effort": "effort-",
}
_COUNT_TOKENS_TOP_LEVEL = {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TYPED_TOOL = re.compile(
    r"^(web_search|web_fetch|code_execution|bash|text_editor|str_replace_based_edit_tool|computer|memory"
    r"|tool_search_tool_regex|tool_search_tool_bm25)_\d{8}$"
)
_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _block(block: Any, loc: str, role: str) -> None:
    if not isinstance(block, dict):
        raise InvalidRequest(f"{loc}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{loc}.text: Field required")
        if not block["text"]:
            raise InvalidRequest(f"{loc}: text content blocks must be non-empty")
    elif kind == "image":
        if role != "user":
            raise InvalidRequest(f"{loc}: image blocks are only allowed in user messages")
        source = block.get("source")
        if not isinstance(source, dict):
            raise InvalidRequest(f"{loc}.source: Field required")
        if source.get("type") == "base64":
            if source.get("media_type") not in _IMAGE_TYPES:
                raise InvalidRequest(
                    f"{loc}.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                )
            if not isinstance(source.get("data"), str) or not source["data"]:
                raise InvalidRequest(f"{loc}.source.data: Field required")
        elif source.get("type") == "url":
            if not isinstance(source.get("url"), str) or not source["url"].startswith("https://"):
                raise InvalidRequest(f"{loc}.source.url: must be an https URL")
        else:
            raise InvalidRequest(f"{loc}.source.type: Input should be 'base64' or 'url'")
    elif kind == "tool_use":
        if role != "assistant":
            raise InvalidRequest(f"{loc}: tool_use blocks are only allowed in assistant messages")
        for key in ("id", "name"):
            if not isinstance(block.get(key), str):
                raise InvalidRequest(f"{loc}.{key}: Field required")
        if not isinstance(block.get("input"), dict):
            raise InvalidRequest(f"{loc}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if role != "user":
            raise InvalidRequest(f"{loc}: tool_result blocks are only allowed in user messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise InvalidRequest(f"{loc}.tool_use_id: Field required")
        content = block.get("content", "")
        if not isinstance(content, str | list):
            raise InvalidRequest(f"{loc}.content: Input should be a valid string or list")
    elif kind in (
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
    ):
        if role != "assistant":
            raise InvalidRequest(f"{loc}: {kind} blocks are only allowed in assistant messages")
    elif kind == "document":
        pass
    else:
        raise InvalidRequest(
            f"{loc}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'"
        )


def _messages(messages: Any, betas: frozenset[str] = frozenset()) -> None:
    if not isinstance(messages, list):
        raise InvalidRequest("messages: Input should be a valid list")
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    previous_tool_ids: set[str] = set()
    for i, msg in enumerate(messages):
        loc = f"messages.{i}"
        if not isinstance(msg, dict):
            raise InvalidRequest(f"{loc}: Input should be a valid dictionary")
        role = msg.get("role")
        if role == "system" and any(b.startswith(_SYSTEM_TURN_BETAS) for b in betas):
            # With these betas (Claude Code 2.1 sends them), system text may stand between turns; it
            # takes no part in tool pairing.
            _system(msg.get("content"))
            continue
        if role == "system":
            raise InvalidRequest(
                f'{loc}.role: Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
                'not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"{loc}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        last = i == len(messages) - 1
        if isinstance(content, str):
            blocks: list[Any] = [{"type": "text", "text": content}] if content else []
        elif isinstance(content, list):
            blocks = content
            for j, block in enumerate(blocks):
                _block(block, f"{loc}.content.{j}", role)
        else:
            raise InvalidRequest(f"{loc}.content: Input should be a valid string or list")
        if not blocks and not (last and role == "assistant"):
            raise InvalidRequest(
                f"{loc}: all messages must have non-empty content except for the optional final assistant message"
            )
        result_ids = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
        for tool_use_id in result_ids:
            if tool_use_id not in previous_tool_ids:
                raise InvalidRequest(
                    f"{loc}.content: unexpected `tool_use_id` found in `tool_result` blocks: {tool_use_id}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )
        if previous_tool_ids:
            missing = previous_tool_ids - set(result_ids)
            if missing:
                raise InvalidRequest(
                    f"{loc}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(sorted(missing))}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
            seen_other = False
            for block in blocks:
                if block.get("type") != "tool_result":
                    seen_other = True
                elif seen_other:
                    raise InvalidRequest(f"{loc}.content: tool_result blocks must come before any other content")
        previous_tool_ids = {b["id"] for b in blocks if b.get("type") == "tool_use"}


def _system(system: Any) -> None:
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        raise InvalidRequest("system: Input should be a valid string or list")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(f"system.{i}: Input should be a text block")


def _tools(tools: Any) -> set[str]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    names = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{i}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequest(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        kind = tool.get("type", "custom")
        if kind != "custom":
            # A tool Anthropic defines (web_search_20250305, bash_20250124, ...): its schema is Claude's own.
            if not isinstance(kind, str) or not _TYPED_TOOL.match(kind):
                raise InvalidRequest(
                    f"tools.{i}: Input tag {kind!r} found using 'type' does not match any of the expected tags"
                )
        elif not isinstance(tool.get("input_schema"), dict) or tool["input_schema"].get("type") != "object":
            raise InvalidRequest(f"tools.{i}.input_schema: Input should be a JSON schema with type 'object'")
        if name in names:
            raise InvalidRequest(f"tools: Tool names must be unique. Duplicate: {name}")
        names.add(name)
    return names


def thinking_signature(thought: str) -> str:
    """The signature the emulator puts on thinking it issued; Claude checks its own the same way."""
    return "sig_" + hashlib.sha256(thought.encode()).hexdigest()[:32]


def _thinking_leads_the_tool_turn(messages: list[Any]) -> None:
    """With thinking on, the assistant turn whose tool_use the last user turn answers must open with
    the thinking Claude gave it, as Claude requires."""
    if len(messages) < 2 or messages[-1].get("role") != "user":
        return
    results = messages[-1].get("content")
    if not isinstance(results, list) or not any(b.get("type") == "tool_result" for b in results):
        return
    for i in range(len(messages) - 2, -1, -1):
        turn = messages[i]
        if turn.get("role") != "assistant":
            continue
        content = turn.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        if not any(b.get("type") == "tool_use" for b in blocks):
            return
        first = blocks[0].get("type") if blocks else "nothing"
        if first not in ("thinking", "redacted_thinking"):
            raise InvalidRequest(
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
                "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                "thinking blocks from previous turns. To avoid this requirement, disable `thinking`."
            )
        return


def _breakpoints(body: dict[str, Any]) -> None:
    """Claude takes at most four cache_control breakpoints, across tools, system and messages."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    blocks += system if isinstance(system, list) else []
    for turn in body["messages"]:
        content = turn.get("content")
        blocks += content if isinstance(content, list) else []
    found = sum(1 for b in blocks if isinstance(b, dict) and b.get("cache_control"))
    if found > 4:
        raise InvalidRequest(f"A maximum of 4 blocks with cache_control may be provided. Found {found}.")


def _signatures(messages: list[Any]) -> None:
    """Thinking sent back must be the thinking Claude issued, signature intact."""
    for i, turn in enumerate(messages):
        content = turn.get("content")
        for j, block in enumerate(content if isinstance(content, list) else []):
            if block.get("type") == "thinking" and block.get("signature") != thinking_signature(
                str(block.get("thinking", ""))
            ):
                raise InvalidRequest(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")


def _paired_betas(body: dict[str, Any], betas: frozenset[str]) -> None:
    config: dict[str, Any] = body["output_config"] if isinstance(body.get("output_config"), dict) else {}
    present = {
        "context_management": "context_management" in body,
        "output_config.effort": "effort" in config,
    }
    for field, prefix in _PAIRED_BETAS.items():
        if present[field] and not any(b.startswith(prefix) for b in betas):
            raise InvalidRequest(f"{field}: this field needs the {prefix}* beta in anthropic-beta")


def thinking_on(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def validate_request(body: Any, *, count_tokens: bool = False, betas: frozenset[str] = frozenset()) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("Input should be a valid dictionary")
    allowed = _COUNT_TOKENS_TOP_LEVEL if count_tokens else _TOP_LEVEL
    for key in body:
        if key not in allowed:
            raise InvalidRequest(f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise InvalidRequest("model: Field required")
    if not count_tokens:
        if "max_tokens" not in body:
            raise InvalidRequest("max_tokens: Field required")
        if not _is_int(body["max_tokens"]) or body["max_tokens"] < 1:
            raise InvalidRequest("max_tokens: Input should be a valid integer greater than or equal to 1")
    _messages(body.get("messages"), betas)
    if "system" in body:
        _system(body["system"])
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1):
            raise InvalidRequest(f"{key}: Input should be less than or equal to 1")
    if "top_k" in body and not _is_int(body["top_k"]):
        raise InvalidRequest("top_k: Input should be a valid integer")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise InvalidRequest("stop_sequences: Input should be a valid list of strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequest("stream: Input should be a valid boolean")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or not isinstance(metadata.get("user_id", ""), str)):
        raise InvalidRequest("metadata.user_id: Input should be a valid string")
    tool_names = _tools(body["tools"]) if "tools" in body else set()
    choice = body.get("tool_choice")
    forced = False
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            raise InvalidRequest(
                "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
            )
        if choice["type"] == "tool" and choice.get("name") not in tool_names:
            raise InvalidRequest(f"tool_choice.name: tool {choice.get('name')!r} is not in tools")
        forced = choice["type"] in ("any", "tool")
    _paired_betas(body, betas)
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise InvalidRequest("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
        if thinking["type"] == "adaptive":
            displays: tuple[str, ...] = ("summarized", "omitted")
            if any(b.startswith("thinking-display-updates-") for b in betas):
                displays += ("updates",)  # Claude Code 2.1 sends it with that beta, and without, when refused
            if thinking.get("display", "summarized") not in displays:
                raise InvalidRequest(
                    "thinking.adaptive.display: Input should be " + " or ".join(repr(d) for d in displays)
                )
            if forced:
                raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")
            _thinking_leads_the_tool_turn(body["messages"])
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
                raise InvalidRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if not count_tokens and budget >= body["max_tokens"]:
                raise InvalidRequest(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation "
                    "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
                )
            if forced:
                raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")
            _thinking_leads_the_tool_turn(body["messages"])
    _signatures(body["messages"])
    _breakpoints(body)
