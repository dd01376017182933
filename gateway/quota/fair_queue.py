"""Requests waiting for quota, in the order they are to be served: interactive before batch, and
within a priority a fair share of tokens among clients by weight.

Start-time fair queueing (Goyal et al., 1996), the weighted equivalent of deficit round robin: a
request's tag is where its client's share of the queue reaches it, so a client that sends many
requests waits behind its own, not in front of everyone else's. O(log n) a request; a waiter is a
small object and a future, nothing more.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any, Literal

from gateway.quota.meter import NOTHING, Demand

Priority = Literal["interactive", "batch"]
PRIORITIES: tuple[Priority, ...] = ("interactive", "batch")


class Waiter:
    __slots__ = ("alive", "client", "cost", "demand", "future", "priority", "request", "share", "start")

    def __init__(
        self, client: str, priority: Priority, share: float, demand: Demand, request: Any, future: asyncio.Future[Any]
    ) -> None:
        self.client = client
        self.priority = priority
        self.share = share
        self.demand = demand
        self.cost = demand.input_tokens + demand.output_tokens + 1.0  # tokens are what is scarce
        self.request = request  # what the scheduler needs to place it
        self.future = future
        self.alive = True
        self.start = 0.0


class FairQueue:
    """Bounded by `limit` waiters; `ahead(priority)` is the demand queued at that priority or above."""

    __slots__ = ("_finish", "_heaps", "_order", "_virtual", "demand", "depth", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._heaps: tuple[list[tuple[float, int, Waiter]], ...] = ([], [])
        self._virtual = [0.0, 0.0]
        self._finish: tuple[dict[str, float], ...] = ({}, {})
        self._order = itertools.count()
        self.depth = [0, 0]
        self.demand = [NOTHING, NOTHING]

    def __len__(self) -> int:
        return self.depth[0] + self.depth[1]

    @property
    def full(self) -> bool:
        return len(self) >= self.limit

    def ahead(self, priority: Priority) -> Demand:
        """What is queued that would be served before a new request of `priority`."""
        return self.demand[0] if priority == "interactive" else self.demand[0].plus(self.demand[1])

    def push(self, waiter: Waiter) -> None:
        p = PRIORITIES.index(waiter.priority)
        finish = self._finish[p]
        waiter.start = max(self._virtual[p], finish.get(waiter.client, 0.0))
        finish[waiter.client] = waiter.start + waiter.cost / waiter.share
        heapq.heappush(self._heaps[p], (waiter.start, next(self._order), waiter))
        self.depth[p] += 1
        self.demand[p] = self.demand[p].plus(waiter.demand)

    def head(self) -> Waiter | None:
        """The next waiter to serve (interactive first), the ones that left dropped on the way."""
        for heap in self._heaps:
            while heap and not heap[0][2].alive:
                heapq.heappop(heap)
            if heap:
                return heap[0][2]
        return None

    def in_order(self, limit: int) -> list[Waiter]:
        """Up to `limit` waiters in the order they are to be served (interactive first), without taking them."""
        found: list[Waiter] = []
        for heap in self._heaps:
            if len(found) < limit:
                alive = (entry for entry in heap if entry[2].alive)  # served or gone ones linger until compacted
                found += [entry[2] for entry in heapq.nsmallest(limit - len(found), alive)]
        return found

    def pop(self, waiter: Waiter) -> None:
        """`waiter` is served: the priority's virtual time moves to its start tag."""
        p = PRIORITIES.index(waiter.priority)
        self._virtual[p] = max(self._virtual[p], waiter.start)
        self._left(waiter, p)
        if not self.depth[p]:
            self._heaps[p].clear()
            self._finish[p].clear()  # an idle priority starts afresh: no client carries credit or debt

    def remove(self, waiter: Waiter) -> None:
        """A waiter that leaves without being served (its client went away, or it waited too long)."""
        if waiter.alive:
            self._left(waiter, PRIORITIES.index(waiter.priority))

    def _left(self, waiter: Waiter, p: int) -> None:
        """Its heap entry stays until it reaches the top, or until entries that left outnumber the rest."""
        waiter.alive = False
        self.depth[p] -= 1
        self.demand[p] = self.demand[p].minus(waiter.demand) if self.depth[p] else NOTHING
        heap = self._heaps[p]
        if len(heap) > 2 * self.depth[p] + 64:
            heap[:] = [entry for entry in heap if entry[2].alive]
            heapq.heapify(heap)
