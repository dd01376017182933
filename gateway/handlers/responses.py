"""POST /v1/responses: the OpenAI Responses API, served by Claude through the Messages API.

The translation is gateway/translate/responses_*.py; this module wires it to the exchange and
the relay. Responses are not stored: what needs a stored one (previous_response_id,
GET /v1/responses/{id}) is refused with a message that says so.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from gateway.errors import GatewayError, echo
from gateway.handlers.request_body import open_translated, routed_request
from gateway.handlers.streaming import relay_stream
from gateway.translate.responses_request import responses_to_messages
from gateway.translate.responses_response import message_to_response
from gateway.translate.responses_stream import ResponsesStream, ResponsesStreamTranslator
from gateway.translate.usage import merge_usage
from gateway.upstream.client import relayed_headers


async def create_response(request: web.Request) -> web.StreamResponse:
    ctx, body, route = await routed_request(request)
    model = body["model"]
    seal = ctx.runtime.seal
    # Translated before an upstream is chosen, so a bad request is a 400 even while no token is usable.
    translated = responses_to_messages(
        body,
        max_tokens_default=route.max_tokens_default,
        open_reasoning=seal.open,
        auto_cache=route.auto_cache,
        structured_outputs=route.structured_outputs,
    )
    exchange, upstream_response = await open_translated(request, ctx, route, translated)
    created = int(time.time())
    if translated.stream:
        translator = ResponsesStreamTranslator(
            model=model, created=created, echo=translated.echo, seal=seal.seal, json_tool=translated.json_tool
        )
        stream = ResponsesStream(translator, ctx.runtime.config.server.max_upstream_event_bytes)
        return await relay_stream(request, ctx, upstream_response, stream)
    _, message = await exchange.answer(upstream_response)
    merge_usage(ctx.usage, message.get("usage"))
    response = message_to_response(
        message, model=model, created=created, echo=translated.echo, seal=seal.seal, json_tool=translated.json_tool
    )
    ctx.answered(message, response["id"])
    return web.Response(
        body=orjson.dumps(response), content_type="application/json", headers=relayed_headers(upstream_response.headers)
    )


async def stored_response(request: web.Request) -> web.StreamResponse:
    """GET and DELETE /v1/responses/{id}: there is no stored response to give or delete."""
    raise GatewayError(
        404,
        f"No response with id {echo(request.match_info['response_id'])} is stored: this gateway keeps no "
        "responses (the Responses API's stored state needs a response store, which is not configured)",
        "response_id",
    )
