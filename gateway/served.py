"""Everything one config decides, held together: the runtime, the limiter and the response store.

A request takes the `Served` that is current when it starts and keeps it to its end, whatever a
reload does meanwhile. A reload builds the next `Served` from the config (reusing a limiter or
store whose settings did not change) and swaps it in whole; what the old one held and the new
one does not is closed once the last request that started on it has ended, so an in-flight
stream finishes on the Redis, TTL and limits it began with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gateway.config import GatewayConfig
from gateway.quota.leases import SharedPools, shared_pools_for
from gateway.responses_store import ResponseStore, store_for
from gateway.runtime import Runtime
from gateway.spend.limits import Limiter, limiter_for

log = structlog.get_logger("gateway")


class _Closable(Protocol):
    def close(self) -> Awaitable[None]: ...


@dataclass(slots=True, eq=False)
class Served:
    runtime: Runtime
    limiter: Limiter
    store: ResponseStore | None
    pools: SharedPools | None = None  # the quota pools' leases, with state.redis
    running: int = 0  # requests that started on it and have not ended (Live keeps the count)

    @property
    def config(self) -> GatewayConfig:
        return self.runtime.config

    def resources(self) -> tuple[_Closable, ...]:
        held: tuple[_Closable | None, ...] = (self.limiter, self.store, self.pools)
        return tuple(r for r in held if r is not None)


def served_for(config: GatewayConfig, recorder: Any, previous: Served | None = None) -> Served:
    """The config made ready to serve; what `previous` holds is carried over where the config allows."""
    runtime = Runtime(config, previous=previous.runtime if previous is not None else None)
    return Served(
        runtime,
        limiter_for(config.state.redis, recorder, previous.limiter if previous is not None else None),
        store_for(config, recorder, previous.store if previous is not None else None),
        shared_pools_for(config.state.redis, runtime.quota, recorder, previous.pools if previous is not None else None),
    )


class Live:
    """The `Served` new requests take, and the requests still running on each one."""

    __slots__ = ("_closing", "_retired", "_running", "current")

    def __init__(self, served: Served) -> None:
        self.current = served
        self._running: dict[int, int] = {}  # id(served) -> requests that started on it and have not ended
        self._retired: list[Served] = []  # replaced, with requests still running on them
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def runtime(self) -> Runtime:
        return self.current.runtime

    def take(self) -> Served:
        """The current `Served`, held until `release`."""
        served = self.current
        served.running += 1
        return served

    def release(self, served: Served) -> None:
        served.running -= 1
        if not served.running and served is not self.current:
            self._retired.remove(served)
            self._close_unused([served])

    def start(self) -> None:
        """In the event loop: what the current `Served` runs in the background begins."""
        if self.current.pools is not None:
            self.current.pools.start()

    def replace(self, served: Served) -> None:
        """New requests take `served` from now on; the old one's own resources close once it is idle."""
        old, self.current = self.current, served
        self.start()
        if old is served:
            return
        if old.running:
            self._retired.append(old)
        else:
            self._close_unused([old])

    def _close_unused(self, done: list[Served]) -> None:
        """Close what the finished ones held and no live `Served` (current or still running) holds."""
        in_use = {id(r) for s in (self.current, *self._retired) for r in s.resources()}
        for served in done:
            for resource in served.resources():
                if id(resource) not in in_use:
                    in_use.add(id(resource))  # closed once, however many finished ones held it
                    task = asyncio.ensure_future(resource.close())
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """At shutdown: everything closed, after what is already closing."""
        held = {id(r): r for s in (self.current, *self._retired) for r in s.resources()}
        self._retired.clear()
        for resource in held.values():
            await resource.close()
        if self._closing:
            await asyncio.wait(self._closing)
