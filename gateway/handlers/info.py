"""GET endpoints: the model list, liveness, readiness."""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.errors import GatewayError
from gateway.keys import LOAD, RUNTIME, context


async def list_models(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    client = context(request).client
    if client is None or client.routes is None:
        return web.Response(body=runtime.models_body, content_type="application/json")
    # A client sees only the models it may use.
    data = [_model(runtime.created, name) for name in runtime.routes if client.may_use(name)]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


def _model(created: int, name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": created, "owned_by": "anthropic"}


async def get_model(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    client = context(request).client
    name = request.match_info["model"]
    if client is not None and not client.may_use(name):
        # A model the client may not use does not exist for it.
        raise GatewayError(404, f"The model {name!r} does not exist on this gateway", "model")
    route = runtime.route(name, client)
    return web.Response(body=orjson.dumps(_model(runtime.created, route.name)), content_type="application/json")


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[LOAD].draining:
        # Fails at once on SIGTERM, so endpoints drop the pod while it still serves.
        return web.Response(body=b'{"status":"draining"}', status=503, content_type="application/json")
    ready, detail = request.app[RUNTIME].readiness()
    return web.Response(body=orjson.dumps(detail), status=200 if ready else 503, content_type="application/json")
