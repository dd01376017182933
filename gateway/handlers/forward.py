"""What both dialects share: reading the client's JSON, and opening the exchange with Foundry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway.context import RequestContext
from gateway.errors import GatewayError, invalid_request
from gateway.keys import METRICS, RUNTIME, SESSION
from gateway.metrics import GatewayMetrics
from gateway.routing import Route, Runtime, Target, Upstream
from gateway.upstream import error_from_upstream, post, read_body, request_headers


async def read_json_object(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[RUNTIME].config.server.max_body_bytes
        raise GatewayError(
            413, f"Request body is larger than the {limit} bytes this gateway accepts", error_type="request_too_large"
        ) from None
    if not raw:
        raise invalid_request("Request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object")
    return body


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
    """Send the request to a target of `route`; a non-200 answer becomes the client's error."""
    target = runtime.pick(route)
    upstream = target.upstream
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
    if response.status != 200:
        try:
            error_body = await read_body(response, upstream)
        finally:
            response.release()
        raise error_from_upstream(response.status, error_body, upstream, response.headers)
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
        response = await post(session, upstream, url, body, headers)
    except GatewayError as exc:
        metrics.upstream_requests.labels(
            upstream.name, target.deployment, "timeout" if exc.status == 504 else "error"
        ).inc()
        raise
    metrics.upstream_duration.labels(upstream.name).observe(time.perf_counter() - sent)
    metrics.upstream_requests.labels(upstream.name, target.deployment, str(response.status)).inc()
    return response
