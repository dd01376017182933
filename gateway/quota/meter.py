"""One quota pool's meter: a token bucket per dimension (requests, uncached input tokens, output
tokens), refilled continuously as Foundry's are.

A meter refills itself from the clock (one replica, or its share of the pool while the replicas
cannot share) or is fed by leases of the shared pool (gateway/quota/leases.py). Either way a
request is charged before it is sent and the charge corrected by what Foundry reports; a 429
from Foundry makes the meter cautious, since Foundry is the truth and someone else may share the
subscription.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from gateway.config import QuotaPoolConfig

DIMENSIONS = ("requests", "input_tokens", "output_tokens")
# After a 429 the pool refills at a fraction of its rate, rising back to the whole over this long. A
# gateway that meters a pool exactly at its limit meets the odd 429 at the edge (its clock and
# Foundry's differ by a round trip): a tenth off for a minute answers that; repeated 429s (someone
# else spends the subscription) compound, down to half.
CAUTION_RECOVERY_SECONDS = 60.0
_CAUTION_STEP = 0.9
_CAUTION_FLOOR = 0.5


class Demand(NamedTuple):
    """What a request draws from a pool: 1 request, its uncached input, its output bound."""

    requests: float
    input_tokens: float
    output_tokens: float

    def plus(self, other: Demand) -> Demand:
        return Demand(self[0] + other[0], self[1] + other[1], self[2] + other[2])

    def minus(self, other: Demand) -> Demand:
        return Demand(self[0] - other[0], self[1] - other[1], self[2] - other[2])


NOTHING = Demand(0, 0, 0)


class PoolMeter:
    """The gateway's view of one pool. `share` is this replica's part of it while it meters alone
    (1 / replicas); `clock` is monotonic seconds (a fake one in tests)."""

    __slots__ = (
        "_caution_at",
        "_caution_floor",
        "_clock",
        "_dims",
        "_levels",
        "_updated",
        "admitted",
        "capacity",
        "config",
        "consumed",
        "leased",
        "name",
        "paused_until",
        "queued",
        "rates",
        "share",
        "taken",
        "throttled_since_lease",
    )

    def __init__(self, config: QuotaPoolConfig, share: float, clock: Callable[[], float]) -> None:
        self.name = config.name
        self._clock = clock
        self.leased = False  # fed by leases of the shared pool instead of the clock
        self._caution_floor = 1.0
        self._caution_at = -math.inf
        self.paused_until = 0.0
        self.taken = [0.0, 0.0, 0.0]  # charged since the last lease round: the replica's pace
        self.queued = [0.0, 0.0, 0.0]  # what requests waiting for this pool need (gateway/quota/scheduler.py)
        # Since start, for foundry_gateway_quota_admitted_total and _consumed_total (read at a scrape):
        # what requests were charged when sent, and what Foundry counted of them.
        self.admitted = [0.0, 0.0, 0.0]
        self.consumed = [0.0, 0.0, 0.0]
        self.throttled_since_lease = False
        self._updated = clock()
        self.configure(config, share)
        self._levels = [cap * share for cap in self.capacity]

    def configure(self, config: QuotaPoolConfig, share: float) -> None:
        """New limits (a reload, or a change of the replica's share); what was used stays used."""
        self.config = config
        self.share = share
        limits = (config.requests_per_minute, config.input_tokens_per_minute, config.output_tokens_per_minute)
        # A dimension without a limit is not metered: its rate is None.
        self.rates: tuple[float | None, ...] = tuple(None if n is None else n / 60.0 for n in limits)
        self.capacity = tuple(0.0 if r is None else r * config.burst_seconds for r in self.rates)
        self._dims = tuple(i for i, r in enumerate(self.rates) if r is not None)  # the metered ones
        if hasattr(self, "_levels"):
            scale = 1.0 if self.leased else share
            self._levels = [min(level, cap * scale) for level, cap in zip(self._levels, self.capacity, strict=True)]

    @property
    def metered(self) -> bool:
        return any(r is not None for r in self.rates)

    def caution(self, now: float) -> float:
        """The share of its rate the meter trusts now: 1, or less for a while after an unexpected 429."""
        floor = self._caution_floor
        if floor >= 1.0:
            return 1.0
        return min(1.0, floor + (1.0 - floor) * (now - self._caution_at) / CAUTION_RECOVERY_SECONDS)

    def _local_share(self) -> float:
        return 1.0 if self.leased else self.share

    def _refill(self, now: float) -> None:
        # On every request's path: the loops below run over the metered dimensions only, and a meter
        # not in caution pays no call for it.
        elapsed = now - self._updated
        self._updated = now
        if self.leased or elapsed <= 0:
            return
        share = self.share
        pace = elapsed * share * (1.0 if self._caution_floor >= 1.0 else self.caution(now))
        levels, rates, capacity = self._levels, self.rates, self.capacity
        for i in self._dims:
            level, cap = levels[i] + rates[i] * pace, capacity[i] * share  # type: ignore[operator]
            levels[i] = level if level < cap else cap

    def wait(self, demand: Demand) -> float:
        """0 when the pool can take `demand` now, else the seconds until its refill can.

        A demand larger than a bucket holds fits a full bucket (and leaves it in debt), as Foundry
        admits a request whose max_tokens exceeds what a burst holds."""
        now = self._clock()
        self._refill(now)
        waited = max(0.0, self.paused_until - now)
        rate_share = self.caution(now) * self._local_share()
        for i, rate in enumerate(self.rates):
            if rate is None:
                continue
            need = min(demand[i], self.capacity[i] * self._local_share()) - self._levels[i]
            if need > 0:
                waited = max(waited, need / (rate * rate_share))
        return waited

    def take(self, demand: Demand) -> None:
        self._refill(self._clock())
        self._take(demand)

    def take_if_room(self, demand: Demand) -> bool:
        """Take `demand` when the pool can take it now (what `wait` would say is 0): one refill, no second look."""
        now = self._clock()
        self._refill(now)
        if self.paused_until > now:
            return False
        scale = 1.0 if self.leased else self.share
        levels, capacity, dims = self._levels, self.capacity, self._dims
        for i in dims:
            need, cap = demand[i], capacity[i] * scale
            if levels[i] < (need if need < cap else cap):
                return False
        self._take(demand)
        return True

    def _take(self, demand: Demand) -> None:
        levels, taken, admitted = self._levels, self.taken, self.admitted
        for i in self._dims:
            amount = demand[i]
            levels[i] -= amount
            taken[i] += amount
            admitted[i] += amount

    def settle(self, charged: Demand, used: Sequence[float]) -> bool:
        """A charge corrected to what Foundry counted: what it over-estimated comes back (what it
        under-estimated is taken too). True when something came back. (No refill first: the next
        look refills, and caps what this adds.)"""
        scale = math.inf if self.leased else self.share
        levels, capacity, taken, consumed = self._levels, self.capacity, self.taken, self.consumed
        returned = False
        for i in self._dims:
            amount = charged[i] - used[i]
            level, cap = levels[i] + amount, capacity[i] * scale
            levels[i] = level if level < cap else cap
            taken[i] -= amount
            consumed[i] += used[i]
            returned = returned or amount > 0
        return returned

    def throttled(self, retry_after: float | None) -> None:
        """Foundry answered 429 where the meter thought there was room: nothing is left now, the
        rate is trusted less for a while, and nothing is sent before Foundry's retry-after."""
        now = self._clock()
        self._refill(now)
        self._caution_floor = max(_CAUTION_FLOOR, self.caution(now) * _CAUTION_STEP)
        self._caution_at = now
        self._levels = [min(level, 0.0) for level in self._levels]
        self.throttled_since_lease = True
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)

    def headroom(self) -> tuple[float | None, ...]:
        """Each dimension's level as a share of what its bucket holds (None: not metered)."""
        self._refill(self._clock())
        scale = self._local_share()
        return tuple(
            None if rate is None else max(0.0, min(1.0, level / (cap * scale)))
            for rate, level, cap in zip(self.rates, self._levels, self.capacity, strict=True)
        )

    def room_after(self, demand: Demand) -> float:
        """The least headroom any dimension would have left after `demand`: how to rank pools."""
        self._refill(self._clock())
        scale = self._local_share()
        room = 1.0
        for i, rate in enumerate(self.rates):
            if rate is not None:
                room = min(room, (self._levels[i] - demand[i]) / (self.capacity[i] * scale))
        return room

    # Leases (gateway/quota/leases.py): the shared pool feeds the meter instead of the clock.

    def levels(self) -> tuple[float, ...]:
        self._refill(self._clock())
        return tuple(self._levels)

    def lease_terms(self, seconds: float, horizon: float) -> tuple[list[float], list[float]]:
        """What to ask of the shared pool and what to give back, per dimension, after `seconds` of
        use: hold enough for `horizon` seconds at the recent pace plus what waiting requests need,
        and return what is held beyond twice that."""
        self._refill(self._clock())
        asks, gives = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
        for i, rate in enumerate(self.rates):
            if rate is None:
                continue
            level = self._levels[i] if self.leased else min(self._levels[i], 0.0)
            pace = max(self.taken[i], 0.0) / max(seconds, 1e-3)
            hold = pace * horizon + self.queued[i] + rate * horizon * 0.1
            asks[i] = max(0.0, hold - level)
            gives[i] = max(0.0, level - 2 * hold)
        self.taken = [0.0, 0.0, 0.0]
        return asks, gives

    def waiting(self, demand: Demand, sign: float) -> None:
        """A request starts (sign 1) or stops (-1) waiting for this pool: leases ask for what waiters need."""
        for i in range(3):
            self.queued[i] = max(0.0, self.queued[i] + sign * demand[i])

    def granted(self, grants: tuple[float, ...], given: tuple[float, ...]) -> None:
        """Tokens leased from the shared pool, and those given back to it."""
        self.share_leased()
        for i, rate in enumerate(self.rates):
            if rate is not None:
                self._levels[i] += grants[i] - given[i]

    def share_alone(self) -> None:
        """The shared pool cannot be reached: meter this replica's share from the clock, from what it holds."""
        if self.leased:
            self.leased = False
            self._updated = self._clock()
            caps = (cap * self.share for cap in self.capacity)
            self._levels = [min(level, cap) for level, cap in zip(self._levels, caps, strict=True)]

    def share_leased(self) -> None:
        """Leases reach the shared pool: from now on only leased tokens are spent. What the meter
        held unleased is dropped (a debt is kept), so a replica never spends on top of its leases."""
        if not self.leased:
            self._refill(self._clock())
            self.leased = True
            self._levels = [min(level, 0.0) for level in self._levels]
