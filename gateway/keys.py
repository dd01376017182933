"""Every key the gateway stores on its application or its requests, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from gateway.context import Load, RequestContext
    from gateway.observability.logging import AccessLog
    from gateway.observability.metrics import GatewayMetrics
    from gateway.runtime import Live

# The runtime new requests take; a reload swaps what it holds, never the application's keys.
LIVE: web.AppKey[Live] = web.AppKey("live")
METRICS: web.AppKey[GatewayMetrics] = web.AppKey("metrics")
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")
LOAD: web.AppKey[Load] = web.AppKey("load")
ACCESS_LOG: web.AppKey[AccessLog] = web.AppKey("access_log")

# Per request.
CONTEXT: web.RequestKey[RequestContext] = web.RequestKey("context")


def context(request: web.Request) -> RequestContext:
    return request[CONTEXT]
