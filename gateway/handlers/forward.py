"""What both dialects share: reading the client's JSON, and opening the exchange with Foundry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway.context import RequestContext
from gateway.errors import GatewayError, invalid_request
from gateway.inbound import Inbound
from gateway.keys import METRICS, RUNTIME, SESSION
from gateway.metrics import GatewayMetrics
from gateway.resilience import RETRYABLE_STATUSES, retry_after_seconds
from gateway.routing import Route, Runtime, Target, Upstream
from gateway.upstream import error_from_upstream, post, read_body, request_headers


async def read_json_object(request: web.Request) -> dict[str, Any]:
    server = request.app[RUNTIME].config.server
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
        raise GatewayError(
            413,
            f"Request body is larger than the {server.max_body_bytes} bytes this gateway accepts",
            error_type="request_too_large",
        ) from None
    if not raw:
        raise invalid_request("Request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object")
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > server.max_messages:
        raise invalid_request(f"'messages' holds {len(messages)} messages; this gateway accepts {server.max_messages}")
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
        try:
            error_body = await read_body(response, target)
        finally:
            response.release()
        failure = error_from_upstream(response.status, error_body, target.upstream, response.headers)
        if response.status not in RETRYABLE_STATUSES:
            raise failure
        retry_after = retry_after_seconds(response.headers)
        _failed(runtime, metrics, target, response.status, retry_after if settings.retry_after_cooldown else None)
        if len(targets) == 1 and retry_after is not None:
            # A lone target: wait out a short retry-after ourselves, hand a long one back to the client.
            if retry_after > settings.retry_after_cap_seconds or attempt >= settings.max_attempts:
                break
            await asyncio.sleep(retry_after)
            runtime.health(target).cooling_until = 0.0
    assert failure is not None
    raise failure


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
    body = body_for(target)
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
