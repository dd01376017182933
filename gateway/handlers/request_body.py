"""What every dialect does with a request before the exchange: read its JSON (bounded, inflated),
find the route its model names, admit its client."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp
import orjson
from aiohttp import web

from gateway.app_keys import RECORDER, SESSION, TRACING, context
from gateway.capabilities.fit import has_downgrade, refuse_lacking_server_tools
from gateway.capabilities.learning import refused_features
from gateway.errors import GatewayError, echo, invalid_request, too_deeply_nested
from gateway.observability.request_context import RequestContext
from gateway.observability.request_tracing import AttemptTracing
from gateway.quota.affinity import session_key
from gateway.quota.scheduler import Ask
from gateway.spend.limits import NO_RESERVATION, reservation
from gateway.translate.usage import BYTES_PER_TOKEN, MAX_TOKEN_COUNT
from gateway.upstream.exchange import Exchange
from gateway.upstream.targets import Route, Target

# Bodies at least this large are decompressed off the event loop.
_INLINE_DECOMPRESS_BYTES = 256 * 1024


async def read_json_object(request: web.Request, ctx: RequestContext) -> tuple[dict[str, Any], int]:
    """The request's JSON object, and its size in bytes as sent (inflated)."""
    server = ctx.runtime.config.server
    length = request.content_length
    if length is not None and length > server.max_body_bytes:
        # Refused before a byte is read (with Expect: 100-continue, before a byte is sent).
        raise _too_large(server.max_body_bytes)
    try:
        if request.content.is_eof():
            raw = await request.read()  # all here already (the common case): no timer to arm
        else:
            async with asyncio.timeout(server.body_read_timeout_seconds):
                raw = await request.read()
    except TimeoutError:
        raise GatewayError(
            408, f"Request body not received within {server.body_read_timeout_seconds:g} s", error_type="timeout_error"
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(server.max_body_bytes) from None
    encoding = request.headers.get("content-encoding")
    if encoding is not None:
        raw = await _decoded(raw, encoding, server.max_body_bytes)
    if not raw:
        raise invalid_request("Request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise too_deeply_nested() from None
        raise invalid_request(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object")
    for field in ("messages", "input"):  # Chat and Messages send messages; the Responses API, input items
        items = body.get(field)
        if isinstance(items, list) and len(items) > server.max_messages:
            raise invalid_request(
                f"'{field}' holds {len(items)} items; this gateway accepts {server.max_messages} (server.max_messages)",
                field,
            )
    return body, len(raw)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, f"Request body is larger than the {limit} bytes this gateway accepts", error_type="request_too_large"
    )


async def _decoded(raw: bytes, encoding: str, limit: int) -> bytes:
    """A compressed request body, inflated to at most `limit` bytes (a small bomb must not become a large body)."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return raw
    if name not in ("gzip", "x-gzip", "deflate"):
        raise GatewayError(
            415,
            f"Content-Encoding {echo(encoding)} is not supported; send the body uncompressed, or as gzip or deflate",
            error_type="invalid_request_error",
        )
    inflate = _inflate_gzip if name != "deflate" else _inflate_deflate
    try:
        if len(raw) < _INLINE_DECOMPRESS_BYTES:
            body = inflate(raw, limit)
        else:
            body = await asyncio.to_thread(inflate, raw, limit)
    except zlib.error as exc:
        raise invalid_request(
            f"Request body is not valid {name} ({exc}); send it uncompressed or fix the encoding"
        ) from None
    if body is None:
        raise _too_large(limit)
    return body


def _inflate_gzip(raw: bytes, limit: int) -> bytes | None:
    return _inflate(zlib.decompressobj(16 + zlib.MAX_WBITS), raw, limit)


def _inflate_deflate(raw: bytes, limit: int) -> bytes | None:
    # HTTP's deflate is the zlib format, but some clients send raw deflate: accept both, as browsers do.
    try:
        return _inflate(zlib.decompressobj(zlib.MAX_WBITS), raw, limit)
    except zlib.error:
        return _inflate(zlib.decompressobj(-zlib.MAX_WBITS), raw, limit)


def _inflate(inflater: Any, raw: bytes, limit: int) -> bytes | None:
    """None when the body inflates past `limit`; zlib.error when it is not what it claims to be."""
    body: bytes = inflater.decompress(raw, limit + 1)
    if len(body) > limit or inflater.unconsumed_tail:
        return None
    if not inflater.eof:
        raise zlib.error("the compressed data ends early")
    return body


# What an OpenAI request that names no output bound is reserved for, when its route names none either.
_UNBOUNDED_OUTPUT = 32_000


def estimate_tokens(body: Mapping[str, Any], size: int, route: Route) -> tuple[int, int]:
    """(input, output) tokens a request may use, without a tokenizer: its body's bytes, and the
    output bound it sends (each dialect names it differently) or its route's default."""
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(name)
        if type(value) is int and value > 0:
            output = value
            break
    else:
        output = route.max_tokens_default or _UNBOUNDED_OUTPUT
    return size // BYTES_PER_TOKEN, min(output, MAX_TOKEN_COUNT)


async def admit(request: web.Request, ctx: RequestContext, route: Route, body: dict[str, Any]) -> None:
    """With inbound auth on: the client may use this route, and is within its limits and budget;
    what the request may cost is reserved against the budget until it ends."""
    client = ctx.client
    if client is None:
        return
    if not client.may_use(route.name):
        request.app[RECORDER].inbound_rejected("forbidden_route")
        raise GatewayError(
            403,
            f"Client {client.name!r} may not use model {route.name!r}",
            param="model",
            error_type="permission_error",
        )
    if not client.limited:
        return
    try:
        reserve = NO_RESERVATION
        if client.budget is not None:
            reserve = reservation(*estimate_tokens(body, ctx.request_bytes, route), [t.price for t in route.targets])
        ctx.standing = await ctx.served.limiter.admit(client, reserve)
    except GatewayError as exc:
        if exc.status == 429:
            request.app[RECORDER].inbound_rejected("over_budget" if "budget" in exc.message else "rate_limited")
        raise


async def routed_request(request: web.Request) -> tuple[RequestContext, dict[str, Any], Route]:
    """The request's context, its JSON body and the route its model names, with its client admitted."""
    ctx = context(request)
    body, size = await read_json_object(request, ctx)
    route = ctx.runtime.route(model_of(body), ctx.client)
    ctx.route = route.name
    ctx.request_bytes = size
    await admit(request, ctx, route, body)
    return ctx, body, route


def exchange_for(request: web.Request, ctx: RequestContext, ask: Ask | None = None) -> Exchange:
    """The request's exchange; the request's record reads its outcome at the end."""
    tracing = request.app[TRACING]
    tracer = AttemptTracing(tracing, ctx.span) if tracing is not None and ctx.span is not None else None
    runtime = ctx.runtime
    exchange = Exchange(
        request.app[SESSION], request.app[RECORDER], runtime.routing, runtime.config, ctx.request_id, request.headers,
        tracer, quota=runtime.quota, ask=ask,
    )  # fmt: skip
    ctx.outcome = exchange.outcome
    return exchange


def quota_ask(
    ctx: RequestContext,
    route: Route,
    client_body: Mapping[str, Any],
    messages_body: Mapping[str, Any],
    input_bytes: int,
) -> Ask | None:
    """What the request draws on its route's quota pools (None: the route meters none and places
    nothing). Its session is named only where placement uses it (strategy quota)."""
    if not route.metered and route.quota is None:
        return None
    client = ctx.client
    session = session_key(ctx.session_id, client_body, messages_body) if route.quota is not None else None
    input_tokens, output_tokens = estimate_tokens(messages_body, input_bytes, route)
    if client is None:
        return Ask("anonymous", "interactive", 1.0, session, input_tokens, output_tokens)
    return Ask(client.name, client.priority, client.share, session, input_tokens, output_tokens)


class Translated(Protocol):
    """A translated request: the Messages body (no model yet), and what the translation decided."""

    @property
    def body(self) -> Mapping[str, Any]: ...

    @property
    def stream(self) -> bool: ...

    @property
    def adjusted(self) -> tuple[str, ...]: ...


TranslatedT = TypeVar("TranslatedT", bound=Translated)


async def open_translated(
    request: web.Request,
    ctx: RequestContext,
    route: Route,
    translate: Callable[[], TranslatedT],
    client_body: Mapping[str, Any],
    input_bytes: int | None = None,
) -> tuple[Exchange, aiohttp.ClientResponse, TranslatedT]:
    """A translated dialect's exchange: its Messages body (`translate()`), with each target's deployment as
    the model, and the translation that was sent. `input_bytes`: the size of the input, where it is more
    than the client sent (a stored conversation)."""
    translated = translate()
    try:
        exchange, response = await _open_translated(request, ctx, route, translated, client_body, input_bytes)
    except GatewayError as refusal:
        if not learned_from(request, ctx, route, refusal):
            raise
        # Once, translated again: the route lacks what Foundry refused from now until the next config load.
        translated = translate()
        exchange, response = await _open_translated(request, ctx, route, translated, client_body, input_bytes)
    return exchange, response, translated


async def _open_translated(
    request: web.Request,
    ctx: RequestContext,
    route: Route,
    translated: Translated,
    client_body: Mapping[str, Any],
    input_bytes: int | None,
) -> tuple[Exchange, aiohttp.ClientResponse]:
    ctx.adjusted, ctx.stream = translated.adjusted, translated.stream
    ctx.max_tokens = translated.body["max_tokens"]
    body = translated.body
    refuse_lacking_server_tools(body, route.profile, route.name)  # web_search, where a deployment lacks it

    def body_for(target: Target) -> bytes:
        return orjson.dumps({"model": target.deployment, **body})

    ask = quota_ask(ctx, route, client_body, body, input_bytes or ctx.request_bytes)
    exchange = exchange_for(request, ctx, ask)
    return exchange, await exchange.open(route, body_for, native=False)


def learned_from(request: web.Request, ctx: RequestContext, route: Route, refusal: GatewayError) -> bool:
    """A refusal from Foundry naming a beta, field or server tool the route's profile did not say its
    deployment lacks: counted and logged; the route learns what has a faithful downgrade, and the
    caller may send the request once more without it (True)."""
    target = ctx.outcome.target
    findings = refused_features(refusal.status, refusal.message) if target is not None else ()
    if not findings or ctx.capability_refused:
        return False  # nothing the gateway knows, or the request was already sent once more
    assert target is not None
    retry = all(has_downgrade(f.kind, f.name) for f in findings)
    if retry:
        for finding in findings:
            route.profile.learn(finding.kind, finding.name)
    ctx.capability_refused = tuple(f.feature for f in findings)
    request.app[RECORDER].capability_refused(ctx.request_id, target, findings, retry)
    return retry


MAX_MODEL_NAME = 256  # model names and dated ids are a few dozen characters


def model_of(body: dict[str, Any]) -> str:
    """The model name a request sends: checked at the door, since the route lookup remembers names."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required and must be a string naming one of the gateway's models", "model")
    if len(model) > MAX_MODEL_NAME or not (model.isascii() and model.isprintable()):
        raise invalid_request(
            f"'model' must be at most {MAX_MODEL_NAME} printable ASCII characters naming one of the gateway's models",
            "model",
        )
    return model
