"""What the two streaming relays share: response headers, client writes, and mid-stream failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from gateway.errors import GatewayError
from gateway.keys import RUNTIME, context
from gateway.translate.openai_stream import StreamError
from gateway.upstream import relayed_headers

HEARTBEAT = b": keep-alive\n\n"

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGone(Exception):
    """The client closed its connection; nothing more can be sent to it."""


# What a write to a client that has closed its connection raises.
_CLIENT_RESET = (ConnectionResetError, aiohttp.ClientConnectionResetError)


async def write(response: web.StreamResponse, data: bytes | bytearray) -> None:
    try:
        await response.write(data)
    except _CLIENT_RESET as exc:
        raise ClientGone from exc


async def finish(response: web.StreamResponse, last: bytes) -> None:
    """The stream's last bytes and the end of its chunked body, in one write: a socket write is
    the costliest step of a relayed read, and a stream that ends with a separate one pays twice."""
    try:
        await response.write_eof(last)
    except _CLIENT_RESET as exc:
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


async def open_sse(request: web.Request, upstream_response: aiohttp.ClientResponse) -> web.StreamResponse:
    """The client's event stream, with the upstream's retry hints and request ids."""
    response = web.StreamResponse(headers={**SSE_HEADERS, **relayed_headers(upstream_response.headers)})
    response.headers["x-request-id"] = context(request).request_id
    await response.prepare(request)
    return response


async def relay_chunks(
    request: web.Request,
    response: web.StreamResponse,
    upstream_response: aiohttp.ClientResponse,
    between_events: Callable[[], bool] = lambda: True,
) -> AsyncIterator[bytes]:
    """The upstream's chunks as they arrive; while it is quiet, heartbeat comments go to the client.

    A heartbeat is written only while the caller is waiting for the upstream (not while it is
    still writing a chunk to a slow client) and, per `between_events`, never inside an event
    the client has only part of. Silence beyond the upstream's read timeout still ends in a
    TimeoutError from aiohttp.
    """
    beat = Heartbeat(response, request.app[RUNTIME].config.server.heartbeat_seconds, between_events)
    try:
        content = upstream_response.content
        while chunk := await content.readany():
            beat.busy = True
            yield chunk
            beat.busy = False
            beat.last = beat.loop.time()
    finally:
        beat.stop()


class Heartbeat:
    """Writes an SSE comment to the client each time the upstream has been quiet for `interval`.

    A timer per stream, re-armed from the time of the last chunk, rather than a timeout around
    every read: reads are the hot path, and a quiet stream is the rare case.
    """

    __slots__ = ("_between_events", "_timer", "_writing", "busy", "interval", "last", "loop", "response")

    def __init__(self, response: web.StreamResponse, interval: float, between_events: Callable[[], bool]) -> None:
        self.response = response
        self.interval = interval
        self.busy = False
        self._between_events = between_events
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        self._writing: asyncio.Task[None] | None = None
        self._timer = self.loop.call_at(self.last + interval, self._due)

    def _due(self) -> None:
        now = self.loop.time()
        due = self.last + self.interval  # one comparison with `now`: float rounding must not skip a beat
        idle = not self.busy and (self._writing is None or self._writing.done()) and self._between_events()
        if now >= due and idle:
            self._writing = self.loop.create_task(self._beat())
            self.last = now
            due = now + self.interval
        # Overdue but not idle (a slow client, half an event): look again an interval from now.
        self._timer = self.loop.call_at(due if due > now else now + self.interval, self._due)

    async def _beat(self) -> None:
        # A client that is gone shows up in the relay's own next write; nothing to do here.
        with contextlib.suppress(ClientGone):
            await write(self.response, HEARTBEAT)

    def stop(self) -> None:
        self._timer.cancel()
        if self._writing is not None:
            self._writing.cancel()


def cut_stream() -> StreamError:
    return StreamError("api_error", "upstream stream ended before message_stop: the connection was cut")
