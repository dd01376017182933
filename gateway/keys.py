"""Every key the gateway stores on its application or its requests, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from aiohttp.web_urldispatcher import AbstractRoute

    from gateway.context import Load, RequestContext
    from gateway.errors import Dialect
    from gateway.observability.recorder import Recorder
    from gateway.observability.request_tracing import RequestTracing
    from gateway.responses_store import ResponseStore
    from gateway.runtime import Live
    from gateway.spend.limits import LimiterSlot

# The runtime new requests take; a reload swaps what it holds, never the application's keys.
LIVE: web.AppKey[Live] = web.AppKey("live")
RECORDER: web.AppKey[Recorder] = web.AppKey("recorder")
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")
LOAD: web.AppKey[Load] = web.AppKey("load")
# Clients' rate limits and budgets: per pod, or shared through Redis (state.redis).
LIMITER: web.AppKey[LimiterSlot] = web.AppKey("limiter")
# Each API route's dialect, from the endpoint table (gateway/app.py).
DIALECTS: web.AppKey[dict[AbstractRoute, Dialect]] = web.AppKey("dialects")
# The API routes served without inbound authentication (HEAD /).
PUBLIC: web.AppKey[frozenset[AbstractRoute]] = web.AppKey("public")

# Set when OTEL_TRACES_EXPORTER names an exporter; None: tracing is off and costs nothing.
TRACING: web.AppKey[RequestTracing | None] = web.AppKey("tracing")

# Responses kept for previous_response_id and GET /v1/responses/{id}; None: nothing is stored.
STORE: web.AppKey[ResponseStore | None] = web.AppKey("store")

# Per request.
CONTEXT: web.RequestKey[RequestContext] = web.RequestKey("context")


def context(request: web.Request) -> RequestContext:
    return request[CONTEXT]
