"""POST /v1/messages and /v1/messages/count_tokens: the native Anthropic API, relayed.

The translation is gateway/translate/messages.py; streams are forwarded chunk by chunk as they
arrive, never re-encoded, and a cut stream ends with an `event: error` so it never looks complete.
"""

from __future__ import annotations

from aiohttp import web

from gateway.capabilities.fit import fit_request
from gateway.errors import GatewayError
from gateway.handlers.request_body import exchange_for, learned_from, quota_ask, routed_request
from gateway.handlers.streaming import StreamDialect, relay_stream
from gateway.translate.json_answer import JsonAnswerStream, JsonAnswerStreamTranslator, json_answer_message
from gateway.translate.messages import NativeStream, answer_body, is_token_count, request_body
from gateway.translate.usage import merge_usage
from gateway.upstream.client import relayed_headers
from gateway.upstream.targets import Target


async def messages(request: web.Request) -> web.StreamResponse:
    return await _messages_or_count(request, count_tokens=False)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    return await _messages_or_count(request, count_tokens=True)


async def _messages_or_count(request: web.Request, *, count_tokens: bool) -> web.StreamResponse:
    ctx, sent, route = await routed_request(request)
    model = sent["model"]  # the name the client sent: its answer carries it back
    betas = request.headers.get("anthropic-beta")
    # What the route's deployments lack is downgraded or refused here, before Foundry is called.
    fitted = fit_request(sent, betas, route.profile, route.name, ctx.request_bytes)
    body, ctx.adjusted = fitted.body, fitted.adjusted
    ctx.stream = body.get("stream") is True and not count_tokens
    ctx.free = count_tokens  # counting is free: nothing to charge when its answer has no usage
    max_tokens = body.get("max_tokens")
    ctx.max_tokens = max_tokens if type(max_tokens) is int else None

    def body_for(target: Target) -> bytes:
        return request_body(body, target.deployment)

    ask = None if count_tokens else quota_ask(ctx, route, body, body, ctx.request_bytes)
    exchange = exchange_for(request, ctx, ask)
    exchange.betas, exchange.betas_dropped = fitted.betas, fitted.betas_dropped
    try:
        upstream_response = await exchange.open(route, body_for, count_tokens=count_tokens, native=True)
    except GatewayError as refusal:
        if not learned_from(request, ctx, route, refusal):
            raise
        # Once, without what Foundry refused: the route lacks it from now until the next config load.
        fitted = fit_request(sent, betas, route.profile, route.name, ctx.request_bytes)
        body, ctx.adjusted = fitted.body, fitted.adjusted
        exchange = exchange_for(request, ctx, ask)
        exchange.betas, exchange.betas_dropped = fitted.betas, fitted.betas_dropped
        upstream_response = await exchange.open(route, body_for, count_tokens=count_tokens, native=True)
    if ctx.stream:
        max_event_bytes = ctx.runtime.config.server.max_upstream_event_bytes
        stream: StreamDialect = (
            JsonAnswerStream(JsonAnswerStreamTranslator(model), max_event_bytes, ctx.outcome.request_id)
            if fitted.json_answer
            else NativeStream(max_event_bytes, model, ctx.outcome.request_id)
        )
        return await relay_stream(request, ctx, upstream_response, stream)
    if count_tokens:
        answered, _ = await exchange.answer(upstream_response, is_token_count, "a token count")
    else:
        _, answer = await exchange.answer(upstream_response)
        merge_usage(ctx.usage, answer.get("usage"))
        if fitted.json_answer:
            answer = json_answer_message(answer)
        ctx.answered(answer)
        answered = answer_body(answer, model)
    return web.Response(
        body=answered, content_type="application/json", headers=relayed_headers(upstream_response.headers)
    )
