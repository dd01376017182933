"""create_app: the one place the gateway's routes, middleware and resources are put together."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import structlog
from aiohttp import HttpVersion11, web
from prometheus_client import CollectorRegistry

from gateway import reload
from gateway.app_keys import CONFIG_PATH, CONTEXT, DIALECTS, LIVE, LOAD, PUBLIC, RECORDER, SESSION, TRACING
from gateway.config import GatewayConfig
from gateway.errors import Dialect, GatewayError, echo
from gateway.handlers import chat_completions, info, messages, responses
from gateway.load import Load
from gateway.observability.logging import AccessLog
from gateway.observability.metrics import GatewayMetrics, QuotaCollector, TokenExpiryCollector
from gateway.observability.recorder import Recorder
from gateway.observability.request_context import RequestContext
from gateway.observability.request_tracing import RequestTracing
from gateway.quota.settlement import settle_quota
from gateway.runtime import OTHER_ROUTE
from gateway.served import Live, Served, served_for
from gateway.spend.prices import Spent
from gateway.translate.usage import BYTES_PER_TOKEN, settled_usage
from gateway.upstream.client import session_for

log = structlog.get_logger("gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    dialect: Dialect
    public: bool = False  # served without inbound authentication


# The API, in one table: it builds the router, says which dialect each path's errors are
# spelled in, and is what a 404 lists.
ENDPOINTS = (
    Endpoint("POST", "/v1/chat/completions", chat_completions.chat_completions, Dialect.OPENAI),
    Endpoint("POST", "/chat/completions", chat_completions.chat_completions, Dialect.OPENAI),
    Endpoint("POST", "/v1/responses", responses.create_response, Dialect.RESPONSES),
    Endpoint("POST", "/responses", responses.create_response, Dialect.RESPONSES),
    Endpoint("GET", "/v1/responses/{response_id}", responses.stored_response, Dialect.RESPONSES),
    Endpoint("DELETE", "/v1/responses/{response_id}", responses.stored_response, Dialect.RESPONSES),
    Endpoint("POST", "/v1/messages", messages.messages, Dialect.ANTHROPIC),
    Endpoint("POST", "/anthropic/v1/messages", messages.messages, Dialect.ANTHROPIC),
    Endpoint("POST", "/v1/messages/count_tokens", messages.count_tokens, Dialect.ANTHROPIC),
    Endpoint("POST", "/anthropic/v1/messages/count_tokens", messages.count_tokens, Dialect.ANTHROPIC),
    Endpoint("GET", "/v1/models", info.list_models, Dialect.OPENAI),
    Endpoint("GET", "/models", info.list_models, Dialect.OPENAI),
    Endpoint("GET", "/v1/models/{model}", info.get_model, Dialect.OPENAI),
    Endpoint("HEAD", "/", info.probe, Dialect.OPENAI, public=True),
)
_SERVED = ", ".join(f"{e.method} {e.path}" for e in ENDPOINTS)
_SEGMENTS = [(tuple(e.path.split("/")[1:]), e.dialect) for e in ENDPOINTS]


def dialect_of(path: str) -> Dialect:
    """The dialect of a path no endpoint matched (a 404 or 405): that of the endpoints sharing the
    most leading segments with it (/anthropic/x and /v1/messages/batches are Anthropic's), OpenAI's
    when that is a tie or none."""
    segments = path.split("/")[1:]
    best, dialects = 0, {Dialect.OPENAI}
    for endpoint, dialect in _SEGMENTS:
        shared = 0
        for a, b in zip(segments, endpoint, strict=False):
            if a != b:
                break
            shared += 1
        if shared > best:
            best, dialects = shared, {dialect}
        elif shared == best and shared:
            dialects.add(dialect)
    return dialects.pop() if len(dialects) == 1 else Dialect.OPENAI


def _error_response(err: GatewayError, ctx: RequestContext) -> web.Response:
    return web.Response(
        body=orjson.dumps(err.body(ctx.dialect, ctx.request_id)),
        status=err.status,
        content_type="application/json",
        headers=err.headers,
    )


def _http_error(exc: web.HTTPException, request: web.Request) -> GatewayError:
    if exc.status == 404:
        return GatewayError(404, f"No endpoint {request.method} {echo(request.path)}. This gateway serves {_SERVED}")
    if exc.status == 405:
        return GatewayError(405, f"Method {request.method} is not allowed on {echo(request.path)}")
    return GatewayError(exc.status, exc.text or exc.reason)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, errors in the caller's dialect, one access-log line and the request metrics; the
    request keeps what the config decided when it began (`Served`) to its end."""
    live = request.app[LIVE]
    served = live.take()
    try:
        ctx = _context(request, served)
        load = request.app[LOAD]
        if load.active >= load.limit:
            return _over_concurrency(request, ctx, load)
        load.active += 1
        response: web.StreamResponse
        try:
            try:
                if request.match_info.route not in request.app[PUBLIC]:
                    _authenticate(request, ctx)
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
            _finish(request, ctx, 499)
            raise
        finally:
            load.active -= 1
        if not response.prepared:  # a stream has sent these with its own headers (relay_stream)
            response.headers.update(ctx.response_headers())
        _finish(request, ctx, response.status)
        return response
    finally:
        live.release(served)


def _context(request: web.Request, served: Served) -> RequestContext:
    """The request's record: its id, its dialect, its trace, the session it belongs to."""
    ctx = RequestContext(
        request_id(request.headers.get("x-request-id")),
        request.app[DIALECTS].get(request.match_info.route) or dialect_of(request.path),
        served,
        served.runtime,
    )
    tracing = request.app[TRACING]
    if tracing is not None:
        ctx.span = tracing.server_span(request.headers)
    session = request.headers.get("x-claude-code-session-id")
    if session is not None:
        ctx.session_id = printable(session)
    request[CONTEXT] = ctx
    return ctx


def _over_concurrency(request: web.Request, ctx: RequestContext, load: Load) -> web.Response:
    request.app[RECORDER].concurrency_rejected()
    err = GatewayError(
        429,
        f"The gateway is serving its limit of {load.limit} concurrent requests; retry shortly",
        error_type="rate_limit_error",
        headers={"retry-after": "1"},
    )
    ctx.error = err.message
    _finish(request, ctx, err.status)
    response = _error_response(err, ctx)
    response.headers.update(ctx.response_headers())
    return response


def _authenticate(request: web.Request, ctx: RequestContext) -> None:
    """The caller's client, with inbound auth on; 401 (counted) for a caller it does not know."""
    inbound = ctx.runtime.inbound
    if inbound is None:
        return
    try:
        ctx.client = inbound.authenticate(request.headers)
    except GatewayError:
        request.app[RECORDER].inbound_rejected("unauthenticated")
        raise


def _finish(request: web.Request, ctx: RequestContext, status: int) -> None:
    """A request's end, however it ended: what it used and cost, settled against its client's
    limits and budget (in place of what admission reserved), then its metrics and access-log line."""
    recorder = request.app[RECORDER]
    if ctx.streamed is not None:
        ctx.take_in_stream()
    target = ctx.outcome.target
    # Foundry bills an answer it gave, and one it was generating when the client left.
    billed = not ctx.free and (ctx.outcome.status == 200 or (ctx.client_disconnected and target is not None))
    estimate = (ctx.request_bytes // BYTES_PER_TOKEN, ctx.max_tokens or 0) if billed else None
    usage, ctx.usage_source = settled_usage(ctx.usage, estimate, ctx.relayed_output)
    if ctx.usage_source == "estimated" and not ctx.client_disconnected:
        recorder.usage_missing(ctx)  # a whole answer without its usage: the upstream's fault, counted
    if usage:
        ctx.spent = Spent.of(usage, target.price if target is not None else None)
    if ctx.client is not None and ctx.client.limited:
        spent = ctx.spent
        tokens, usd = (spent.tokens.total, spent.usd or 0.0) if spent is not None else (0, 0.0)
        ctx.served.limiter.settle(ctx.client, ctx.standing, tokens, usd)
    outcome = ctx.outcome
    if outcome.charge is not None and target is not None:
        runtime = ctx.runtime
        settle_quota(runtime.quota, outcome.charge, usage, outcome.session, target.affinity_id)
    recorder.finish(ctx, request.method, request.path, status)
    span = ctx.span
    tracing = request.app[TRACING]
    if span is not None and tracing is not None:
        # Spans are named for their model route; one that reached none, for its endpoint.
        name = "" if ctx.route != OTHER_ROUTE else f"{request.method} {_template(request)}"
        tracing.end_request(span, ctx, status, name)


def _template(request: web.Request) -> str:
    """The endpoint's path template (/v1/responses/{response_id}): a span name of few values."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no endpoint)"


def request_id(given: str | None) -> str:
    """The caller's x-request-id when it is printable ASCII of a sane length, else a fresh one: it
    goes into a response header and every log line, which bytes of any other kind would break."""
    return printable(given) or os.urandom(16).hex()


def printable(given: str | None) -> str | None:
    """A caller's identifier kept for the log: printable ASCII of at most 128 characters, else none."""
    if given and len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return None


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


async def span_export(app: web.Application) -> AsyncIterator[None]:
    """With tracing on, the span export process: started first, closed last, so the last requests'
    spans are exported before the gateway exits. An OTEL_* value the SDK refuses stops start-up."""
    tracing = app[TRACING]
    if tracing is None:
        yield
        return
    recorder = app[RECORDER]
    await tracing.link.start(recorder.spans_dropped)
    recorder.watch_span_exporter(lambda: tracing.link.pid)
    yield
    await tracing.link.close()


async def upstream_session(app: web.Application) -> AsyncIterator[None]:
    """The one connection pool to Foundry."""
    app[SESSION] = session_for(app[LIVE].current.config.server.upstream_connections)
    yield
    await app[SESSION].close()


async def served_state(app: web.Application) -> AsyncIterator[None]:
    """What the config decides (runtime, limiter, response store, quota leases): started with the
    gateway, closed at exit, whichever is current."""
    app[LIVE].start()
    yield
    await app[LIVE].close()


async def config_watcher(app: web.Application) -> AsyncIterator[None]:
    """Reloads on a change of the config file, when the gateway was started from one."""
    path = app[CONFIG_PATH]
    task = asyncio.create_task(reload.watch(app, path)) if path is not None else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(
    config: GatewayConfig,
    registry: CollectorRegistry | None = None,
    config_path: Path | None = None,
    tracing: RequestTracing | None = None,
) -> web.Application:
    """The API application. Its health and metrics are served by `create_admin_app(app, registry)`."""
    registry = registry or CollectorRegistry()
    app = web.Application(middlewares=[observe], client_max_size=config.server.max_body_bytes)
    app[RECORDER] = Recorder(GatewayMetrics(registry), AccessLog(config.logging.level, config.logging.format))
    app[LIVE] = Live(served_for(config, app[RECORDER]))
    app[LOAD] = Load(config.server.max_concurrent_requests)
    app[TRACING] = tracing
    app[CONFIG_PATH] = config_path
    # The gauge reads the one count the concurrency limit keeps, at scrape time.
    app[RECORDER].watch_in_flight(lambda: app[LOAD].active)
    registry.register(
        TokenExpiryCollector(
            lambda: [(name, u.credential.status().expires_on) for name, u in app[LIVE].runtime.upstreams.items()]
        )
    )
    registry.register(QuotaCollector(lambda: app[LIVE].runtime.quota_state()))
    app.cleanup_ctx.extend((span_export, upstream_session, served_state, config_watcher))
    _add_endpoints(app)
    return app


def _add_endpoints(app: web.Application) -> None:
    dialects = {}
    public = set()
    for endpoint in ENDPOINTS:
        expect = expect_continue if endpoint.method == "POST" else None  # only a POST has a body to hold back
        route = app.router.add_route(endpoint.method, endpoint.path, endpoint.handler, expect_handler=expect)
        dialects[route] = endpoint.dialect
        if endpoint.public:
            public.add(route)
    app[DIALECTS] = dialects
    app[PUBLIC] = frozenset(public)
