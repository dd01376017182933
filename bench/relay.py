"""The ceiling: a minimal aiohttp pass-through, no translation, no metrics, no logs.

python bench/relay.py PORT UPSTREAM_BASE (e.g. http://127.0.0.1:9000/anthropic)
"""

from __future__ import annotations

import sys

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM = sys.argv[2]
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "bench-key"}


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    async with request.app["session"].post(UPSTREAM + "/anthropic/v1/messages", data=body, headers=HEADERS) as upstream:
        response = web.StreamResponse(status=upstream.status, headers={"content-type": upstream.content_type})
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def session(app: web.Application):
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app["session"].close()


app = web.Application()
app.cleanup_ctx.append(session)
app.router.add_post("/v1/messages", relay)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
