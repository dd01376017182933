"""GET /v1/models and /v1/models/{model}: the names a client may send; HEAD /: a connectivity probe."""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.app_keys import context
from gateway.errors import GatewayError, echo


async def list_models(request: web.Request) -> web.Response:
    """Route names and exact aliases (patterns cannot be listed). Claude Code's gateway model
    discovery reads this and keeps the ids that begin with `claude`."""
    ctx = context(request)
    runtime, client = ctx.runtime, ctx.client
    if client is None or client.routes is None:
        return web.Response(body=runtime.models_body, content_type="application/json")
    # A client sees only the models it may use.
    data = [runtime.model_entry(name) for name, route in runtime.names.items() if client.may_use(route.name)]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    ctx = context(request)
    runtime, client = ctx.runtime, ctx.client
    name = request.match_info["model"]
    route = runtime.route(name, client)
    if client is not None and not client.may_use(route.name):
        # A model the client may not use does not exist for it.
        raise GatewayError(404, f"The model {echo(name)} does not exist on this gateway", "model")
    return web.Response(body=orjson.dumps(runtime.model_entry(name)), content_type="application/json")


async def probe(_: web.Request) -> web.Response:
    """HEAD /: Claude Code's start-up connectivity check. It needs no key and says nothing."""
    return web.Response()
