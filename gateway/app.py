"""create_app: the one place the gateway's routes, middleware and resources are put together."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import structlog
from aiohttp import HttpVersion11, web
from prometheus_client import CollectorRegistry

from gateway import reload
from gateway.config import GatewayConfig
from gateway.context import Load, RequestContext
from gateway.errors import Dialect, GatewayError
from gateway.handlers import chat_completions, info, messages
from gateway.inbound.clients import Inbound
from gateway.keys import ACCESS_LOG, CONTEXT, LIVE, LOAD, METRICS, SESSION
from gateway.observability.logging import AccessLog
from gateway.observability.metrics import GatewayMetrics, TokenExpiryCollector
from gateway.runtime import Live, Runtime
from gateway.upstream.client import session_for

log = structlog.get_logger("gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ENDPOINTS = "POST /v1/chat/completions, POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models"


def dialect_of(path: str) -> Dialect:
    return Dialect.ANTHROPIC if path.startswith(("/v1/messages", "/anthropic/")) else Dialect.OPENAI


def _error_response(err: GatewayError, ctx: RequestContext) -> web.Response:
    response = web.Response(
        body=orjson.dumps(err.body(ctx.dialect, ctx.request_id)),
        status=err.status,
        content_type="application/json",
        headers=err.headers,
    )
    response.headers["x-request-id"] = ctx.request_id
    return response


def _http_error(exc: web.HTTPException, request: web.Request) -> GatewayError:
    if exc.status == 404:
        return GatewayError(404, f"No endpoint {request.method} {request.path}. This gateway serves {_ENDPOINTS}")
    if exc.status == 405:
        return GatewayError(405, f"Method {request.method} is not allowed on {request.path}")
    return GatewayError(exc.status, exc.text or exc.reason)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, errors in the caller's dialect, one access-log line and the request metrics."""
    ctx = RequestContext(
        request_id=request_id(request.headers.get("x-request-id")),
        dialect=dialect_of(request.path),
        runtime=request.app[LIVE].runtime,
    )
    request[CONTEXT] = ctx
    metrics = request.app[METRICS]
    load = request.app[LOAD]
    if load.active >= load.limit:
        metrics.concurrency_rejections.inc()
        err = GatewayError(
            429,
            f"The gateway is serving its limit of {load.limit} concurrent requests; retry shortly",
            error_type="rate_limit_error",
            headers={"retry-after": "1"},
        )
        ctx.error = err.message
        _record(request, ctx, err.status)
        return _error_response(err, ctx)
    load.active += 1
    response: web.StreamResponse
    try:
        try:
            inbound = ctx.runtime.inbound
            if inbound is not None:
                try:
                    ctx.client = inbound.authenticate(request.headers)
                except GatewayError:
                    metrics.inbound_rejections.labels("unauthenticated").inc()
                    raise
            response = await handler(request)
        except web.HTTPException as exc:
            raise _http_error(exc, request) from None
        except GatewayError:
            raise
        except Exception as exc:
            log.exception("unhandled_error", request_id=ctx.request_id)
            raise GatewayError(500, f"Internal gateway error (request id {ctx.request_id})") from exc
    except GatewayError as err:
        ctx.error = err.message
        response = _error_response(err, ctx)
    except asyncio.CancelledError:
        # The client went away and aiohttp cancelled the handler; the upstream request went with it.
        ctx.client_disconnected = True
        _record(request, ctx, 499)
        raise
    finally:
        load.active -= 1
    if not response.prepared:  # a stream has sent its id with its headers (relay_stream)
        response.headers["x-request-id"] = ctx.request_id
    _record(request, ctx, response.status)
    return response


def request_id(given: str | None) -> str:
    """The caller's x-request-id when it is printable ASCII of a sane length, else a fresh one: it
    goes into a response header and every log line, which bytes of any other kind would break."""
    if given and len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return os.urandom(16).hex()


async def expect_continue(request: web.Request) -> None:
    """`Expect: 100-continue` asks whether to send the body: yes only to a caller that is known
    and a body that fits. Otherwise no 100 is sent, and the handler answers 401 or 413 unread."""
    if request.version != HttpVersion11 or request.headers.get("expect", "").lower() != "100-continue":
        return  # an expectation it does not know a server may ignore (RFC 9110 10.1.1)
    runtime = request.app[LIVE].runtime
    if runtime.inbound is not None:
        try:
            runtime.inbound.authenticate(request.headers)
        except GatewayError:
            return
    length = request.content_length
    if length is not None and length > runtime.config.server.max_body_bytes:
        return
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # as aiohttp's own handler does: the response proper has not begun


