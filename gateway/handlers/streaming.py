"""The one stream relay every dialect uses: upstream chunks in, the dialect's bytes out to the client.

A dialect supplies a `StreamDialect` (bytes in, bytes out, and its own ending and error
event); this module owns everything else once the client's response has started: its
headers, the writes, heartbeats, a client that goes away, and how a stream ends. Once the
response has started, every failure, whatever raised it, ends the stream with an error event
in the caller's dialect and a well-formed end of the chunked body: never an HTTP response
written inside it, never a stream that just stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import structlog
from aiohttp import web

from foundry_common import scrub
from gateway.errors import GatewayError, StreamError
from gateway.observability.request_context import RequestContext, StreamOutcome
from gateway.translate.usage import relayed_output_tokens
from gateway.upstream.client import relayed_headers

log = structlog.get_logger("gateway")

HEARTBEAT = b": keep-alive\n\n"

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGone(Exception):
    """The client closed its connection; nothing more can be sent to it."""


# What a write to a client that has closed its connection raises.
_CLIENT_RESET = (ConnectionResetError, aiohttp.ClientConnectionResetError)


class StreamDialect(Protocol):
    """What a dialect gives the relay. `feed` may raise StreamError, with `before` what it still owes."""

    @property
    def done(self) -> bool:
        """The upstream's stream has ended (message_stop, or an error event passed on)."""
        ...

    @property
    def pending(self) -> bool:
        """The client holds part of an event: a heartbeat now would land inside it."""
        ...

    @property
    def usage(self) -> dict[str, Any]: ...

    @property
    def stop_reason(self) -> str | None:
        """Claude's stop_reason, once message_delta has told it (traces' finish reason)."""
        ...

    @property
    def response_id(self) -> str | None:
        """The id the client got for this answer."""
        ...

    @property
    def first_token(self) -> bool:
        """A content delta has been read: the time to first token is now."""
        ...

    @property
    def upstream_error(self) -> bool:
        """The stream ended with the upstream's own error event, passed on to the client."""
        ...

    def feed(self, chunk: bytes) -> bytes:
        """The client's bytes for one upstream chunk (b"" when it completes nothing)."""
        ...

    def ending(self) -> bytes:
        """What ends a complete stream ([DONE] for OpenAI; nothing for Anthropic)."""
        ...

    async def completed(self) -> None:
        """Called once a stream has ended well, before its last bytes go to the client."""
        ...

    def error(self, failure: GatewayError) -> bytes:
        """The dialect's error event for a stream that cannot finish."""
        ...


def stream_failure(exc: BaseException) -> GatewayError:
    """The error a client sees when its stream breaks after the response has started."""
    if isinstance(exc, StreamError):
        # The message may quote an upstream's error event, which may echo what it was sent.
        return GatewayError(502, f"upstream stream failed: {scrub.scrub(exc.message)}", error_type=exc.error_type)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return GatewayError(504, "upstream stream stalled: no data within the read timeout", error_type="timeout_error")
    if isinstance(exc, aiohttp.ClientError):
        return GatewayError(
            502, f"upstream stream failed: the connection was cut ({type(exc).__name__})", error_type="api_error"
        )
    return GatewayError(500, "the gateway failed while relaying the stream", error_type="api_error")


def cut_stream() -> StreamError:
    return StreamError("api_error", "upstream stream ended before message_stop: the connection was cut")


async def relay_stream(
    request: web.Request, ctx: RequestContext, upstream_response: aiohttp.ClientResponse, dialect: StreamDialect
) -> web.StreamResponse:
    """Open the client's event stream and relay the upstream's into it, translated by `dialect`."""
    outcome = StreamOutcome()
    ctx.streamed = outcome  # read at the request's end, however the stream ended
    try:
        response = web.StreamResponse(headers={**SSE_HEADERS, **relayed_headers(upstream_response.headers)})
        response.headers.update(ctx.response_headers())
        await response.prepare(request)
        heartbeat = ctx.runtime.config.server.heartbeat_seconds
        await _pump(upstream_response, ClientStream(response, heartbeat, dialect), dialect, outcome, ctx.request_id)
        return response
    finally:
        upstream_response.release()


