"""What both dialects share: reading the client's JSON, and opening the exchange with Foundry."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from typing import Any, TypeGuard

import aiohttp
import orjson
import structlog
from aiohttp import web

from gateway.context import RequestContext
from gateway.errors import GatewayError, echo, invalid_request
from gateway.inbound.clients import Inbound
from gateway.keys import METRICS, SESSION
from gateway.observability.metrics import GatewayMetrics
from gateway.runtime import Route, Runtime, Target, Upstream
from gateway.upstream.client import (
    UnusableAnswer,
    error_from_upstream,
    post,
    read_body,
    read_error_body,
    request_headers,
    unusable_status,
)
from gateway.upstream.retry import RETRYABLE_STATUSES, retry_after_seconds

log = structlog.get_logger("gateway")


# orjson writes at most this many levels of nesting; the gateway re-encodes every body it forwards.
MAX_JSON_DEPTH = 254

# Bodies at least this large are decompressed off the event loop.
_INLINE_DECOMPRESS_BYTES = 256 * 1024


async def read_json_object(request: web.Request, ctx: RequestContext) -> dict[str, Any]:
    server = ctx.runtime.config.server
    length = request.content_length
    if length is not None and length > server.max_body_bytes:
        raise _too_large(
            server.max_body_bytes
        )  # before reading a byte of it (and, with Expect: 100-continue, before it is sent)
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
            raise too_deep() from None
        raise invalid_request(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object")
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > server.max_messages:
        raise invalid_request(f"'messages' holds {len(messages)} messages; this gateway accepts {server.max_messages}")
    return body


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, f"Request body is larger than the {limit} bytes this gateway accepts", error_type="request_too_large"
    )


def too_deep() -> GatewayError:
    return invalid_request(
        f"Request body nests JSON more than {MAX_JSON_DEPTH} levels deep, the most this gateway forwards"
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


def admit(request: web.Request, ctx: RequestContext, route: Route) -> None:
    """With inbound auth on: the client may use this route, and is within its limits."""
    if ctx.client is None:
        return
    try:
        Inbound.admit(ctx.client, route.name)
    except GatewayError as exc:
        reason = "forbidden_route" if exc.status == 403 else "rate_limited"
        request.app[METRICS].inbound_rejections.labels(reason).inc()
        raise


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required and must be a string naming one of the gateway's models", "model")
    return model


async def open_exchange(
    request: web.Request,
    ctx: RequestContext,
    runtime: Runtime,
    route: Route,
    body_for: Callable[[Target], bytes],
    *,
    count_tokens: bool = False,
    native: bool,
) -> aiohttp.ClientResponse:
    """Send the request to the route's targets in turn until one answers 200.

    Retries happen only here, before anything has gone to the client: a connection error,
    a timeout or a retryable status moves to the next target (or, for a lone target, waits
    out a short retry-after), within max_attempts and the retry budget. The last failure
    becomes the client's error.
    """
    targets = runtime.plan(route)
    settings = runtime.config.retries
    metrics = request.app[METRICS]
    runtime.budget.record_request()
    failure: GatewayError | None = None
    attempt = 0
    while attempt < settings.max_attempts:
        target = targets[attempt % len(targets)]
        if attempt > 0:
            if not runtime.health(target).available() or not runtime.budget.try_retry():
                metrics.retries_denied.labels(route.name).inc()
                break
            ctx.retries += 1
            previous = targets[(attempt - 1) % len(targets)]
            kind = "fallback" if previous is not target else "retry"
            metrics.retries.labels(route.name, kind).inc()
        attempt += 1
        try:
            response = await _attempt(request, ctx, target, body_for, count_tokens=count_tokens, native=native)
        except GatewayError as exc:
            failure = exc
            if exc.status not in (502, 504):
                raise
            _failed(runtime, metrics, target, None, None)
            continue
        if response.status == 200:
            runtime.health(target).succeeded()
            return response
        unusable = unusable_status(target.upstream, response.status)
        if unusable is not None:
            response.close()
            note_unusable(metrics, ctx, unusable)
            failure = unusable
            _failed(runtime, metrics, target, None, None)
            continue
        try:
            error_body = await read_error_body(response, runtime.config.server.max_upstream_error_bytes)
        finally:
            response.release()
        failure = error_from_upstream(response.status, error_body, target.upstream, response.headers)
        if response.status not in RETRYABLE_STATUSES:
            raise failure
        retry_after = retry_after_seconds(response.headers, settings.cooldown_max_seconds)
        _failed(runtime, metrics, target, response.status, retry_after if settings.retry_after_cooldown else None)
        if len(targets) == 1 and retry_after is not None:
            # A lone target: wait out a short retry-after ourselves, hand a long one back to the client.
            if retry_after > settings.retry_after_cap_seconds or attempt >= settings.max_attempts:
                break
            await asyncio.sleep(retry_after)
            runtime.health(target).cooling_until = 0.0
    assert failure is not None
    raise failure


async def read_answer(
    request: web.Request, ctx: RequestContext, response: aiohttp.ClientResponse, runtime: Runtime
) -> bytes:
    """The body of a 200 answer, bounded by server.max_upstream_body_bytes."""
    assert ctx.target is not None
    try:
        return await read_body(response, ctx.target, runtime.config.server.max_upstream_body_bytes)
    except UnusableAnswer as exc:
        note_unusable(request.app[METRICS], ctx, exc)
        raise


def is_message(answer: Any) -> TypeGuard[dict[str, Any]]:
    """A Messages API message, as far as a relay must know: an object of type message with its content list."""
    return isinstance(answer, dict) and answer.get("type") == "message" and isinstance(answer.get("content"), list)


def not_an_answer(request: web.Request, ctx: RequestContext, what: str) -> UnusableAnswer:
    """A 200 whose body is not `what` the client asked for: counted, logged, and a 502 to raise."""
    assert ctx.target is not None
    exc = UnusableAnswer(ctx.target.upstream, "not_a_message", f"answered 200 with a body that is not {what}")
    note_unusable(request.app[METRICS], ctx, exc)
    return exc


def note_unusable(metrics: GatewayMetrics, ctx: RequestContext, exc: UnusableAnswer) -> None:
    """Count and log an upstream answer the gateway refused to pass on."""
    metrics.unusable_answers.labels(ctx.upstream or "unknown", exc.reason).inc()
    log.warning(
        "upstream_answer_refused",
        request_id=ctx.request_id,
        upstream=ctx.upstream,
        deployment=ctx.deployment,
        upstream_status=ctx.upstream_status,
        reason=exc.reason,
    )


def _failed(
    runtime: Runtime, metrics: GatewayMetrics, target: Target, status: int | None, retry_after: float | None
) -> None:
    if runtime.health(target).failed(status, retry_after):
        metrics.cooldowns.labels(target.upstream.name, target.deployment).inc()


async def _attempt(
    request: web.Request,
    ctx: RequestContext,
    target: Target,
    body_for: Callable[[Target], bytes],
    *,
    count_tokens: bool,
    native: bool,
) -> aiohttp.ClientResponse:
    """One target: its body, its credentials, one retry after a 401 if the token file changed."""
    upstream = target.upstream
    ctx.target = target
    ctx.upstream, ctx.deployment = upstream.name, target.deployment
    try:
        body = body_for(target)
    except orjson.JSONEncodeError:
        raise too_deep() from None  # parsed (orjson reads 1024 levels), but not re-encoded
    headers = request_headers(upstream, request.headers, ctx.request_id, native=native)
    url = upstream.count_tokens_url if count_tokens else upstream.messages_url
    metrics = request.app[METRICS]
    session = request.app[SESSION]
    response = await _send(session, metrics, target, url, body, headers)
    if response.status == 401 and _credential_changed(upstream, headers):
        # The sidecar wrote a token the recheck interval had not noticed yet: retry once with it.
        response.release()
        ctx.auth_retried = True
        headers = request_headers(upstream, request.headers, ctx.request_id, native=native)
        response = await _send(session, metrics, target, url, body, headers)
    ctx.upstream_status = response.status
    ctx.upstream_request_id = response.headers.get("request-id") or response.headers.get("apim-request-id")
    return response


def _credential_changed(upstream: Upstream, sent: dict[str, str]) -> bool:
    """Re-read the credential now; True when it differs from the one just refused."""
    upstream.credential.invalidate()
    if not upstream.credential.status().usable:
        return False
    return any(sent.get(name) != value for name, value in upstream.credential.headers().items())


async def _send(
    session: aiohttp.ClientSession,
    metrics: GatewayMetrics,
    target: Target,
    url: str,
    body: bytes,
    headers: dict[str, str],
) -> aiohttp.ClientResponse:
    upstream = target.upstream
    sent = time.perf_counter()
    try:
        response = await post(session, target, url, body, headers)
    except GatewayError as exc:
        metrics.upstream_requests_by(
            upstream.name, target.deployment, "timeout" if exc.status == 504 else "error"
        ).inc()
        raise
    metrics.upstream_duration_by(upstream.name).observe(time.perf_counter() - sent)
    metrics.upstream_requests_by(upstream.name, target.deployment, str(response.status)).inc()
    return response
