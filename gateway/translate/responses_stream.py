"""Anthropic Messages stream events -> OpenAI Responses stream events. Pure: event in, events out.

The Responses protocol in its order, each event numbered by `sequence_number`:
response.created and response.in_progress at message_start; per content block an
output_item.added, its deltas (output_text, function_call_arguments, reasoning summary
text), their .done events and output_item.done; then response.completed (or
response.incomplete) at message_stop. Every upstream event that carries something is
answered as it is read, nothing held back. An upstream error event, or events out of order,
raise StreamError, and the relay ends the stream with `response.failed`: never with
response.completed.

Text and thinking deltas in Anthropic's own bytes are not parsed: their string goes into the
delta event as it is, spliced into the item's template (translated_stream.DELTA_OR_EVENT), and
is decoded once, at the item's end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import GatewayError, StreamError, echo, upstream_error_event
from gateway.sse import encode_event
from gateway.translate.responses_response import (
    ResponseFrame,
    annotations_of,
    item_id,
    message_item,
    output_text,
    reasoning_item,
    response_object,
    web_search_item,
)
from gateway.translate.translated_stream import SLOT, SLOT_JSON, TranslatedStream, WireTranslator
from gateway.translate.usage import merge_usage


@dataclass(slots=True)
class _Item:
    """One content block on its way to becoming an output item."""

    kind: str  # message, reasoning, function_call, web_search_call
    output_index: int
    id: str
    block: dict[str, Any]  # the upstream's content_block, its text and signature filled in as they come
    # Text, thinking or JSON arguments so far: strings, or JSON string literals spliced off the wire.
    text: list[str | bytes] = field(default_factory=list)
    summary_open: bool = False
    done: dict[str, Any] | None = None
    # A spliced delta's event: (before the sequence number, between it and the string, after).
    template: tuple[bytes, bytes, bytes] = (b"", b"", b"")

    def joined(self) -> str:
        return "".join(part if isinstance(part, str) else orjson.loads(part) for part in self.text)


_SEQUENCE = 4_611_686_018_427_387_904  # stands in for the sequence number while a template is rendered
_SEQUENCE_JSON = b'"sequence_number":' + str(_SEQUENCE).encode()


class ResponsesStreamTranslator(WireTranslator):
    __slots__ = (
        "_frame",
        "_items",
        "_rid",
        "_searches",
        "_sequence",
        "_stop_reason",
        "_usage",
        "delta_seen",
        "final",
        "started",
        "stopped",
    )

    def __init__(self, frame: ResponseFrame) -> None:
        self._frame = frame
        self._rid = frame.rid
        self._sequence = 0
        self._items: dict[int, _Item] = {}  # by Anthropic block index
        self._searches: dict[Any, _Item] = {}  # web searches by their server_tool_use id, until their results
        self._usage: dict[str, Any] = {}
        self._stop_reason: Any = None
        self.started = False
        self.stopped = False
        self.delta_seen = False
        self.final: dict[str, Any] | None = None  # the finished response, once message_stop came

    @property
    def usage(self) -> Mapping[str, Any]:
        return self._usage

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason if isinstance(self._stop_reason, str) else None

    @property
    def response_id(self) -> str | None:
        return self._rid if self.started else None

    def splice(self, index: int, kind: bytes, text: bytes) -> bytes | None:
        """None where `_delta` must decide: a delta before message_start, one that opens the
        reasoning summary, or one its item does not take."""
        item = self._items.get(index) if self.started else None
        if item is None:
            return None
        takes = item.kind == "message" if kind == b"text" else item.kind == "reasoning" and item.summary_open
        if not takes:
            return None
        self.delta_seen = True
        if text == b'""':
            return b""
        item.text.append(text)
        before, middle, after = item.template
        sequence = self._sequence
        self._sequence += 1
        return before + str(sequence).encode() + middle + text + after

    @staticmethod
    def _template(kind: str, fields: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
        """A delta event rendered once for splicing (`fields` with SLOT for its string): what comes
        before its sequence number, between that and the string, and after."""
        rendered = encode_event(kind, {"type": kind, "sequence_number": _SEQUENCE, **fields})
        before, _, rest = rendered.partition(_SEQUENCE_JSON)
        middle, _, after = rest.partition(SLOT_JSON)
        return before + b'"sequence_number":', middle, after

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return encode_event(kind, payload)

    def _response(self, status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        output = [item.done for item in self._items.values() if item.done is not None]
        return response_object(
            self._frame,
            status=status,
            output=output,
            usage=self._usage if status != "in_progress" else None,
            stop_reason=self._stop_reason,
            error=error,
        )

    def feed(self, event_type: str | None, data: dict[str, Any]) -> bytes:
        """One parsed upstream event in, the client's events for it out (b"" for none)."""
        kind = data.get("type", event_type)
        if kind == "content_block_delta" and self.started:
            return self._delta(data)
        if kind == "error":
            raise upstream_error_event(data)
        if kind == "message_start":
            message = data.get("message")
            message = message if isinstance(message, dict) else {}
            merge_usage(self._usage, message.get("usage"))
            self.started = True
            snapshot = self._response("in_progress")
            return self._event("response.created", response=snapshot) + self._event(
                "response.in_progress", response=snapshot
            )
        if kind == "ping" or kind is None:
            return b""
        if not self.started:
            raise StreamError("api_error", f"upstream stream sent {echo(kind)} before message_start")
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_stop":
            return self._block_stop(data)
        if kind == "message_delta":
            delta = data.get("delta")
            merge_usage(self._usage, data.get("usage"))
            self._stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            return b""
        if kind == "message_stop":
            if self._stop_reason is None:
                raise StreamError("api_error", "upstream stream stopped without a stop reason")
            self.stopped = True
            self.final = self._response("completed")
            return self._event(f"response.{self.final['status']}", response=self.final)
        return b""  # event types added after this was written carry nothing for the client

    def _block_start(self, data: dict[str, Any]) -> bytes:
        block = data.get("content_block")
        index = data.get("index")
        if not isinstance(block, dict) or not isinstance(index, int) or index in self._items:
            raise StreamError("api_error", "upstream stream sent a content block without a usable index")
        kind = block.get("type")
        if kind == "web_search_tool_result":
            return self._searched(block)
        if kind == "tool_use" and not self._frame.is_json_answer(block):
            item = _Item("function_call", len(self._items), item_id("function_call", self._rid, index), dict(block))
            added = self._frame.function_call_item(item.id, block, "", "in_progress")
        elif kind == "server_tool_use" and block.get("name") == "web_search":
            item = _Item("web_search_call", len(self._items), item_id("web_search_call", self._rid, index), dict(block))
            self._searches[block.get("id")] = item
            self._items[index] = item
            where = {"item_id": item.id, "output_index": item.output_index}
            added = web_search_item(item.id, None, None, "in_progress")
            return self._event("response.output_item.added", output_index=item.output_index, item=added) + self._event(
                "response.web_search_call.in_progress", **where
            )
        elif kind in ("thinking", "redacted_thinking"):
            item = _Item("reasoning", len(self._items), item_id("reasoning", self._rid, index), dict(block))
            added = reasoning_item(item.id, None, self._frame.seal)
        elif kind in ("text", "tool_use"):  # tool_use here: the JSON-answer tool, whose input is the text
            item = _Item("message", len(self._items), item_id("message", self._rid, index), {"type": kind})
            added = message_item(item.id, "", "in_progress")
        else:
            return b""  # a block type added after this was written: nothing the client can use
        self._items[index] = item
        if item.kind == "message":
            item.template = self._template(_TEXT_DELTA, _text_delta(item, SLOT))
        elif item.kind == "reasoning":
            item.template = self._template(_SUMMARY_DELTA, _summary_delta(item, SLOT))
        out = self._event("response.output_item.added", output_index=item.output_index, item=added)
        if item.kind == "message":
            out += self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.output_index,
                content_index=0,
                part=output_text(""),
            )
            if kind == "text" and block.get("text"):
                out += self._text_delta(item, block["text"])
        return out

    def _item(self, data: Mapping[str, Any]) -> _Item | None:
        index = data.get("index")
        return self._items.get(index) if isinstance(index, int) else None

    def _text_delta(self, item: _Item, text: str) -> bytes:
        item.text.append(text)
        return self._event(_TEXT_DELTA, **_text_delta(item, text))

    def _delta(self, data: dict[str, Any]) -> bytes:
        delta = data.get("delta")
        item = self._item(data)
        if not isinstance(delta, dict) or item is None:
            return b""
        self.delta_seen = True
        kind = delta.get("type")
        if kind == "text_delta" and item.kind == "message":
            text = delta.get("text")
            return self._text_delta(item, text) if isinstance(text, str) and text else b""
        if kind == "citations_delta" and item.kind == "message":
            item.block.setdefault("citations", []).append(delta.get("citation"))
            return b""
        if kind == "input_json_delta":
            fragment = delta.get("partial_json")
            if not isinstance(fragment, str) or not fragment:
                return b""
            if item.kind == "message":
                return self._text_delta(item, fragment)
            if item.kind == "web_search_call":
                item.text.append(fragment)  # the query: the client hears of it when the search runs
                return b""
            item.text.append(fragment)
            return self._event(
                "response.function_call_arguments.delta",
                item_id=item.id,
                output_index=item.output_index,
                delta=fragment,
            )
        if kind == "thinking_delta" and item.kind == "reasoning":
            thinking = delta.get("thinking")
            if not isinstance(thinking, str) or not thinking:
                return b""
            item.text.append(thinking)
            out = b""
            if not item.summary_open:
                item.summary_open = True
                out = self._event(
                    "response.reasoning_summary_part.added",
                    item_id=item.id,
                    output_index=item.output_index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            return out + self._event(_SUMMARY_DELTA, **_summary_delta(item, thinking))
        if kind == "signature_delta" and item.kind == "reasoning":
            signature = delta.get("signature")
            if isinstance(signature, str):
                item.block["signature"] = item.block.get("signature", "") + signature
        return b""

    def _block_stop(self, data: dict[str, Any]) -> bytes:
        item = self._item(data)
        if item is None or item.done is not None:
            return b""
        text = item.joined()
        where = {"item_id": item.id, "output_index": item.output_index}
        out = b""
        if item.kind == "web_search_call":
            try:
                query = orjson.loads(text).get("query") if text else None
            except (orjson.JSONDecodeError, AttributeError):
                query = None
            item.block["input"] = {"query": query}
            return self._event("response.web_search_call.searching", **where)  # done when its results come
        if item.kind == "message":
            annotations = annotations_of(item.block.get("citations"), text)
            for i, annotation in enumerate(annotations):
                out += self._event(
                    "response.output_text.annotation.added",
                    **where,
                    content_index=0,
                    annotation_index=i,
                    annotation=annotation,
                )
            item.done = message_item(item.id, text, annotations=annotations)
            out += self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            part = output_text(text, annotations)
            out += self._event("response.content_part.done", **where, content_index=0, part=part)
        elif item.kind == "function_call":
            item.done = self._frame.function_call_item(item.id, item.block, text or "{}")
            out += self._event("response.function_call_arguments.done", **where, arguments=text or "{}")
        else:
            if item.block.get("type") == "thinking":
                item.block["thinking"] = text
            if item.summary_open:
                part = {"type": "summary_text", "text": text}
                out += self._event("response.reasoning_summary_text.done", **where, summary_index=0, text=text)
                out += self._event("response.reasoning_summary_part.done", **where, summary_index=0, part=part)
            item.done = reasoning_item(item.id, item.block, self._frame.seal)
        return out + self._event("response.output_item.done", output_index=item.output_index, item=item.done)

    def _searched(self, block: dict[str, Any]) -> bytes:
        """A web search's results: its item completes (a result for no search the client heard of is dropped)."""
        item = self._searches.pop(block.get("tool_use_id"), None)
        if item is None or item.done is not None:
            return b""
        arguments = item.block.get("input")
        query = arguments.get("query") if isinstance(arguments, dict) else None
        item.done = web_search_item(item.id, query, block.get("content"))
        where = {"item_id": item.id, "output_index": item.output_index}
        return self._event("response.web_search_call.completed", **where) + self._event(
            "response.output_item.done", output_index=item.output_index, item=item.done
        )

    def failed(self, failure: GatewayError) -> bytes:
        """The stream's last event when it cannot finish: response.failed, naming what failed."""
        code = (
            "rate_limit_exceeded"
            if failure.anthropic_type in ("rate_limit_error", "overloaded_error")
            else "server_error"
        )
        self.stopped = True
        return self._event(
            "response.failed", response=self._response("failed", {"code": code, "message": failure.message})
        )


_TEXT_DELTA = "response.output_text.delta"
_SUMMARY_DELTA = "response.reasoning_summary_text.delta"


def _text_delta(item: _Item, text: str) -> dict[str, Any]:
    return {"item_id": item.id, "output_index": item.output_index, "content_index": 0, "delta": text, "logprobs": []}


def _summary_delta(item: _Item, thinking: str) -> dict[str, Any]:
    return {"item_id": item.id, "output_index": item.output_index, "summary_index": 0, "delta": thinking}


class ResponsesStream(TranslatedStream[ResponsesStreamTranslator]):
    """The Responses dialect for the stream relay: whole upstream events in, Responses events out.
    `keep`, with a response store, stores the finished response before the client hears it ended."""

    __slots__ = ("_keep",)

    def __init__(
        self,
        translator: ResponsesStreamTranslator,
        max_event_bytes: int,
        keep: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(translator, max_event_bytes)
        self._keep = keep

    async def completed(self) -> None:
        if self._keep is not None and self._translator.final is not None:
            await self._keep(self._translator.final)

    def ending(self) -> bytes:
        return b""  # the Responses stream ends with its response.completed event, no [DONE]

    def error(self, failure: GatewayError) -> bytes:
        return self._translator.failed(failure)
