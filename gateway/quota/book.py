"""Every quota pool's meter, by name, kept across reloads; and a request's charge against one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gateway.config import QuotaPoolConfig
from gateway.quota.meter import Demand, PoolMeter


@dataclass(slots=True, eq=False)
class Charge:
    """What a request was charged to a pool before it was sent; settled once, when it is known
    what Foundry counted (its usage), or refunded when Foundry refused it."""

    meter: PoolMeter
    demand: Demand
    settled: bool = False


class QuotaBook:
    """The pools of one config. `previous` is the book a reload replaces: a pool that keeps its name
    keeps what it has used, so a reload neither refills a drained pool nor forgets a 429."""

    def __init__(
        self,
        pools: Iterable[QuotaPoolConfig],
        replicas: int,
        previous: QuotaBook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.meters: dict[str, PoolMeter] = {}
        for pool in pools:
            meter = previous.meters.get(pool.name) if previous is not None else None
            if meter is None:
                meter = PoolMeter(pool, 1.0 / replicas, clock)
            else:
                meter.configure(pool, 1.0 / replicas)
            self.meters[pool.name] = meter
        # Called when quota comes back (a charge corrected down, a refund, a lease): waiting requests may fit now.
        self.wakers: set[Callable[[], None]] = set()

    def charge(self, meter: PoolMeter, demand: Demand) -> Charge:
        meter.take(demand)
        return Charge(meter, demand)

    def settle(self, charge: Charge, used: Sequence[float]) -> None:
        """Correct the charge to what Foundry counted (once)."""
        if not charge.settled:
            charge.settled = True
            if charge.meter.settle(charge.demand, used):
                self.returned()

    def refund(self, charge: Charge, counted: bool) -> None:
        """A request Foundry did not serve: its tokens come back; its request too unless Foundry
        `counted` it (an answer other than a 429 still spent a request)."""
        self.settle(charge, Demand(1 if counted else 0, 0, 0))

    def returned(self) -> None:
        if self.wakers:
            for wake in tuple(self.wakers):
                wake()
