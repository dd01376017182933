"""Anthropic Messages relayed as Messages: the native dialect's translation. Pure.

The request keeps everything the client sent but `model` (route name -> deployment name); the
answer is relayed as the upstream wrote it. A stream's bytes go to the client untouched; only
the events that carry usage, the end or the first token are decoded, so the relay knows when
the message is complete and what it cost.
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
    body["model"] = deployment
    return orjson.dumps(body)


def is_token_count(answer: Any) -> bool:
    return isinstance(answer, dict) and type(answer.get("input_tokens")) is int


class NativeStream:
    """The native dialect for the stream relay: bytes in, the same bytes out."""

    __slots__ = ("_decoder", "_error_id", "_torn", "done", "first_token", "upstream_error", "usage")

    def __init__(self, max_event_bytes: int, error_id: str | None = None) -> None:
        self._decoder = SSEWatcher(_WATCHED, once=_FIRST_TOKEN, max_event_bytes=max_event_bytes)
        self._error_id = error_id  # the request id an error event names
        self._torn = False  # the client got part of an event the decoder then refused
        self.done = False
        self.first_token = False
        self.upstream_error = False  # the stream ended with the upstream's own error event, passed on
        self.usage: dict[str, Any] = {}

    @property
    def pending(self) -> bool:
        return self._decoder.pending

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
                _watch(self.usage, name, data)
        return chunk

    def ending(self) -> bytes:
        return b""

    def error(self, failure: GatewayError) -> bytes:
        error = encode_event("error", failure.body(Dialect.ANTHROPIC, self._error_id))
        # A fresh event after a blank line, whatever partial event came before it.
        return b"\n\n" + error if self._torn or self._decoder.pending else error


def _watch(usage: dict[str, Any], event: str | None, data: bytes) -> None:
    """Note the usage in message_start and message_delta."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if not isinstance(payload, dict):
        return
    if event == "message_start":
        message = payload.get("message")
        merge_usage(usage, message.get("usage") if isinstance(message, dict) else None)
    else:
        merge_usage(usage, payload.get("usage"))
