"""A quota route's placement: which target a request goes to, or how long it waits its turn.

Affinity first: a session goes where it went before (or where rendezvous hashing puts it) while
that target's pool can take it. Headroom second: else to the target whose pool keeps the most
room, and the session stays there. No pool with room: the request waits in the route's fair
queue for its turn and its pool's refill, or, when that would take longer than the route allows,
is refused at once with the wait as its retry-after.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Generic, NamedTuple, Protocol, TypeVar

from gateway.errors import GatewayError
from gateway.quota.affinity import Placeable, SessionEntry, Sessions, rendezvous
from gateway.quota.book import Charge, QuotaBook
from gateway.quota.fair_queue import FairQueue, Priority, Waiter
from gateway.quota.meter import NOTHING, Demand, PoolMeter
from gateway.quota.stats import QuotaStats

# A session whose own target's pool will have room this soon waits for it rather than move: a move
# writes its whole prompt into another deployment's cache, which costs input quota and money.
AFFINITY_PATIENCE_SECONDS = 2.0
# How far down the queue a refill looks for a waiter it can serve while those ahead wait for another pool.
_SCAN = 32


class Metered(Placeable, Protocol):
    @property
    def pool(self) -> PoolMeter | None: ...


T = TypeVar("T", bound=Metered)


class Ask(NamedTuple):
    """What a request asks of the quota: who, how urgent, which session, how many tokens at most."""

    client: str
    priority: Priority
    share: float
    session: bytes | None  # gateway/quota/affinity.session_key
    input_tokens: int  # the whole input, estimated from the body
    output_tokens: int  # its output bound


class Placement(NamedTuple, Generic[T]):
    target: T
    charge: Charge | None  # None: the target's pool is unmetered
    affinity: str  # kept, moved, new; none without a session
    waited: float  # seconds in the queue
    session: SessionEntry | None = None  # where the session went, to learn what its answer cached there


class QuotaRefused(GatewayError):
    """429: no quota within the route's bound. `reason`: queue_full, wait_bound (refused at once), waited."""

    reason: str = "wait_bound"


def refused(route: str, reason: str, wait: float, bound: float) -> QuotaRefused:
    retry = max(1, math.ceil(wait)) if math.isfinite(wait) else 60
    why = {
        "queue_full": "its queue for quota is full",
        "wait_bound": f"its quota pools refill enough for this request in {retry} s, past the {bound:g} s it may wait",
        "waited": f"it waited {bound:g} s (max_wait_seconds) for quota",
    }[reason]
    exc = QuotaRefused(
        429,
        f"Foundry quota for model {route!r} is spent for now: {why}; retry in {retry} s",
        error_type="rate_limit_error",
        headers={"retry-after": str(retry)},
    )
    exc.reason = reason
    return exc


