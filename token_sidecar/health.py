"""/healthz, /readyz and /metrics for the kubelet and Prometheus."""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from token_sidecar.refresher import TokenRefresher


def readiness(refreshers: Sequence[TokenRefresher], margin: float) -> tuple[bool, dict[str, object]]:
    """Ready while every token in place has more than `margin` seconds left."""
    now = time.time()
    tokens: dict[str, object] = {}
    ready = True
    for r in refreshers:
        remaining = r.remaining(now)
        ok = remaining > margin
        ready = ready and ok
        tokens[r.spec.name] = {
            "ready": ok,
            "expires_in_s": None if r.current is None else round(remaining),
            "consecutive_failures": r.failures,
            "last_error": r.last_error,
        }
    return ready, {"status": "ready" if ready else "not ready", "tokens": tokens}


def create_health_app(
    refreshers: Sequence[TokenRefresher], margin: float, registry: CollectorRegistry
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        # Alive while every refresh loop runs: one that has ended will never refresh its token again,
        # and only a restart brings it back.
        stopped = [r.spec.name for r in refreshers if r.task is not None and r.task.done()]
        if stopped:
            return web.json_response({"status": "refresh loop stopped", "tokens": stopped}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, detail = readiness(refreshers, margin)
        return web.Response(body=orjson.dumps(detail), status=200 if ready else 503, content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    return app
