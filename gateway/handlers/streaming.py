"""What the two streaming relays share: response headers, client writes, and mid-stream failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway.errors import GatewayError
from gateway.translate.openai_stream import StreamError
from gateway.upstream import relayed_headers

HEARTBEAT = b": keep-alive\n\n"

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGone(Exception):
    """The client closed its connection; nothing more can be sent to it."""


async def write(response: web.StreamResponse, data: bytes | bytearray) -> None:
    try:
        await response.write(data)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
        raise ClientGone from exc


def stream_failure(exc: BaseException) -> GatewayError:
    """The error a client sees when its stream breaks after the response has started."""
    if isinstance(exc, StreamError):
        return GatewayError(502, f"upstream stream failed: {exc.message}", error_type=exc.error_type)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return GatewayError(504, "upstream stream stalled: no data within the read timeout", error_type="timeout_error")
    return GatewayError(
        502, f"upstream stream failed: the connection was cut ({type(exc).__name__})", error_type="api_error"
    )


async def chunks(content: aiohttp.StreamReader, heartbeat: float) -> AsyncIterator[bytes | None]:
    """The upstream body as it arrives; None whenever it has been quiet for `heartbeat` seconds.

    The read is never cancelled for a heartbeat (no data can be lost); silence beyond the
    upstream's read timeout still ends in a TimeoutError from aiohttp.
    """
    read: asyncio.Future[bytes] | None = None
    try:
        while True:
            read = asyncio.ensure_future(content.readany())
            while not read.done():
                done, _ = await asyncio.wait((read,), timeout=heartbeat)
                if not done:
                    yield None
            chunk = read.result()
            read = None
            if not chunk:
                return
            yield chunk
    finally:
        if read is not None and not read.done():
            read.cancel()


async def open_sse(request: web.Request, upstream_response: aiohttp.ClientResponse) -> web.StreamResponse:
    """The client's event stream, with the upstream's retry hints and request ids."""
    response = web.StreamResponse(headers={**SSE_HEADERS, **relayed_headers(upstream_response.headers)})
    await response.prepare(request)
    return response


async def relay_chunks(
    response: web.StreamResponse, upstream_response: aiohttp.ClientResponse, heartbeat: float
) -> AsyncIterator[bytes]:
    """The upstream's chunks; while it is quiet, heartbeat comments go to the client meanwhile."""
    async for chunk in chunks(upstream_response.content, heartbeat):
        if chunk is None:
            await write(response, HEARTBEAT)
        else:
            yield chunk


def cut_stream() -> StreamError:
    return StreamError("api_error", "upstream stream ended before message_stop: the connection was cut")
