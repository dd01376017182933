"""Anthropic Messages stream events -> OpenAI chat.completion.chunk events. Pure: event in, bytes out.

One translator per streaming request. It emits one chunk per upstream event that
carries something for the client (no batching, nothing held back), the finish chunk at
`message_delta`, and the usage chunk (when asked) at `message_stop`; the caller then
writes `[DONE]`. An `error` event, or events out of order, raise `StreamError`: the
caller ends the client's stream with an error payload and no `[DONE]`.

Chunks come out already encoded as SSE `data:` events. Text and thinking deltas, nearly
every event of a stream, are spliced into bytes rendered once per stream at
`message_start`, so each one costs a single JSON encode of its text.

`translate` takes the events as they come off the wire. A text or thinking delta in the
exact bytes Anthropic's API writes (compact JSON, its key order) is not parsed at all: its
text is already a JSON string literal, which translated_stream.DELTA_OR_EVENT checks is
well-formed, and goes into the chunk as it is. Anything else, and any read not framed as Foundry frames
events, is parsed and goes through `feed`: the pattern decides speed, never the text a client gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import GatewayError, StreamError, echo, upstream_error_event
from gateway.sse import DONE, encode_data
from gateway.translate.chat_response import finish_reason, openai_usage
from gateway.translate.translated_stream import SLOT, SLOT_JSON, TranslatedStream, WireTranslator
from gateway.translate.usage import merge_usage


class ChatStreamTranslator(WireTranslator):
    __slots__ = (
        "_base",
        "_content",
        "_include_usage",
        "_json_blocks",
        "_json_tool",
        "_reasoning",
        "_tool_index",
        "_usage",
        "delta_seen",
        "finish_reason",
        "started",
        "stop_reason",
        "stopped",
    )

    def __init__(self, *, model: str, created: int, include_usage: bool, json_tool: str | None = None) -> None:
        self._include_usage = include_usage
        self._json_tool = json_tool
        # Fields every chunk repeats; the id is filled in from message_start.
        self._base: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": created, "model": model}
        self._tool_index: dict[int, int] = {}  # Anthropic content-block index -> OpenAI tool_calls index
        self._json_blocks: set[int] = set()  # blocks whose JSON input is the answer text (response_format)
        self._usage: dict[str, Any] = {}
        # (before, after) the text of a content / reasoning_content delta chunk; set at message_start.
        self._content = self._reasoning = (b"", b"")
        self.started = False
        self.stopped = False
        self.delta_seen = False  # a content_block_delta has come: the first token, for time to first token
        self.finish_reason: str | None = None
        self.stop_reason: str | None = None  # Claude's own, for traces

    @property
    def response_id(self) -> str | None:
        return str(self._base["id"]) or None

    @property
    def usage(self) -> Mapping[str, Any]:
        """Anthropic usage so far (message_start's counts, updated by message_delta's cumulative ones)."""
        return self._usage

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {**self._base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if self._include_usage:
            chunk["usage"] = None
        return encode_data(chunk)

    def _template(self, field: str) -> tuple[bytes, bytes]:
        # The slot is the last string in the chunk (id and model come before choices).
        before, _, after = self._chunk({field: SLOT}).rpartition(SLOT_JSON)
        return before, after

    def _text(self, template: tuple[bytes, bytes], text: Any) -> bytes:
        return template[0] + orjson.dumps(text) + template[1]

    def splice(self, index: int, kind: bytes, text: bytes) -> bytes | None:
        if not self.started:
            return None  # feed says the delta came before message_start
        self.delta_seen = True
        template = self._content if kind == b"text" else self._reasoning  # set by message_start
        return template[0] + text + template[1]

    def feed(self, event_type: str | None, data: dict[str, Any]) -> bytes:
        """One parsed event in, its chunk out (b"" for an event with nothing for the client)."""
        kind = data.get("type", event_type)
        if kind == "content_block_delta" and self.started:
            self.delta_seen = True
            return self._delta(data)
        if kind == "error":
            raise upstream_error_event(data)
        if kind == "message_start":
            message = data.get("message")
            message = message if isinstance(message, dict) else {}
            message_id = message.get("id")
            self._base["id"] = message_id if isinstance(message_id, str) else ""
            merge_usage(self._usage, message.get("usage"))
            self.started = True
            self._content, self._reasoning = self._template("content"), self._template("reasoning_content")
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "ping" or kind is None:
            return b""
        if not self.started:
            raise _before_start(kind)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_delta":
            delta = data.get("delta")
            merge_usage(self._usage, data.get("usage"))
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            self.stop_reason = stop_reason if isinstance(stop_reason, str) else None
            self.finish_reason = finish_reason(stop_reason, self._json_tool)
            return self._chunk({}, self.finish_reason)
        if kind == "message_stop":
            self.stopped = True
            if self.finish_reason is None:
                raise StreamError("api_error", "upstream stream stopped without a stop reason")
            if self._include_usage:
                return encode_data({**self._base, "choices": [], "usage": openai_usage(self._usage)})
            return b""
        # content_block_stop and event types added after this was written carry nothing for the client.
        return b""

    def _block_start(self, data: dict[str, Any]) -> bytes:
        block = data.get("content_block")
        index = data.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return b""
        kind = block.get("type")
        if kind == "tool_use":
            if self._json_tool is not None and block.get("name") == self._json_tool:
                self._json_blocks.add(index)
                return b""
            tool_index = len(self._tool_index)
            self._tool_index[index] = tool_index
            call = {
                "index": tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if kind == "text" and block.get("text"):
            return self._text(self._content, block["text"])
        if kind == "thinking" and block.get("thinking"):
            return self._text(self._reasoning, block["thinking"])
        return b""

    def _delta(self, data: dict[str, Any]) -> bytes:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return b""
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(self._content, delta.get("text", ""))
        if kind == "thinking_delta":
            return self._text(self._reasoning, delta.get("thinking", ""))
        if kind == "input_json_delta":
            fragment = delta.get("partial_json", "")
            index = data.get("index")
            if not fragment or not isinstance(index, int):
                return b""
            if index in self._json_blocks:
                return self._text(self._content, fragment)
            tool_index = self._tool_index.get(index)
            if tool_index is None:
                raise StreamError("api_error", f"upstream sent tool input for unknown content block {index}")
            return self._chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": fragment}}]})
        # signature_delta and unknown deltas have no OpenAI counterpart.
        return b""


def _before_start(kind: str) -> StreamError:
    return StreamError("api_error", f"upstream stream sent {echo(kind)} before message_start")


class ChatStream(TranslatedStream[ChatStreamTranslator]):
    """The Chat Completions dialect for the stream relay: whole upstream events in, chunks out."""

    __slots__ = ()

    def ending(self) -> bytes:
        return DONE

    def error(self, failure: GatewayError) -> bytes:
        return encode_data(failure.openai_body())
