"""POST /v1/messages and /v1/messages/count_tokens: the native Anthropic API, relayed.

The body keeps everything the client sent but `model` (route name -> deployment name);
the answer is relayed as the upstream wrote it. Streams are forwarded chunk by chunk as
they arrive, never re-encoded; the gateway only watches them for usage, for the end of
the message, and for a cut connection, which it reports as an `event: error` so a cut
stream never looks complete.
"""

from __future__ import annotations

from typing import Any, TypeGuard

import orjson
from aiohttp import web

from gateway.context import RequestContext
from gateway.errors import Dialect, GatewayError, StreamError
from gateway.handlers.forward import (
    admit,
    is_message,
    model_of,
    not_an_answer,
    open_exchange,
    read_answer,
    read_json_object,
)
from gateway.handlers.streaming import relay_stream
from gateway.keys import context
from gateway.runtime import Target
from gateway.sse import SSEWatcher, encode_event
from gateway.translate.usage import merge_usage
from gateway.upstream import scrub
from gateway.upstream.client import relayed_headers

# The only events the relay decodes: usage comes in message_start and message_delta, the end
# in message_stop or error; the first content_block_delta is the time to first token.
_WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})
_FIRST_TOKEN = frozenset({"content_block_delta"})


async def messages(request: web.Request) -> web.StreamResponse:
    return await _relay(request, count_tokens=False)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    return await _relay(request, count_tokens=True)


async def _relay(request: web.Request, *, count_tokens: bool) -> web.StreamResponse:
    ctx = context(request)
    runtime = ctx.runtime
    body = await read_json_object(request, ctx)
    route = runtime.route(model_of(body), ctx.client)
    ctx.route = route.name
    admit(request, ctx, route)
    stream = body.get("stream") is True and not count_tokens
    ctx.stream = stream

    def body_for(target: Target) -> bytes:
        body["model"] = target.deployment
        return orjson.dumps(body)

    upstream_response = await open_exchange(
        request, ctx, runtime, route, body_for, count_tokens=count_tokens, native=True
    )
    try:
        if stream:
            dialect = NativeStream(ctx, runtime.config.server.max_upstream_event_bytes)
            return await relay_stream(request, ctx, upstream_response, dialect)
        raw = await read_answer(request, ctx, upstream_response, runtime)
    finally:
        upstream_response.release()
    # Relayed as the bytes it is, but only once it is known to be what the client asked for:
    # an HTML page, an array or `{}` with a 200 would reach an SDK as a broken success.
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if not _is_answer(answer, count_tokens):
        raise not_an_answer(request, ctx, "a token count" if count_tokens else "a Messages API message")
    if not count_tokens:
        merge_usage(ctx.usage, answer.get("usage"))
    return web.Response(
        body=raw,
        status=upstream_response.status,
        content_type="application/json",
        headers=relayed_headers(upstream_response.headers),
    )


class NativeStream:
    """The native dialect for the relay: the upstream's bytes go to the client untouched; only the
    events that carry usage, the end or the first token are decoded."""

    __slots__ = ("_ctx", "_decoder", "_torn", "done", "usage")

    def __init__(self, ctx: RequestContext, max_event_bytes: int) -> None:
        self._ctx = ctx
        self._decoder = SSEWatcher(_WATCHED, once=_FIRST_TOKEN, max_event_bytes=max_event_bytes)
        self._torn = False  # the client got part of an event the decoder then refused
        self.done = False
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
                self._ctx.mark_first_token()
            elif name == "message_stop":
                self.done = True
            elif name == "error":
                self._ctx.stream_error = "upstream_error_event"
                self.done = True
                # Passed on as the upstream wrote it, less anything of the gateway's own it echoes.
                chunk = scrub.scrub_bytes(chunk)
            else:
                _watch(self.usage, name, data)
        return chunk

    def ending(self) -> bytes:
        return b""

    def error(self, failure: GatewayError) -> bytes:
        error = encode_event("error", failure.body(Dialect.ANTHROPIC, self._ctx.upstream_request_id))
        # A fresh event after a blank line, whatever partial event came before it.
        return b"\n\n" + error if self._torn or self._decoder.pending else error


def _is_answer(answer: Any, count_tokens: bool) -> TypeGuard[dict[str, Any]]:
    if count_tokens:
        return isinstance(answer, dict) and type(answer.get("input_tokens")) is int
    return is_message(answer)


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
