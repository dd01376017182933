"""POST /v1/responses: the OpenAI Responses API, served by Claude through the Messages API;
GET and DELETE /v1/responses/{id}.

The translation is gateway/translate/responses_*.py; this module wires it to the exchange and
the relay. With a response store (responses.store_ttl_seconds and state.redis), a request's
`previous_response_id` and `item_reference` items are resolved here, before translation, and each
finished response is stored before the client hears it end; without one they are refused with a
message that says so.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from gateway.app_keys import context
from gateway.errors import GatewayError, echo
from gateway.handlers.request_body import open_translated, routed_request
from gateway.handlers.streaming import relay_stream
from gateway.responses_store import Resolved, new_response_id
from gateway.translate.responses_request import TranslatedResponsesRequest, responses_to_messages
from gateway.translate.responses_response import ResponseFrame, message_to_response
from gateway.translate.responses_stream import ResponsesStream, ResponsesStreamTranslator
from gateway.translate.usage import merge_usage
from gateway.upstream.client import relayed_headers


async def create_response(request: web.Request) -> web.StreamResponse:
    ctx, body, route = await routed_request(request)
    model = body["model"]
    store = ctx.served.store
    client = ctx.client.name if ctx.client is not None else None
    # The gateway's seal for this client: what it seals opens for this client only.
    seal, unseal = partial(ctx.runtime.seal.seal, client=client), partial(ctx.runtime.seal.open, client=client)
    keep = store is not None and body.get("store", True) is not False
    resolved: Resolved | None = None
    if store is not None:
        resolved = await store.resolve(body, client, keep)
        if resolved is not None:
            body = {**{k: v for k, v in body.items() if k != "previous_response_id"}, "input": resolved.items}

    def translate() -> TranslatedResponsesRequest:
        # Before an upstream is chosen, so a bad request is a 400 even while no token is usable.
        return responses_to_messages(
            body,
            max_tokens_default=route.max_tokens_default,
            open_reasoning=unseal,
            auto_cache=route.auto_cache,
            structured_outputs=route.structured_outputs,
        )

    # A stored conversation is input the client did not send: measured for the quota it draws on.
    stored = len(orjson.dumps(resolved.items)) if resolved is not None and route.metered else None
    exchange, upstream_response, translated = await open_translated(request, ctx, route, translate, body, stored)
    frame = ResponseFrame(
        new_response_id(), model, int(time.time()), translated.echo, seal, translated.json_tool, translated.namespaced
    )

    async def kept(response: dict[str, Any]) -> None:
        assert store is not None and resolved is not None
        await store.save(response, resolved, client)

    if translated.stream:
        translator = ResponsesStreamTranslator(frame)
        max_event = ctx.runtime.config.server.max_upstream_event_bytes
        stream = ResponsesStream(translator, max_event, kept if keep else None)
        return await relay_stream(request, ctx, upstream_response, stream)
    _, message = await exchange.answer(upstream_response)
    merge_usage(ctx.usage, message.get("usage"))
    response = message_to_response(message, frame)
    ctx.answered(message, response["id"])
    if keep:
        await kept(response)
    return web.Response(
        body=orjson.dumps(response), content_type="application/json", headers=relayed_headers(upstream_response.headers)
    )


async def stored_response(request: web.Request) -> web.StreamResponse:
    """GET and DELETE /v1/responses/{id}."""
    response_id = request.match_info["response_id"]
    ctx = context(request)
    store = ctx.served.store
    if store is None:
        raise GatewayError(
            404,
            f"No response with id {echo(response_id)} is stored: this gateway keeps no responses "
            "(responses.store_ttl_seconds with state.redis keeps them)",
            "response_id",
        )
    client = ctx.client.name if ctx.client is not None else None
    if request.method == "DELETE":
        await store.delete(response_id, client)
        return web.json_response({"id": response_id, "object": "response.deleted", "deleted": True})
    return web.Response(body=orjson.dumps(await store.response(response_id, client)), content_type="application/json")
