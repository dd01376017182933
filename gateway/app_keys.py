"""Every key the gateway stores on its application or its requests, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from aiohttp.web_urldispatcher import AbstractRoute

    from gateway.errors import Dialect
    from gateway.load import Load
    from gateway.observability.recorder import Recorder
    from gateway.observability.request_context import RequestContext
    from gateway.observability.request_tracing import RequestTracing
    from gateway.served import Live

# What the config decides (runtime, limiter, response store), as new requests take it; a reload
# swaps what it holds, never the application's keys.
LIVE: web.AppKey[Live] = web.AppKey("live")
RECORDER: web.AppKey[Recorder] = web.AppKey("recorder")
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")
LOAD: web.AppKey[Load] = web.AppKey("load")
# Each API route's dialect, from the endpoint table (gateway/app.py).
DIALECTS: web.AppKey[dict[AbstractRoute, Dialect]] = web.AppKey("dialects")
# The API routes served without inbound authentication (HEAD /).
PUBLIC: web.AppKey[frozenset[AbstractRoute]] = web.AppKey("public")

# Set when OTEL_TRACES_EXPORTER names an exporter; None: tracing is off and costs nothing.
TRACING: web.AppKey[RequestTracing | None] = web.AppKey("tracing")

# The config file a reload reads; None: the config was given, not read from a file.
CONFIG_PATH: web.AppKey[Path | None] = web.AppKey("config_path")

# Per request.
CONTEXT: web.RequestKey[RequestContext] = web.RequestKey("context")


def context(request: web.Request) -> RequestContext:
    return request[CONTEXT]
