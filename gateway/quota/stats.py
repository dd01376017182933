"""What quota placement did, counted as plain numbers: an add or two per request, where a labelled
prometheus_client counter or histogram costs a lock and its checks. The metrics collector reads
them at a scrape (gateway/observability/metrics.QuotaCollector); they are kept across reloads."""

from __future__ import annotations

from bisect import bisect_left

# Waiting for quota: nothing (most requests), a lease round, a pool's refill, up to a route's bound.
WAIT_BUCKETS = (0.005, 0.05, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0)


class QuotaStats:
    __slots__ = ("affinity", "waits")

    def __init__(self) -> None:
        self.affinity: dict[tuple[str, str], int] = {}  # (route, kept|moved|new|none) -> requests
        # (route, priority) -> requests per bucket (not cumulative; the last past every bound), then the sum
        self.waits: dict[tuple[str, str], list[float]] = {}

    def placed(self, route: str, affinity: str, priority: str, waited: float) -> None:
        key = (route, affinity)
        self.affinity[key] = self.affinity.get(key, 0) + 1
        counts = self.waits.get((route, priority))
        if counts is None:
            counts = self.waits[(route, priority)] = [0.0] * (len(WAIT_BUCKETS) + 2)
        if waited:
            counts[bisect_left(WAIT_BUCKETS, waited)] += 1
            counts[-1] += waited
        else:
            counts[0] += 1

    def histogram(self, key: tuple[str, str]) -> tuple[list[tuple[str, float]], float]:
        """Prometheus buckets (cumulative, `le` as text, +Inf last) and the sum of one (route, priority)."""
        counts = self.waits[key]
        buckets, running = [], 0.0
        for bound, count in zip((*WAIT_BUCKETS, float("inf")), counts[:-1], strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets, counts[-1]
