"""POST /v1/chat/completions: OpenAI Chat Completions, served by Claude through the Messages API."""

from __future__ import annotations

import time

import aiohttp
import orjson
from aiohttp import web

from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.handlers.forward import admit, model_of, open_exchange, read_json_object
from gateway.handlers.streaming import ClientGone, cut_stream, finish, open_sse, relay_chunks, stream_failure
from gateway.handlers.streaming import write as _write
from gateway.keys import RUNTIME, context
from gateway.routing import Target
from gateway.sse import DONE, SSEDecoder, encode_data
from gateway.translate.openai_request import TranslatedRequest, chat_to_messages
from gateway.translate.openai_response import message_to_completion
from gateway.translate.openai_stream import ChatStreamTranslator, StreamError
from gateway.upstream import read_body, relayed_headers


async def chat_completions(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    runtime = request.app[RUNTIME]
    body = await read_json_object(request)
    model = model_of(body)
    route = runtime.route(model, ctx.client)
    ctx.route = route.name
    admit(request, ctx, route)
    # Translated before an upstream is chosen, so a bad request is a 400 even while no token is usable.
    translated = chat_to_messages(body, max_tokens_default=route.max_tokens_default)

    def body_for(target: Target) -> bytes:
        return orjson.dumps({"model": target.deployment, **translated.body})

    upstream_response = await open_exchange(request, ctx, runtime, route, body_for, native=False)
    ctx.stream = translated.stream
    created = int(time.time())
    try:
        if translated.stream:
            return await _stream(request, ctx, upstream_response, translated, model, created)
        assert ctx.target is not None
        raw = await read_body(upstream_response, ctx.target)
    finally:
        upstream_response.release()
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        raise GatewayError(502, "upstream answered 200 with a body that is not a Messages API message")
    ctx.usage = message.get("usage") or {}
    completion = message_to_completion(message, model=model, created=created, json_tool=translated.json_tool)
    return web.Response(
        body=orjson.dumps(completion),
        content_type="application/json",
        headers=relayed_headers(upstream_response.headers),
    )


async def _stream(
    request: web.Request,
    ctx: RequestContext,
    upstream_response: aiohttp.ClientResponse,
    translated: TranslatedRequest,
    model: str,
    created: int,
) -> web.StreamResponse:
    translator = ChatStreamTranslator(
        model=model, created=created, include_usage=translated.include_usage, json_tool=translated.json_tool
    )
    decoder = SSEDecoder()
    response = await open_sse(request, upstream_response)
    # The last read's events wait here, to go out with [DONE] (or the error) and the end of the body.
    last = b""
    try:
        try:
            async for chunk in relay_chunks(request, response, upstream_response):
                complete = decoder.complete(chunk)
                if complete is None:
                    continue
                out: list[bytes] = []
                try:
                    translator.translate(complete, out)
                finally:
                    # What came before a failure in the same read still goes to the client, in order.
                    last = b"".join(out)
                    if translator.delta_seen:
                        ctx.mark_first_token()
                if translator.stopped:
                    break
                if last:
                    await _write(response, last)
                    last = b""
            if not translator.stopped:
                raise cut_stream()
            last += DONE
        except StreamError as exc:
            ctx.stream_error = exc.error_type
            last += encode_data({"error": stream_failure(exc).openai_body()["error"]})
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure = stream_failure(exc)
            ctx.stream_error = failure.anthropic_type
            last += encode_data(failure.openai_body())
        finally:
            ctx.usage = dict(translator.usage)
        await finish(response, last)
    except ClientGone:
        ctx.client_disconnected = True
    return response
