"""A configured client: its name, the routes it may use, its rate limits and its budget.

Without shared state the rate limits are token buckets per client and per pod (N replicas allow
N times the rate); with state.redis, gateway/spend/limits.py counts them for all replicas."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.config import BudgetConfig, InboundApiKey, ServiceAccountClient


class TokenBucket:
    __slots__ = ("_clock", "_rate", "_updated", "capacity", "level")

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self.level = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self._rate)
        self._updated = now

    def wait(self, amount: float = 1.0) -> float:
        """0 when `amount` is available now, else seconds until it is (nothing is taken then)."""
        self._refill()
        return 0.0 if self.level >= amount else (amount - self.level) / self._rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount  # may go below zero: a long answer is paid for by the requests after it

    def carried_into(self, per_minute: int) -> TokenBucket:
        """This bucket under a reloaded limit: what the client has used stays used."""
        if per_minute == self.capacity:
            return self
        bucket = TokenBucket(per_minute, self._clock)
        self._refill()
        bucket.level = min(bucket.capacity, self.level)
        return bucket


@dataclass
class Client:
    name: str
    routes: frozenset[str] | None
    requests: TokenBucket | None
    tokens: TokenBucket | None
    budget: BudgetConfig | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    priority: Literal["interactive", "batch"] = "interactive"  # its turn when quota is short
    share: float = 1.0  # its weight among the waiting clients of its priority

    @property
    def limited(self) -> bool:
        """It has a rate limit or a budget: its requests are counted."""
        return self.requests_per_minute is not None or self.tokens_per_minute is not None or self.budget is not None

    def may_use(self, route: str) -> bool:
        return self.routes is None or route in self.routes


def configured_client(
    key: InboundApiKey | ServiceAccountClient, old: Client | None, clock: Callable[[], float]
) -> Client:
    """A configured client; `old` is the same-named client of the config a reload replaces."""
    return Client(
        key.client,
        frozenset(key.routes) if key.routes is not None else None,
        _bucket(key.requests_per_minute, old.requests if old else None, clock),
        _bucket(key.tokens_per_minute, old.tokens if old else None, clock),
        key.budget,
        key.requests_per_minute,
        key.tokens_per_minute,
        key.priority,
        key.share,
    )


def _bucket(per_minute: int | None, old: TokenBucket | None, clock: Callable[[], float]) -> TokenBucket | None:
    if not per_minute:
        return None
    return old.carried_into(per_minute) if old is not None else TokenBucket(per_minute, clock)
