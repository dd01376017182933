"""POST /v1/messages and /v1/messages/count_tokens: the native Anthropic API, relayed.

The body keeps everything the client sent but `model` (route name -> deployment name);
the answer is relayed as the upstream wrote it. Streams are forwarded chunk by chunk as
they arrive, never re-encoded; the gateway only watches them for usage, for the end of
the message, and for a cut connection, which it reports as an `event: error` so a cut
stream never looks complete.
"""

from __future__ import annotations

import aiohttp
import orjson
from aiohttp import web

from gateway.context import RequestContext
from gateway.errors import Dialect
from gateway.handlers.forward import admit, model_of, open_exchange, read_json_object
from gateway.handlers.streaming import (
    ClientGone,
    cut_stream,
    finish,
    open_sse,
    relay_chunks,
    stream_failure,
    write,
)
from gateway.keys import RUNTIME, context
from gateway.routing import Target
from gateway.sse import SSEWatcher, encode_event
from gateway.translate.openai_stream import StreamError
from gateway.upstream import read_body, relayed_headers

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
    runtime = request.app[RUNTIME]
    body = await read_json_object(request)
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
            return await _stream(request, ctx, upstream_response)
        assert ctx.target is not None
        raw = await read_body(upstream_response, ctx.target)
    finally:
        upstream_response.release()
    if not count_tokens:
        try:
            usage = orjson.loads(raw).get("usage")
        except (orjson.JSONDecodeError, AttributeError):
            usage = None
        ctx.usage = usage if isinstance(usage, dict) else {}
    return web.Response(
        body=raw,
        status=upstream_response.status,
        content_type="application/json",
        headers=relayed_headers(upstream_response.headers),
    )


async def _stream(
    request: web.Request, ctx: RequestContext, upstream_response: aiohttp.ClientResponse
) -> web.StreamResponse:
    response = await open_sse(request, upstream_response)
    decoder = SSEWatcher(_WATCHED, once=_FIRST_TOKEN)
    finished = False
    last = b""  # the final read, or the error event: sent with the end of the body in one write
    try:
        try:
            async for chunk in relay_chunks(request, response, upstream_response, lambda: not decoder.pending):
                for name, data in decoder.feed(chunk):
                    if name == "content_block_delta":
                        ctx.mark_first_token()
                    else:
                        finished = _watch(ctx, name, data) or finished
                if finished:
                    last = chunk
                    break
                await write(response, chunk)
            if not finished:
                raise cut_stream()
        except (StreamError, TimeoutError, aiohttp.ClientError) as exc:
            failure = stream_failure(exc)
            ctx.stream_error = failure.anthropic_type
            # A fresh event after a blank line, whatever partial event came before it.
            error = encode_event("error", failure.body(Dialect.ANTHROPIC, ctx.upstream_request_id))
            last = b"\n\n" + error if decoder.pending else error
        await finish(response, last)
    except ClientGone:
        ctx.client_disconnected = True
    return response


def _watch(ctx: RequestContext, event: str | None, data: bytes) -> bool:
    """Note usage; True once the stream has ended, by message_stop or by an upstream error event."""
    if event == "message_stop":
        return True
    if event == "error":
        ctx.stream_error = "upstream_error_event"
        return True
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(payload, dict):
        return False
    usage = (payload.get("message") or {}).get("usage") if event == "message_start" else payload.get("usage")
    if isinstance(usage, dict):
        ctx.usage.update({k: v for k, v in usage.items() if v is not None})
    return False
