"""POST /v1/chat/completions: OpenAI Chat Completions, served by Claude through the Messages API."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from gateway.context import RequestContext
from gateway.errors import GatewayError, StreamError
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
from gateway.sse import DONE, SSEDecoder, encode_data
from gateway.translate.chat_request import chat_to_messages
from gateway.translate.chat_response import message_to_completion
from gateway.translate.chat_stream import ChatStreamTranslator
from gateway.translate.usage import merge_usage
from gateway.upstream.client import relayed_headers


async def chat_completions(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    runtime = ctx.runtime
    body = await read_json_object(request, ctx)
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
            translator = ChatStreamTranslator(
                model=model, created=created, include_usage=translated.include_usage, json_tool=translated.json_tool
            )
            dialect = ChatStream(ctx, translator, runtime.config.server.max_upstream_event_bytes)
            return await relay_stream(request, ctx, upstream_response, dialect)
        raw = await read_answer(request, ctx, upstream_response, runtime)
    finally:
        upstream_response.release()
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        message = None
    if not is_message(message):
        raise not_an_answer(request, ctx, "a Messages API message")
    merge_usage(ctx.usage, message.get("usage"))
    completion = message_to_completion(message, model=model, created=created, json_tool=translated.json_tool)
    return web.Response(
        body=orjson.dumps(completion),
        content_type="application/json",
        headers=relayed_headers(upstream_response.headers),
    )


class ChatStream:
    """The Chat Completions dialect for the relay: whole upstream events in, chunks out."""

    __slots__ = ("_ctx", "_decoder", "_translator")

    pending = False  # only whole chunks are written: a heartbeat never lands inside one

    def __init__(self, ctx: RequestContext, translator: ChatStreamTranslator, max_event_bytes: int) -> None:
        self._ctx = ctx
        self._translator = translator
        self._decoder = SSEDecoder(max_event_bytes)

    @property
    def done(self) -> bool:
        return self._translator.stopped

    @property
    def usage(self) -> dict[str, Any]:
        return dict(self._translator.usage)

    def feed(self, chunk: bytes) -> bytes:
        complete = self._decoder.complete(chunk)
        if complete is None:
            return b""
        out: list[bytes] = []
        try:
            self._translator.translate(complete, out)
        except StreamError as exc:
            exc.before = b"".join(out)  # what came before the failure in the same read still goes, in order
            raise
        finally:
            if self._translator.delta_seen:
                self._ctx.mark_first_token()
        return b"".join(out)

    def ending(self) -> bytes:
        return DONE

    def error(self, failure: GatewayError) -> bytes:
        return encode_data(failure.openai_body())
