"""Foundry's quota and prompt caches, as the emulator enforces them.

- Quota pools span deployments (a subscription's Global Standard deployments of one model across
  every region): requests per minute, uncached input tokens per minute (input after the last
  breakpoint plus cache writes; cache reads are free) and output tokens per minute, as token
  buckets refilled continuously. Output is charged at max_tokens when a request starts and
  corrected at its end. Over a limit: 429 with retry-after, which limit, and nothing spent.
- A prompt cache lives with the deployment that wrote it, for its TTL (5 minutes, or 1 hour).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

LIMIT_NAMES = ("requests", "input tokens", "output tokens")


@dataclass
class Pool:
    name: str
    limits: tuple[float | None, float | None, float | None]  # per minute: RPM, ITPM, OTPM
    deployments: frozenset[str]  # "<resource>/<model>"
    burst_seconds: float = 60.0
    levels: list[float] = field(default_factory=list)
    updated: float = 0.0
    # What the pool admitted and what was refused, for tests that check the gateway never overran it.
    spent: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    refused: int = 0

    def capacity(self, i: int) -> float:
        limit = self.limits[i]
        return 0.0 if limit is None else limit * self.burst_seconds / 60.0

    def refill(self, now: float) -> None:
        if not self.levels:
            self.levels = [self.capacity(i) for i in range(3)]
            self.updated = now
        elapsed, self.updated = now - self.updated, now
        for i, limit in enumerate(self.limits):
            if limit is not None:
                self.levels[i] = min(self.capacity(i), self.levels[i] + elapsed * limit / 60.0)

    def shortfall(self, need: tuple[float, float, float]) -> tuple[int, float] | None:
        """The first limit `need` would pass, and seconds until it would not; None when it fits."""
        for i, limit in enumerate(self.limits):
            if limit is not None and self.levels[i] < min(need[i], self.capacity(i)):
                return i, (min(need[i], self.capacity(i)) - self.levels[i]) / (limit / 60.0)
        return None


class QuotaPools:
    def __init__(self, pools: Iterable[Pool] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self.pools = list(pools)
        self.clock = clock

    def pool_of(self, deployment: str) -> Pool | None:
        return next((p for p in self.pools if deployment in p.deployments), None)

    def admit(self, deployment: str, need: tuple[float, float, float]) -> tuple[str, float] | None:
        """Take `need` from the deployment's pool; or the refusal's message and retry-after seconds."""
        pool = self.pool_of(deployment)
        if pool is None:
            return None
        pool.refill(self.clock())
        short = pool.shortfall(need)
        if short is not None:
            pool.refused += 1
            i, wait = short
            limit = pool.limits[i]
            message = (
                f"This request would exceed your organization's rate limit of {limit:,.0f} {LIMIT_NAMES[i]} per "
                f"minute (pool {pool.name}). For details, refer to the rate limits documentation; retry after "
                f"{math.ceil(wait)} seconds."
            )
            return message, wait
        for i in range(3):
            pool.levels[i] -= need[i]
            pool.spent[i] += need[i]
        return None

    def correct(self, deployment: str, charged_output: float, output: float) -> None:
        pool = self.pool_of(deployment)
        if pool is not None:
            pool.refill(self.clock())
            if pool.limits[2] is not None:
                pool.levels[2] = min(pool.capacity(2), pool.levels[2] + charged_output - output)
            pool.spent[2] += output - charged_output

    def report(self) -> list[dict[str, Any]]:
        return [{"name": p.name, "limits": p.limits, "spent": p.spent, "refused": p.refused} for p in self.pools]


def pools_from(spec: list[dict[str, Any]], clock: Callable[[], float] = time.monotonic) -> QuotaPools:
    """[{name, requests_per_minute, input_tokens_per_minute, output_tokens_per_minute, burst_seconds, deployments}]"""
    return QuotaPools(
        (
            Pool(
                p["name"],
                (p.get("requests_per_minute"), p.get("input_tokens_per_minute"), p.get("output_tokens_per_minute")),
                frozenset(p["deployments"]),
                p.get("burst_seconds", 60.0),
            )
            for p in spec
        ),
        clock,
    )


class PromptCaches:
    """Each deployment's prompt cache: prefix hash -> when it expires. A read refreshes the TTL, as Claude's does."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[tuple[str, str], float] = {}

    def has(self, deployment: str, prefix: str) -> bool:
        expires = self._entries.get((deployment, prefix))
        return expires is not None and expires > self.clock()

    def write(self, deployment: str, prefix: str, ttl: float) -> None:
        key = (deployment, prefix)
        self._entries[key] = max(self._entries.get(key, 0.0), self.clock() + ttl)

    def clear(self) -> None:
        self._entries.clear()
