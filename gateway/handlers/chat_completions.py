"""POST /v1/chat/completions: OpenAI Chat Completions, served by Claude through the Messages API.

The translation is gateway/translate/chat_*.py; this module wires it to the exchange and the relay.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from gateway.handlers.request_body import open_translated, routed_request
from gateway.handlers.streaming import relay_stream
from gateway.translate.chat_request import TranslatedRequest, chat_to_messages
from gateway.translate.chat_response import message_to_completion
from gateway.translate.chat_stream import ChatStream, ChatStreamTranslator
from gateway.translate.usage import merge_usage
from gateway.upstream.client import relayed_headers


async def chat_completions(request: web.Request) -> web.StreamResponse:
    ctx, body, route = await routed_request(request)
    model = body["model"]

    def translate() -> TranslatedRequest:
        # Before an upstream is chosen, so a bad request is a 400 even while no token is usable.
        return chat_to_messages(
            body,
            max_tokens_default=route.max_tokens_default,
            auto_cache=route.auto_cache,
            structured_outputs=route.structured_outputs,
        )

    exchange, upstream_response, translated = await open_translated(request, ctx, route, translate, body)
    created = int(time.time())
    if translated.stream:
        translator = ChatStreamTranslator(
            model=model, created=created, include_usage=translated.include_usage, json_tool=translated.json_tool
        )
        stream = ChatStream(translator, ctx.runtime.config.server.max_upstream_event_bytes)
        return await relay_stream(request, ctx, upstream_response, stream)
    _, message = await exchange.answer(upstream_response)
    merge_usage(ctx.usage, message.get("usage"))
    ctx.answered(message)
    completion = message_to_completion(message, model=model, created=created, json_tool=translated.json_tool)
    return web.Response(
        body=orjson.dumps(completion),
        content_type="application/json",
        headers=relayed_headers(upstream_response.headers),
    )
