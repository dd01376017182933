"""GET endpoints: the model list, liveness, readiness."""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.keys import LOAD, RUNTIME


async def list_models(request: web.Request) -> web.Response:
    return web.Response(body=request.app[RUNTIME].models_body, content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    route = runtime.route(request.match_info["model"])
    model = {"id": route.name, "object": "model", "created": runtime.created, "owned_by": "anthropic"}
    return web.Response(body=orjson.dumps(model), content_type="application/json")


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[LOAD].draining:
        # Fails at once on SIGTERM, so endpoints drop the pod while it still serves.
        return web.Response(body=b'{"status":"draining"}', status=503, content_type="application/json")
    ready, detail = request.app[RUNTIME].readiness()
    return web.Response(body=orjson.dumps(detail), status=200 if ready else 503, content_type="application/json")
