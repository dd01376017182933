"""Which of a route's targets to try, in what order, and what is known of each: its health (failures,
cooldowns, retry-after pauses) and the retry budget. Kept across reloads by target, so a reload
that only adds a route neither forgives nor forgets a failing deployment."""

from __future__ import annotations

import math
import random
import time
from bisect import bisect
from collections.abc import Iterable
from itertools import accumulate

from gateway.config import RetryConfig
from gateway.errors import GatewayError
from gateway.upstream.retry import RetryBudget, TargetHealth
from gateway.upstream.targets import Route, Target


class Routing:
    __slots__ = ("_health", "_rng", "budget")

    def __init__(
        self,
        routes: Iterable[Route],
        retries: RetryConfig,
        previous: Routing | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        carried = previous._health if previous is not None else {}
        self._health: dict[tuple[str, str], TargetHealth] = {}
        for route in routes:
            for t in route.targets:
                key = (t.upstream.name, t.deployment)
                old = carried.get(key)
                self._health[key] = (
                    old.configure(retries.cooldown_failures, retries.cooldown_seconds)
                    if old is not None
                    else TargetHealth(retries.cooldown_failures, retries.cooldown_seconds)
                )
        self.budget: RetryBudget = (
            previous.budget.configure(retries.budget_ratio, retries.budget_min_per_second)
            if previous is not None
            else RetryBudget(retries.budget_ratio, retries.budget_min_per_second)
        )

    def health(self, target: Target) -> TargetHealth:
        return self._health[(target.upstream.name, target.deployment)]

    def plan(self, route: Route) -> list[Target]:
        """The targets to try, in order: usable credentials, not cooling down, spread by weight.

        503 when there is none, naming why (credentials) or when to come back (cooldown).
        """
        usable: list[Target] = []
        reasons: list[str] = []
        for target in route.targets:
            state = target.upstream.credential.status()
            if state.usable:
                usable.append(target)
            elif state.reason:
                reasons.append(f"upstream {target.upstream.name}: {state.reason}")
        if not usable:
            raise GatewayError(
                503, f"No upstream for model {route.name!r} has usable credentials. " + "; ".join(reasons)
            )
        # A pool Foundry answered 429 for is paused for its retry-after: its targets are not tried. (On
        # a quota route placement waits for it instead, within the route's bound.)
        paused_pools = route.metered and route.quota is None  # a quota route's placement waits for them instead
        now = time.monotonic() if paused_pools else 0.0
        ready = [t for t in usable if self.health(t).available() and (not paused_pools or not pool_paused(t, now))]
        if not ready:
            raise self._all_paused(route, usable, now)
        return ready if route.priority else self._weighted_order(ready)

    def _all_paused(self, route: Route, usable: list[Target], now: float) -> GatewayError:
        wait = max(1, math.ceil(min(max(self.health(t).remaining(), _paused_for(t, now)) for t in usable)))
        throttled = all(self.health(t).cooling_status == 429 or _paused_for(t, now) > 0 for t in usable)
        cause = "Foundry asked to slow down (429)" if throttled else "they failed repeatedly"
        return GatewayError(
            429 if throttled else 503,
            f"Every target of model {route.name!r} is paused because {cause}; retry in {wait} s",
            error_type="rate_limit_error" if throttled else None,
            headers={"retry-after": str(wait)},
        )

    def _weighted_order(self, targets: list[Target]) -> list[Target]:
        if len(targets) == 1:
            return targets
        remaining = list(targets)
        ordered: list[Target] = []
        while remaining:
            cumulative = list(accumulate(t.weight for t in remaining))
            ordered.append(remaining.pop(bisect(cumulative, self._rng.random() * cumulative[-1])))
        return ordered


def _paused_for(target: Target, now: float) -> float:
    return max(0.0, target.pool.paused_until - now) if target.pool is not None else 0.0


def pool_paused(target: Target, now: float) -> bool:
    """Foundry answered 429 for the target's quota pool and its retry-after has not passed."""
    return target.pool is not None and target.pool.paused_until > now