class RouteQuota(Generic[T]):
    """A `strategy: quota` route's placement and queue. (Other routes' targets meter their pools
    too, charged by the exchange in the order their strategy gives; nobody waits there.)"""

    def __init__(
        self,
        route: str,
        book: QuotaBook,
        sessions: Sessions,
        max_wait: float,
        max_queued: int,
        clock: Callable[[], float] = time.monotonic,
        stats: QuotaStats | None = None,
    ) -> None:
        self.route = route
        self.book = book
        self.sessions = sessions
        self.stats = stats if stats is not None else QuotaStats()
        self.max_wait = max_wait
        self.queue = FairQueue(max_queued)
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._woken = False

    @staticmethod
    def demand(ask: Ask, target: Metered, entry: SessionEntry | None) -> Demand:
        """The request's draw on `target`'s pool: the part of its input that target has not cached
        for the session (its last answer there says how much it had), and its whole output bound."""
        cached = entry.cached_tokens if entry is not None and entry.target == target.affinity_id else 0
        return Demand(1, max(0, ask.input_tokens - cached), ask.output_tokens)

    def choose(self, ask: Ask, ready: Sequence[T], closed: frozenset[int] = frozenset()) -> Placement[T] | None:
        """A target whose pool can take the request now, charged; None when no pool can. `closed`:
        pools (by id) a waiter ahead waits for, which count as empty here."""
        session = ask.session
        entry = self.sessions.get(session) if session is not None else None
        order = rendezvous(session, ready) if session is not None and len(ready) > 1 else ready
        preferred = order[0]
        if entry is not None and entry.target != preferred.affinity_id:
            preferred = next((t for t in ready if t.affinity_id == entry.target), preferred)
        chosen, demand = preferred, self.demand(ask, preferred, entry)
        pool = preferred.pool
        if pool is not None and not closed and pool.take_if_room(demand):  # nearly every request
            return self._placed(ask, chosen, entry, Charge(pool, demand))
        short = _shortfall(preferred, demand, closed)
        if short > 0:
            if _patient(entry, preferred, short):
                return None
            best: tuple[float, T, Demand] | None = None
            for t in order:
                d = self.demand(ask, t, entry)
                if t is preferred or _shortfall(t, d, closed) > 0:
                    continue
                room = t.pool.room_after(d) if t.pool is not None else math.inf
                if best is None or room > best[0]:
                    best = (room, t, d)
            if best is None:
                return None
            _, chosen, demand = best
        return self._placed(ask, chosen, entry, self.book.charge(chosen.pool, demand) if chosen.pool else None)

    def _placed(self, ask: Ask, chosen: T, entry: SessionEntry | None, charge: Charge | None) -> Placement[T]:
        # Against where the session went last (on this replica): its home may have left `ready` (unhealthy).
        if ask.session is None:
            return Placement(chosen, charge, "none", 0.0)
        if entry is None:
            return Placement(chosen, charge, "new", 0.0, self.sessions.add(ask.session, chosen.affinity_id))
        if entry.target == chosen.affinity_id:
            return Placement(chosen, charge, "kept", 0.0, entry)
        entry.target, entry.cached_tokens = chosen.affinity_id, 0
        return Placement(chosen, charge, "moved", 0.0, entry)

    def awaited(self, ask: Ask, ready: Sequence[T]) -> set[int]:
        """The pools (by id) a request that could not be placed waits for: its session's own, when it is
        patient for it; else every one it could use."""
        entry = self.sessions.get(ask.session) if ask.session is not None else None
        if entry is not None:
            home = next((t for t in ready if t.affinity_id == entry.target), None)
            pool = home.pool if home is not None else None
            if (
                home is not None
                and pool is not None
                and _patient(entry, home, pool.wait(self.demand(ask, home, entry)))
            ):
                return {id(pool)}
        return {id(t.pool) for t in ready if t.pool is not None}

    def wait(self, ask: Ask, ready: Sequence[T], ahead: Demand = NOTHING) -> float:
        """Seconds until some target's pool has refilled what is queued `ahead` and this request."""
        entry = self.sessions.get(ask.session) if ask.session is not None else None
        best = math.inf
        for t in ready:
            if t.pool is None:
                return 0.0
            best = min(best, t.pool.wait(self.demand(ask, t, entry).plus(ahead)))
        return best

    def now(self, ask: Ask, ready: Sequence[T]) -> Placement[T] | None:
        """A target at once, counted: when a pool has room and nobody of its priority or above waits."""
        depth = self.queue.depth  # nobody waits at its priority or above (checked inline: every request)
        if depth[0] or (depth[1] and ask.priority != "interactive"):
            return None
        found = self.choose(ask, ready)
        if found is not None:
            self.stats.placed_at_once(self.route, found.affinity, ask.priority)
        return found

    async def place(self, ask: Ask, ready: Sequence[T], deadline: float | None = None) -> Placement[T]:
        """A target for the request: at once when a pool has room and nobody of its priority or
        above is waiting; else its turn in the queue, by `deadline` (clock seconds; None: the
        route's max_wait_seconds from now)."""
        found = self.now(ask, ready)
        if found is None:
            started = self._clock()
            remaining = (deadline if deadline is not None else started + self.max_wait) - started
            wait = self.wait(ask, ready, self.queue.ahead(ask.priority))
            if self.queue.full:
                raise refused(self.route, "queue_full", wait, self.max_wait)
            if wait > remaining:
                raise refused(self.route, "wait_bound", wait, self.max_wait)
            found = await self._queued(ask, ready, remaining, started)
            self.stats.placed_after(self.route, found.affinity, ask.priority, found.waited)
        return found

    async def _queued(self, ask: Ask, ready: Sequence[T], remaining: float, started: float) -> Placement[T]:
        future: asyncio.Future[Placement[T]] = asyncio.get_running_loop().create_future()
        waiter = Waiter(ask.client, ask.priority, ask.share, Demand(1, ask.input_tokens, ask.output_tokens),
                        (ask, ready), future)  # fmt: skip
        self.queue.push(waiter)
        pools = {id(t.pool): t.pool for t in ready if t.pool is not None}.values()
        for pool in pools:
            pool.waiting(waiter.demand, 1)
        self.book.wakers.add(self.wake)
        self.wake()
        delivered = False
        try:
            async with asyncio.timeout(remaining):
                placement = await future
            delivered = True
            return placement._replace(waited=self._clock() - started)
        except TimeoutError:
            raise refused(self.route, "waited", self.wait(ask, ready), self.max_wait) from None
        finally:
            self.queue.remove(waiter)
            for pool in pools:
                pool.waiting(waiter.demand, -1)
            if not delivered and future.done() and not future.cancelled():
                charge = future.result().charge  # served just as its client left: nothing was sent
                if charge is not None:
                    self.book.refund(charge, counted=False)
            if not self.queue:
                self.book.wakers.discard(self.wake)

    def wake(self) -> None:
        """Quota may have come back: serve the queue soon (once, however many call)."""
        if not self._woken and len(self.queue):
            self._woken = True
            asyncio.get_running_loop().call_soon(self.serve)

    def serve(self) -> None:
        """Hand out quota to waiters in the queue's order while their pools have room. A waiter that
        cannot be placed keeps the pools it waits for: nobody behind it takes from them, but those
        behind may use the other pools (a batch request the pool an interactive session does not
        wait for). Then sleep until a waiter's pool will have refilled enough."""
        self._woken = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while True:
            served, delay = self._serve_round()
            if not served:
                break
        if len(self.queue):
            self._timer = asyncio.get_running_loop().call_later(min(max(delay, 0.001), 60.0), self.serve)

    def _serve_round(self) -> tuple[int, float]:
        """One pass down the queue: how many were served, and the soonest a waiter passed over may fit."""
        kept: set[int] = set()
        served, delay = 0, math.inf
        for waiter in self.queue.in_order(_SCAN):
            if waiter.future.done():  # its client left; its own cleanup has not run yet
                self.queue.remove(waiter)
                continue
            ask, ready = waiter.request
            found = self.choose(ask, ready, frozenset(kept))
            if found is not None:
                self.queue.pop(waiter)
                waiter.future.set_result(found)
                served += 1
                continue
            kept |= self.awaited(ask, ready)
            delay = min(delay, self.wait(ask, ready))
        return served, delay


def _patient(entry: SessionEntry | None, home: Metered, short: float) -> bool:
    """A session with a prompt cached at `home` waits for its pool when room comes within the patience."""
    return (
        entry is not None
        and entry.cached_tokens > 0
        and entry.target == home.affinity_id
        and (short <= AFFINITY_PATIENCE_SECONDS)
    )


def _shortfall(target: Metered, demand: Demand, closed: frozenset[int]) -> float:
    """Seconds until `target`'s pool can take `demand` (0: now); a closed pool counts as a short one."""
    pool = target.pool
    if pool is None:
        return 0.0
    wait = pool.wait(demand)
    return max(wait, 1e-3) if id(pool) in closed else wait
