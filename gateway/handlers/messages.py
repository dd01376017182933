"""POST /v1/messages and /v1/messages/count_tokens: the native Anthropic API, relayed.

The translation is gateway/translate/messages.py; streams are forwarded chunk by chunk as they
arrive, never re-encoded, and a cut stream ends with an `event: error` so it never looks complete.
"""

from __future__ import annotations

from aiohttp import web

from gateway.handlers.request_body import exchange_for, quota_ask, routed_request
from gateway.handlers.streaming import relay_stream
from gateway.translate.messages import (
    NativeStream,
    answer_body,
    is_token_count,
    refuse_structured_outputs,
    request_body,
)
from gateway.translate.usage import merge_usage
from gateway.upstream.client import relayed_headers
from gateway.upstream.targets import Target


async def messages(request: web.Request) -> web.StreamResponse:
    return await _messages_or_count(request, count_tokens=False)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    return await _messages_or_count(request, count_tokens=True)


async def _messages_or_count(request: web.Request, *, count_tokens: bool) -> web.StreamResponse:
    ctx, body, route = await routed_request(request)
    model = body["model"]  # the name the client sent: its answer carries it back
    if not route.structured_outputs:
        refuse_structured_outputs(body, route.name)
    ctx.stream = body.get("stream") is True and not count_tokens
    ctx.free = count_tokens  # counting is free: nothing to charge when its answer has no usage
    max_tokens = body.get("max_tokens")
    ctx.max_tokens = max_tokens if type(max_tokens) is int else None

    def body_for(target: Target) -> bytes:
        return request_body(body, target.deployment)

    ask = None if count_tokens else quota_ask(ctx, route, body, body, ctx.request_bytes)
    exchange = exchange_for(request, ctx, ask)
    upstream_response = await exchange.open(route, body_for, count_tokens=count_tokens, native=True)
    if ctx.stream:
        stream = NativeStream(ctx.runtime.config.server.max_upstream_event_bytes, model, ctx.outcome.request_id)
        return await relay_stream(request, ctx, upstream_response, stream)
    if count_tokens:
        raw, _ = await exchange.answer(upstream_response, is_token_count, "a token count")
    else:
        _, answer = await exchange.answer(upstream_response)
        merge_usage(ctx.usage, answer.get("usage"))
        ctx.answered(answer)
        raw = answer_body(answer, model)
    return web.Response(body=raw, content_type="application/json", headers=relayed_headers(upstream_response.headers))