async def _pump(
    upstream_response: aiohttp.ClientResponse,
    client: ClientStream,
    dialect: StreamDialect,
    outcome: StreamOutcome,
    request_id: str,
) -> None:
    last = b""  # the final read's bytes and the ending: sent with the end of the body in one write
    read = events = 0  # what a stream cut before its end had carried, for its charge
    try:
        try:
            content = upstream_response.content
            while chunk := await content.readany():
                read += len(chunk)
                events += chunk.count(b"\n\n")
                client.heartbeat.busy = True
                out = dialect.feed(chunk)
                if outcome.first_token_at is None and dialect.first_token:
                    outcome.first_token_at = time.perf_counter()
                if dialect.done:
                    last = out
                    break
                if out:
                    await client.write(out)
                client.heartbeat.busy = False
            last = await _ending(dialect, last, outcome)
        except ClientGone:
            raise
        except Exception as exc:
            failure = stream_failure(exc)
            outcome.error = exc.error_type if isinstance(exc, StreamError) else failure.anthropic_type
            if not isinstance(exc, StreamError | TimeoutError | aiohttp.ClientError):
                outcome.error = "internal_error"
                log.exception("stream_relay_failed", request_id=request_id)
            last = (exc.before if isinstance(exc, StreamError) else last) + dialect.error(failure)
        finally:
            client.heartbeat.stop()
            if not dialect.done or dialect.upstream_error:
                outcome.relayed_output = relayed_output_tokens(read, events)
            outcome.usage = dict(dialect.usage)
            outcome.stop_reason, outcome.response_id = dialect.stop_reason, dialect.response_id
        await client.finish(last)
    except ClientGone:
        outcome.client_gone = True


async def _ending(dialect: StreamDialect, last: bytes, outcome: StreamOutcome) -> bytes:
    """A stream the upstream ended: its last bytes and the dialect's ending; a cut one is an error."""
    if not dialect.done:
        raise cut_stream()
    if dialect.upstream_error:
        outcome.error = "upstream_error_event"
        # Passed on as the upstream wrote it, less anything of the gateway's own it echoes.
        return scrub.scrub_bytes(last) + dialect.ending()
    await dialect.completed()
    return last + dialect.ending()


class ClientStream:
    """The client's side of a stream: its writes, and the heartbeats between them."""

    __slots__ = ("heartbeat", "response")

    def __init__(self, response: web.StreamResponse, heartbeat_seconds: float, dialect: StreamDialect) -> None:
        self.response = response
        self.heartbeat = Heartbeat(response, heartbeat_seconds, lambda: not dialect.pending)

    async def write(self, data: bytes) -> None:
        await write(self.response, data)
        # Heartbeats follow what the client has received: an upstream that drips a byte a second
        # keeps the gateway reading, but until an event is whole the client sees nothing.
        self.heartbeat.last = self.heartbeat.loop.time()

    async def finish(self, last: bytes) -> None:
        """The stream's last bytes and the end of its chunked body, in one write: a socket write is
        the costliest step of a relayed read, and a stream that ends with a separate one pays twice."""
        try:
            await self.response.write_eof(last)
        except _CLIENT_RESET as exc:
            raise ClientGone from exc


async def write(response: web.StreamResponse, data: bytes | bytearray) -> None:
    try:
        await response.write(data)
    except _CLIENT_RESET as exc:
        raise ClientGone from exc


class Heartbeat:
    """Writes an SSE comment to the client each time it has been sent nothing for `interval`.

    A timer per stream, re-armed from the time of the last write, rather than a timeout around
    every read: reads are the hot path, and a quiet stream is the rare case. A beat is written
    only while the relay is waiting for the upstream (not while it is translating or writing
    a chunk) and, per `between_events`, never inside an event the client has only part of.
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
