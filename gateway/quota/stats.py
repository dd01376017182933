"""What quota placement did, counted as plain numbers: an add per request, where a labelled
prometheus_client counter or histogram costs a lock and its checks. The metrics collector reads
them at a scrape (gateway/observability/metrics.QuotaCollector); they are kept across reloads."""

from __future__ import annotations

from bisect import bisect_left

# Waiting for quota: nothing (most requests), a lease round, a pool's refill, up to a route's bound.
WAIT_BUCKETS = (0.005, 0.05, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0)


class QuotaStats:
    __slots__ = ("at_once", "queued_affinity", "waits")

    def __init__(self) -> None:
        # (route, affinity, priority) -> requests placed without waiting: nearly all, one add each
        self.at_once: dict[tuple[str, str, str], int] = {}
        self.queued_affinity: dict[tuple[str, str], int] = {}  # (route, affinity) -> requests placed after a wait
        # (route, priority) -> requests that waited, per bucket (not cumulative; the last past every
        # bound), then the sum of their waits
        self.waits: dict[tuple[str, str], list[float]] = {}

    def placed_at_once(self, route: str, affinity: str, priority: str) -> None:
        key = (route, affinity, priority)
        self.at_once[key] = self.at_once.get(key, 0) + 1

    def placed_after(self, route: str, affinity: str, priority: str, waited: float) -> None:
        key = (route, affinity)
        self.queued_affinity[key] = self.queued_affinity.get(key, 0) + 1
        counts = self.waits.get((route, priority))
        if counts is None:
            counts = self.waits[(route, priority)] = [0.0] * (len(WAIT_BUCKETS) + 2)
        counts[bisect_left(WAIT_BUCKETS, waited)] += 1
        counts[-1] += waited

    def affinity(self) -> dict[tuple[str, str], int]:
        """(route, affinity) -> requests placed."""
        totals = dict(self.queued_affinity)
        for (route, affinity, _), count in list(self.at_once.items()):
            totals[(route, affinity)] = totals.get((route, affinity), 0) + count
        return totals

    def histograms(self) -> list[tuple[tuple[str, str], list[tuple[str, float]], float]]:
        """Per (route, priority): Prometheus buckets (cumulative, `le` as text, +Inf last) and the sum."""
        counts: dict[tuple[str, str], list[float]] = {key: list(c) for key, c in list(self.waits.items())}
        for (route, _, priority), at_once in list(self.at_once.items()):
            row = counts.setdefault((route, priority), [0.0] * (len(WAIT_BUCKETS) + 2))
            row[0] += at_once  # waited nothing: the first bucket
        out = []
        for key, row in counts.items():
            buckets: list[tuple[str, float]] = []
            running = 0.0
            for bound, count in zip((*WAIT_BUCKETS, float("inf")), row[:-1], strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            out.append((key, buckets, row[-1]))
        return out
