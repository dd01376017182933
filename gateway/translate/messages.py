"""Anthropic Messages relayed as Messages: the native dialect's translation. Pure.

The request keeps everything the client sent but `model` (the name the client sent -> the
deployment name); the answer is relayed as the upstream wrote it, but for `model`, which is the
name the client sent (Claude Code drops the signed thinking of earlier turns when the answer
names another model, and the deployment's name is nobody's business). A stream's bytes go to
the client untouched after its message_start; only the events that carry usage, the end or the
first token are decoded, so the relay knows when the message is complete and what it cost.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import Dialect, GatewayError, StreamError
from gateway.sse import SSEWatcher, encode_event
from gateway.translate.usage import merge_usage

# The only events the relay decodes: usage comes in message_start and message_delta, the end
# in message_stop or error; the first content_block_delta is the time to first token.
_WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})
_FIRST_TOKEN = frozenset({"content_block_delta"})


def request_body(body: dict[str, Any], deployment: str) -> bytes:
    """The client's request for one deployment: its model swapped, everything else as sent."""
    return orjson.dumps({**body, "model": deployment})


def answer_body(answer: dict[str, Any], model: str) -> bytes:
    """A Messages API answer for the client: the model it asked for, everything else as it came."""
    answer["model"] = model
    return orjson.dumps(answer)


def is_token_count(answer: Any) -> bool:
    return isinstance(answer, dict) and type(answer.get("input_tokens")) is int


class NativeStream:
    """The native dialect for the stream relay: bytes in, the same bytes out."""

    __slots__ = (
        "_decoder",
        "_error_id",
        "_head",
        "_model",
        "_start",
        "_torn",
        "done",
        "first_token",
        "response_id",
        "stop_reason",
        "upstream_error",
        "usage",
    )

    def __init__(self, max_event_bytes: int, model: str, error_id: str | None = None) -> None:
        self._decoder = SSEWatcher(_WATCHED, once=_FIRST_TOKEN, max_event_bytes=max_event_bytes)
        self._model = model  # the name the client sent, for message_start's message.model
        self._error_id = error_id  # the request id an error event names
        # The stream's first bytes, held until message_start is whole and renamed; None after.
        self._head: bytearray | None = bytearray()
        self._start: dict[str, Any] | None = None  # message_start, parsed
        self._torn = False  # the client got part of an event the decoder then refused
        self.done = False
        self.first_token = False
        self.upstream_error = False  # the stream ended with the upstream's own error event, passed on
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.response_id: str | None = None

    @property
    def pending(self) -> bool:
        # While the head is held (until message_start is whole) the client has none of it: a
        # heartbeat then lands before the stream's first event, where a comment is welcome.
        return self._head is None and self._decoder.pending

    def feed(self, chunk: bytes) -> bytes:
        try:
            events = self._decoder.feed(chunk)
        except StreamError:
            self._torn = True
            raise
        for name, data in events:
            if name == "content_block_delta":
                self.first_token = True
            elif name == "message_stop":
                self.done = True
            elif name == "error":
                self.upstream_error = self.done = True
            else:
                payload = _watch(self.usage, name, data)
                if name == "message_start":
                    self._start = payload if payload is not None else {}
                    message = self._start.get("message")
                    mid = message.get("id") if isinstance(message, dict) else None
                    self.response_id = mid if isinstance(mid, str) else None
                elif payload is not None:  # message_delta
                    delta = payload.get("delta")
                    stop = delta.get("stop_reason") if isinstance(delta, dict) else None
                    self.stop_reason = stop if isinstance(stop, str) else None
        if self._head is None:
            return chunk
        self._head += chunk
        if self._start is None and not self.done:
            return b""  # nothing goes out before message_start, which names the model
        head, self._head = bytes(self._head), None
        return _renamed(head, self._start, self._model) if self._start is not None else head

    def ending(self) -> bytes:
        return b""

    async def completed(self) -> None:
        return None

    def error(self, failure: GatewayError) -> bytes:
        error = encode_event("error", failure.body(Dialect.ANTHROPIC, self._error_id))
        # A fresh event after a blank line, whatever partial event came before it.
        return b"\n\n" + error if self._torn or self._decoder.pending else error


def _renamed(head: bytes, payload: dict[str, Any], model: str) -> bytes:
    """The stream's first bytes with message_start's message.model set to the name the client sent.

    message_start is the stream's first event: the block up to its blank line is re-encoded (any
    comment before it goes with it), everything after passes as it came.
    """
    message = payload.get("message")
    at = head.find(b"message_start")
    ends = [(i, len(t)) for t in (b"\r\n\r\n", b"\n\n", b"\r\r") if (i := head.find(t, at)) >= 0]
    if not isinstance(message, dict) or at < 0 or not ends:
        return head
    end, size = min(ends)
    message["model"] = model
    return encode_event("message_start", payload) + head[end + size :]


def _watch(usage: dict[str, Any], event: str | None, data: bytes) -> dict[str, Any] | None:
    """Note the usage in message_start and message_delta; the event, parsed (None if it is no object)."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    if event == "message_start":
        message = payload.get("message")
        merge_usage(usage, message.get("usage") if isinstance(message, dict) else None)
    else:
        merge_usage(usage, payload.get("usage"))
    return payload
