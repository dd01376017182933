"""The API port's connections: a cap on how many are open, and a deadline for a request head.

aiohttp closes a keep-alive connection that idles past its keepalive timeout, and that timer
also ends one whose first request never completes. But the two want different bounds: a
kept-alive client may pause a minute between requests, while a new connection that has not
sent its request head in a few seconds is a slowloris. And nothing in aiohttp caps how many
connections are open, so 20,000 idle ones exhaust the pod's file descriptors first.

Each connection gets a thin protocol in front of aiohttp's own: it counts the connection, refuses
one over the cap with a 503 (counted, and logged at most once a second), and closes one whose
first request head has not arrived within the header timeout. Past the first head it forwards
every call straight through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import structlog
from aiohttp import web

from gateway.observability.recorder import Recorder

log = structlog.get_logger("gateway")

_BUSY_BODY = b'{"error":{"type":"api_error","message":"The gateway has its limit of open connections; retry shortly"}}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


class ConnectionGuard:
    """The protocol factory for the API listener (what `loop.create_server` takes)."""

    def __init__(
        self,
        server: web.Server,
        recorder: Recorder,
        *,
        max_connections: int,
        header_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._recorder = recorder
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._clock = clock
        self.open = 0
        self._logged_at = float("-inf")
        recorder.watch_open_connections(lambda: self.open)

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self)

    def refused(self) -> None:
        self._recorder.connection_closed("limit")
        now = self._clock()
        if now - self._logged_at >= 1.0:  # a flood of refusals is one line a second, not one each
            self._logged_at = now
            log.warning("connection_limit_reached", open_connections=self.open, limit=self.max_connections)

    def timed_out(self) -> None:
        self._recorder.connection_closed("header_timeout")

    def handler(self) -> asyncio.Protocol:
        protocol: asyncio.Protocol = self._server()
        return protocol


class GuardedConnection(asyncio.Protocol):
    __slots__ = ("_guard", "_inner", "_tail", "_timer", "_transport")

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes of a head still arriving, to find its end across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but do all that one does.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        guard = self._guard
        if guard.open >= guard.max_connections:
            guard.refused()
            transport.write(_BUSY)
            transport.close()
            return
        guard.open += 1
        self._timer = asyncio.get_running_loop().call_later(guard.header_timeout, self._head_overdue)
        self._inner = guard.handler()
        self._inner.connection_made(transport)

    def _head_overdue(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._guard.timed_out()
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if any(end in seen for end in _HEAD_ENDS):
                self._timer.cancel()
                self._timer = None
                self._tail = b""
            else:
                self._tail = seen[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inner is not None:
            self._guard.open -= 1
            self._inner.connection_lost(exc)
            self._inner = None

    def __getattr__(self, name: str) -> Any:
        # Anything else asked of the protocol (aiohttp's own callers) is the inner handler's.
        return getattr(self._inner, name)
