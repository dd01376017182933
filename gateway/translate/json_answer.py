"""Native structured outputs where a deployment lacks them: Messages in, Messages out. Pure.

The request's output_config.format becomes a forced tool whose input schema is the format's
schema; the answer's call of that tool becomes the JSON text block the client asked for (in a
stream, its input_json_delta fragments become text deltas), and its stop reason end_turn. Strict
tools become plain tools: strictness is part of the same feature. The OpenAI dialects do the same
for json_schema (openai_common.json_answer_tool).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import Dialect, GatewayError, invalid_request, upstream_error_event
from gateway.sse import encode_event
from gateway.translate.openai_common import JSON_TOOL_NAME
from gateway.translate.translated_stream import TranslatedStream, WireTranslator
from gateway.translate.usage import merge_usage


def _plain_tools(body: dict[str, Any]) -> tuple[str, ...]:
    tools = body.get("tools")
    if not isinstance(tools, list) or not any(isinstance(t, dict) and "strict" in t for t in tools):
        return ()
    body["tools"] = [{k: v for k, v in t.items() if k != "strict"} if isinstance(t, dict) else t for t in tools]
    return ("strict_not_enforced",)


def emulate_format(body: dict[str, Any]) -> tuple[bool, tuple[str, ...]]:
    """Carry `body`'s output_config.format by a forced tool (in place): whether it did, and what it adjusted."""
    adjusted = _plain_tools(body)
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        return False, adjusted
    assert isinstance(config, dict)
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(schema, dict):
        raise invalid_request(
            '\'output_config.format\' must be {"type": "json_schema", "schema": {...}}', "output_config.format"
        )
    if schema.get("type") != "object":
        raise invalid_request(
            "'output_config.format.schema' must describe an object (type: object) where structured outputs are "
            "emulated with a tool (this route's deployments lack them)",
            "output_config.format.schema",
        )
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        raise invalid_request(
            "'output_config.format' cannot be combined with thinking on this route: its deployments lack native "
            "structured outputs, and the tool that carries the answer must be forced, which thinking does not allow",
            "output_config.format",
        )
    tools = body.get("tools")
    tools = list(tools) if isinstance(tools, list) else []
    if any(isinstance(t, dict) and t.get("name") == JSON_TOOL_NAME for t in tools):
        raise invalid_request(
            f"a tool named {JSON_TOOL_NAME!r} cannot be combined with output_config.format on this route (the "
            "gateway carries the structured answer by a tool of that name)",
            "tools",
        )
    tools.append(
        {"name": JSON_TOOL_NAME, "description": "Give the answer as JSON matching the schema.", "input_schema": schema}
    )
    body["tools"] = tools
    choice = body.get("tool_choice")
    choice = choice if isinstance(choice, dict) else {}
    # With the client's own tools the model may call them first; whatever it calls, a tool is forced.
    forced: dict[str, Any] = {"type": "any"} if len(tools) > 1 else {"type": "tool", "name": JSON_TOOL_NAME}
    if choice.get("disable_parallel_tool_use") is not None:
        forced["disable_parallel_tool_use"] = choice["disable_parallel_tool_use"]
    body["tool_choice"] = forced
    rest = {k: v for k, v in config.items() if k != "format"}
    if rest:
        body["output_config"] = rest
    else:
        del body["output_config"]
    return True, (*adjusted, "structured_outputs_emulated")


def _answer_block(block: Any) -> Any:
    if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == JSON_TOOL_NAME:
        return {"type": "text", "text": orjson.dumps(block.get("input", {})).decode()}
    return block


def json_answer_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message whose JSON-answer tool call becomes its JSON text, in place."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    blocks = [_answer_block(b) for b in content]
    answered = any(new is not old for new, old in zip(blocks, content, strict=True))
    message["content"] = blocks
    if answered and message.get("stop_reason") == "tool_use" and not _calls_a_tool(message["content"]):
        message["stop_reason"] = "end_turn"
    return message


def _calls_a_tool(content: list[Any]) -> bool:
    return any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)


class JsonAnswerStreamTranslator(WireTranslator):
    """A native stream whose JSON-answer tool call is turned into text as it streams; every other event
    goes as it came (re-encoded; a text or thinking delta's bytes spliced as they came)."""

    __slots__ = ("_answer", "_calls", "_model", "_stop_reason", "_usage", "delta_seen", "response_id", "stopped")

    def __init__(self, model: str) -> None:
        self._model = model  # the name the client sent, for message_start's message.model
        self._answer: int | None = None  # the JSON-answer block's index
        self._calls = False  # the answer calls a tool of the client's
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self.stopped = False
        self.delta_seen = False
        self.response_id: str | None = None

    @property
    def usage(self) -> Mapping[str, Any]:
        return self._usage

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def splice(self, index: int, kind: bytes, text: bytes) -> bytes | None:
        self.delta_seen = True
        head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,' % index
        return head + b'"delta":{"type":"%s_delta","%s":' % (kind, kind) + text + b"}}\n\n"

    def feed(self, event_type: str | None, data: dict[str, Any]) -> bytes:
        kind = data.get("type", event_type)
        if kind == "error":
            raise upstream_error_event(data)
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                merge_usage(self._usage, message.get("usage"))
                message["model"] = self._model
                mid = message.get("id")
                self.response_id = mid if isinstance(mid, str) else None
        elif kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                if block.get("name") == JSON_TOOL_NAME:
                    self._answer = data.get("index")
                    data = {**data, "content_block": {"type": "text", "text": ""}}
                else:
                    self._calls = True
        elif kind == "content_block_delta":
            self.delta_seen = True
            delta = data.get("delta")
            if data.get("index") == self._answer and isinstance(delta, dict):
                fragment = delta.get("partial_json")
                if not isinstance(fragment, str) or not fragment:
                    return b""
                data = {**data, "delta": {"type": "text_delta", "text": fragment}}
        elif kind == "message_delta":
            merge_usage(self._usage, data.get("usage"))
            delta = data.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop == "tool_use" and self._answer is not None and not self._calls:
                stop = "end_turn"
                data = {**data, "delta": {**delta, "stop_reason": stop}}  # type: ignore[dict-item]
            self._stop_reason = stop if isinstance(stop, str) else None
        elif kind == "message_stop":
            self.stopped = True
        return encode_event(str(kind), data)


class JsonAnswerStream(TranslatedStream[JsonAnswerStreamTranslator]):
    __slots__ = ("_error_id",)

    def __init__(self, translator: JsonAnswerStreamTranslator, max_event_bytes: int, error_id: str | None) -> None:
        super().__init__(translator, max_event_bytes)
        self._error_id = error_id

    def ending(self) -> bytes:
        return b""

    def error(self, failure: GatewayError) -> bytes:
        return encode_event("error", failure.body(Dialect.ANTHROPIC, self._error_id))