def _record(request: web.Request, ctx: RequestContext, status: int) -> None:
    """The request's metrics and access-log line. Runs after the response is complete, so nothing
    here may raise: a failure would be written into a finished response."""
    try:
        _record_unsafe(request, ctx, status)
    except Exception:
        log.exception("request_record_failed", request_id=ctx.request_id)


def _record_unsafe(request: web.Request, ctx: RequestContext, status: int) -> None:
    metrics = request.app[METRICS]
    duration = time.perf_counter() - ctx.started
    dialect = ctx.dialect.value
    metrics.requests_by(ctx.route, dialect, str(status)).inc()
    metrics.request_duration_by(ctx.route, dialect).observe(duration)
    ttft = ctx.ttft
    if ttft is not None:
        metrics.time_to_first_token_by(ctx.route, dialect).observe(ttft)
        output_tokens = ctx.usage.get("output_tokens")
        if isinstance(output_tokens, int) and output_tokens > 1 and not ctx.stream_error:
            metrics.time_per_output_token_by(ctx.route, dialect).observe((duration - ttft) / (output_tokens - 1))
    if ctx.usage:
        metrics.record_tokens(ctx.route, ctx.usage)
    if ctx.stream_error:
        metrics.stream_errors.labels(ctx.route, dialect, ctx.stream_error).inc()
    if ctx.client_disconnected:
        metrics.client_disconnects.labels(ctx.route, dialect).inc()
    client = None
    if ctx.client is not None:
        client = ctx.client.name
        metrics.client_requests_by(client, ctx.route, str(status)).inc()
        used = ctx.usage.get("input_tokens", 0), ctx.usage.get("output_tokens", 0)
        Inbound.charge(ctx.client, sum(n for n in used if isinstance(n, int)))
    fields = {
        "request_id": ctx.request_id,
        "client": client,
        "method": request.method,
        "path": request.path,
        "dialect": dialect,
        "route": ctx.route,
        "upstream": ctx.upstream,
        "deployment": ctx.deployment,
        "status": status,
        "upstream_status": ctx.upstream_status,
        "upstream_request_id": ctx.upstream_request_id,
        "stream": ctx.stream,
        "duration_ms": round(duration * 1000, 2),
        "ttft_ms": None if ttft is None else round(ttft * 1000, 2),
        "input_tokens": ctx.usage.get("input_tokens"),
        "output_tokens": ctx.usage.get("output_tokens"),
        "cache_read_tokens": ctx.usage.get("cache_read_input_tokens"),
        "stream_error": ctx.stream_error,
        "client_disconnected": ctx.client_disconnected or None,
        "auth_retried": ctx.auth_retried or None,
        "retries": ctx.retries or None,
        "error": ctx.error,
    }
    # Unset fields are left out: one short line per request is what people read.
    request.app[ACCESS_LOG].record({k: v for k, v in fields.items() if v is not None})


def create_app(
    config: GatewayConfig, registry: CollectorRegistry | None = None, config_path: Path | None = None
) -> web.Application:
    """The API application. Its health and metrics are served by `create_admin_app(app, registry)`."""
    registry = registry or CollectorRegistry()
    app = web.Application(middlewares=[observe], client_max_size=config.server.max_body_bytes)
    app[LIVE] = Live(Runtime(config))
    app[METRICS] = GatewayMetrics(registry)
    app[LOAD] = Load(config.server.max_concurrent_requests)
    app[ACCESS_LOG] = AccessLog(config.logging.level, config.logging.format)
    # The gauge reads the one count the concurrency limit keeps, at scrape time.
    app[METRICS].in_flight.set_function(lambda: app[LOAD].active)
    registry.register(
        TokenExpiryCollector(
            lambda: [(name, u.credential.status().expires_on) for name, u in app[LIVE].runtime.upstreams.items()]
        )
    )

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = session_for(config.server.upstream_connections)
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(upstream_session)
    if config_path is not None:

        async def config_watcher(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(reload.watch(app, config_path))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(config_watcher)
    for path in ("/v1/chat/completions", "/chat/completions"):
        app.router.add_post(path, chat_completions.chat_completions, expect_handler=expect_continue)
    for prefix in ("", "/anthropic"):
        app.router.add_post(f"{prefix}/v1/messages", messages.messages, expect_handler=expect_continue)
        app.router.add_post(f"{prefix}/v1/messages/count_tokens", messages.count_tokens, expect_handler=expect_continue)
    app.router.add_get("/v1/models", info.list_models)
    app.router.add_get("/models", info.list_models)
    app.router.add_get("/v1/models/{model}", info.get_model)
    return app
