"""The admin listener: liveness, readiness and metrics, on a port of their own.

Kept off the API port: /readyz names every route and upstream and /metrics every client, which
is for the kubelet and Prometheus, not for every caller that can reach the Service.
"""

from __future__ import annotations

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from gateway.app_keys import LIVE, LOAD


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[LOAD].draining:
        # Fails at once on SIGTERM, so endpoints drop the pod while it still serves.
        return web.Response(body=b'{"status":"draining"}', status=503, content_type="application/json")
    ready, detail = request.app[LIVE].runtime.readiness()
    return web.Response(body=orjson.dumps(detail), status=200 if ready else 503, content_type="application/json")


def create_admin_app(api: web.Application, registry: CollectorRegistry) -> web.Application:
    """The admin app over the API app's state (the same runtime, load and metrics registry)."""
    app = web.Application()
    app[LIVE] = api[LIVE]
    app[LOAD] = api[LOAD]
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    return app
