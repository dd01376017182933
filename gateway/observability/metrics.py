"""Every metric the gateway emits: names, labels and buckets in one place, registered once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway import __version__

# LLM calls run from milliseconds (errors, cached short answers) to minutes (long thinking).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# Claude streams tens to a few hundred tokens a second.
TOKEN_INTERVAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1)
# A Redis round trip in the cluster: well under a millisecond, bounded by state.redis.timeout_ms.
SHARED_STATE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


M = TypeVar("M", Counter, Histogram)


class Children(Generic[M]):
    """`metric.labels(...)`, remembered: prometheus_client takes a lock and checks the values on
    every call, several times per request. Label values here are bounded (route names, statuses,
    upstreams), and the client keeps every child anyway, so the memo adds no series and no growth."""

    __slots__ = ("_children", "metric")

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"foundry_gateway_{name}", doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(f"foundry_gateway_{name}", doc, labels, buckets=buckets, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"foundry_gateway_{name}", doc, registry=registry)

        # Requests, as clients saw them.
        self.requests = counter("requests", "Client requests by route, API dialect and HTTP status.",
                                "route", "dialect", "status")  # fmt: skip
        self.request_duration = histogram(
            "request_duration_seconds",
            "Time from request received to response complete (stream end included).",
            LATENCY_BUCKETS, "route", "dialect",
        )  # fmt: skip
        self.time_to_first_token = histogram(
            "time_to_first_token_seconds",
            "Time from request received to the first streamed content sent to the client.",
            LATENCY_BUCKETS, "route", "dialect",
        )  # fmt: skip
        self.time_per_output_token = histogram(
            "time_per_output_token_seconds",
            "Stream time after the first token, divided by the output tokens after it.",
            TOKEN_INTERVAL_BUCKETS, "route", "dialect",
        )  # fmt: skip
        self.tokens = counter("tokens", "Tokens reported by Foundry, by route and type.", "route", "type")
        self.in_flight = gauge("in_flight_requests", "Requests being served now.")
        self.stream_errors = counter(
            "stream_errors", "Streams that ended with an error after the response had started.",
            "route", "dialect", "reason",
        )  # fmt: skip
        self.client_disconnects = counter("client_disconnects",
                                          "Clients that went away before their response was complete.",
                                          "route", "dialect")  # fmt: skip
        # The exchange with Foundry.
        self.upstream_requests = counter(
            "upstream_requests", "Requests sent to Foundry, by upstream, deployment and status (or error kind).",
            "upstream", "deployment", "status",
        )  # fmt: skip
        self.upstream_duration = histogram("upstream_duration_seconds",
                                           "Time from sending a request to Foundry to its response headers.",
                                           LATENCY_BUCKETS, "upstream")  # fmt: skip
        self.retries = counter(
            "retries",
            "Further attempts after a failed one, before the first byte: kind is fallback (another target) or retry.",
            "route", "kind",
        )  # fmt: skip
        self.retries_denied = counter(
            "retries_denied",
            "Retries not made because the retry budget was spent or the next target was cooling down.",
            "route",
        )
        self.betas_dropped = counter(
            "betas_dropped",
            "anthropic-beta values a route's capability profile kept back, by upstream and beta (other past 64 "
            "names).",
            "upstream", "beta",
        )  # fmt: skip
        self.capability_refused = counter(
            "capability_refused",
            "Foundry refusals naming a beta, body field or server tool the capability profile did not say was lacking, "
            "by deployment and feature (kind:name); each is a line to add to upstreams[].capabilities.",
            "upstream", "deployment", "feature",
        )  # fmt: skip
        self.cooldowns = counter("target_cooldowns",
                                 "Times a target was put in cooldown (consecutive failures or a retry-after).",
                                 "upstream", "deployment")  # fmt: skip
        self.unusable_answers = counter(
            "upstream_unusable_answers",
            "Upstream answers refused and answered 502: redirect, unexpected_status, too_large, not_a_message.",
            "upstream", "reason",
        )  # fmt: skip
        self.usage_missing = counter(
            "upstream_usage_missing",
            "Answers whose usage was missing or implausible (a count over 100 million): charged an estimate "
            "(input bytes / 4 plus max_tokens) instead.",
            "upstream",
        )  # fmt: skip
        # Connections and callers refused before a request is served.
        self.open_connections = gauge("open_connections", "Client connections open on the API port.")
        self.connections_closed = counter(
            "connections_closed",
            "Client connections the gateway closed: limit (over server.max_connections, answered 503), "
            "header_timeout (no request head within server.header_timeout_seconds).",
            "reason",
        )
        self.concurrency_rejections = counter(
            "concurrency_rejections", "Requests answered 429 at once because the pod was at max_concurrent_requests."
        )
        self.client_requests = counter(
            "client_requests",
            "Requests by inbound client (names from the config), route and status; only with inbound auth on.",
            "client", "route", "status",
        )  # fmt: skip
        self.inbound_rejections = counter(
            "inbound_rejections",
            "Requests refused by inbound auth: unauthenticated, forbidden_route or rate_limited.",
            "reason",
        )
        self.config_reloads = counter("config_reloads", "Config file reloads by result (applied, refused).", "result")
        # Spend, by client (configured names, or anonymous with inbound auth off) and route.
        self.cost = counter("cost_usd", "USD spent at the route's price, by client and route.", "client", "route")
        self.client_tokens = counter(
            "client_tokens", "Tokens Foundry reported, by client, route and type (input, output, cache_read, "
            "cache_write).", "client", "route", "type",
        )  # fmt: skip
        self.cache_savings = counter(
            "cache_savings_usd", "What cache reads saved over paying for them as input, by client and route.",
            "client", "route",
        )  # fmt: skip
        # The shared state (state.redis).
        self.shared_state_errors = counter(
            "shared_state_errors",
            "Redis operations that failed or timed out: admit (on the request path) or charge (after it).",
            "operation",
        )
        self.shared_state_duration = histogram(
            "shared_state_duration_seconds", "Time a request waited for its admission round trip to Redis.",
            SHARED_STATE_BUCKETS,
        )  # fmt: skip
        # Foundry quota (quota_pools; docs/quota.md).
        self.quota_throttled = counter(
            "quota_upstream_throttled",
            "429s from Foundry for a metered pool: the gateway's view of the pool was wrong (someone else shares the "
            "subscription, or its limits are set too high). The pool is paused and trusted less for a while.",
            "pool",
        )
        self.quota_refused = counter(
            "quota_refused", "Requests answered 429 for want of quota: queue_full, wait_bound (refused at once, the "
            "wait would pass max_wait_seconds), waited (waited max_wait_seconds).", "route", "priority", "reason",
        )  # fmt: skip
        # Tokens by deployment (its cache-read share): plain sums, an add per request where a labelled
        # counter costs a lock and its checks; emitted at a scrape as foundry_gateway_target_tokens_total.
        self.target_tokens: dict[tuple[str, str, str], int] = {}
        registry.register(_TargetTokens(self.target_tokens))
        # Tracing (OTEL_TRACES_EXPORTER): spans the export process never got.
        self.spans_dropped = counter(
            "spans_dropped",
            "Spans dropped before export: backlog (the export process is behind, its collector slow or down), "
            "exporter_down (the process is restarting) or unencodable.",
            "reason",
        )
        # With tracing on, the span export process's CPU and memory: tracing's work off the event loop.
        self.span_exporter_pid: Callable[[], int | None] = lambda: None
        ProcessCollector(
            namespace="foundry_gateway_span_exporter", pid=lambda: self.span_exporter_pid() or "none", registry=registry
        )
        Info("foundry_gateway_build", "Gateway version.", registry=registry).info({"version": __version__})
        # Memory, CPU, open files and the garbage collector of this process, under their standard names.
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        # The per-request ones, memoized.
        self.requests_by = Children(self.requests)
        self.request_duration_by = Children(self.request_duration)
        self.time_to_first_token_by = Children(self.time_to_first_token)
        self.time_per_output_token_by = Children(self.time_per_output_token)
        self.tokens_by = Children(self.tokens)
        self.client_requests_by = Children(self.client_requests)
        self.upstream_requests_by = Children(self.upstream_requests)
        self.upstream_duration_by = Children(self.upstream_duration)
        self.cost_by = Children(self.cost)
        self.client_tokens_by = Children(self.client_tokens)
        self.cache_savings_by = Children(self.cache_savings)

    def record_tokens(self, route: str, usage: Mapping[str, object], upstream: str | None, deployment: str) -> None:
        by_target = self.target_tokens
        for kind, name in _TOKEN_KINDS:
            value = usage.get(name)
            if isinstance(value, int) and value > 0:
                self.tokens_by(route, kind).inc(value)
                if upstream is not None:
                    key = (upstream, deployment, kind)
                    by_target[key] = by_target.get(key, 0) + value


_TOKEN_KINDS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_input_tokens"),
    ("cache_creation", "cache_creation_input_tokens"),
)
DIMENSIONS = ("requests", "input_tokens", "output_tokens")


class _TargetTokens(Collector):
    def __init__(self, counts: dict[tuple[str, str, str], int]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "foundry_gateway_target_tokens", "Tokens Foundry reported, by upstream, deployment and type (input, "
            "output, cache_read, cache_creation): a deployment's cache-read share.",
            labels=["upstream", "deployment", "type"],
        )  # fmt: skip
        for labels, value in list(self._counts.items()):
            family.add_metric(list(labels), value)
        yield family


class QuotaCollector(Collector):
    """Each quota pool's headroom and each quota route's queue, read at scrape time from the live config."""

    def __init__(self, state: Callable[[], Any]) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state()
        headroom = GaugeMetricFamily(
            "foundry_gateway_quota_headroom_ratio",
            "What a quota pool's bucket holds now, as a share of what it holds full, by pool and dimension "
            "(this replica's view: its leases, or its share while it meters alone). 0: requests wait.",
            labels=["pool", "dimension"],
        )
        shared = GaugeMetricFamily(
            "foundry_gateway_quota_shared",
            "1 while the pool is metered across replicas through Redis leases; 0 while this replica meters its "
            "share alone (no state.redis, or Redis unreachable).",
            labels=["pool"],
        )
        for name, levels, leased in state.pools:
            for dimension, level in zip(DIMENSIONS, levels, strict=True):
                if level is not None:
                    headroom.add_metric([name, dimension], level)
            shared.add_metric([name], 1.0 if leased else 0.0)
        depth = GaugeMetricFamily(
            "foundry_gateway_quota_queue_depth", "Requests waiting for quota, by route and priority.",
            labels=["route", "priority"],
        )  # fmt: skip
        bound = GaugeMetricFamily(
            "foundry_gateway_quota_max_wait_seconds", "A quota route's max_wait_seconds.", labels=["route"]
        )
        for route, priority, waiting, max_wait in state.queues:
            depth.add_metric([route, priority], waiting)
            if priority == "interactive":
                bound.add_metric([route], max_wait)
        yield from (headroom, shared, depth, bound, *_counts(state))


class TokenExpiryCollector(Collector):
    """Each upstream's token expiry, read from the credentials at scrape time (never stale)."""

    def __init__(self, expiries: Callable[[], Iterable[tuple[str, float | None]]]) -> None:
        self._expiries = expiries

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "foundry_gateway_upstream_token_expiry_timestamp_seconds",
            "When the Entra token each upstream uses expires (unix seconds); absent while there is none.",
            labels=["upstream"],
        )
        for name, expires_on in self._expiries():
            if expires_on is not None:
                family.add_metric([name], expires_on)
        yield family


def _counts(state: Any) -> tuple[Metric, ...]:
    """Counters kept as plain numbers by the meters and the sessions (an add per request, not a labelled
    counter's lock and checks), carried across reloads with them."""
    admitted = CounterMetricFamily(
        "foundry_gateway_quota_admitted", "What requests were charged to their quota pool when sent (requests, "
        "the uncached input estimate, max_tokens), by pool and dimension.", labels=["pool", "dimension"],
    )  # fmt: skip
    consumed = CounterMetricFamily(
        "foundry_gateway_quota_consumed", "What Foundry counted of those requests against the pool (requests, "
        "input plus cache writes, output): the admitted charge, corrected.", labels=["pool", "dimension"],
    )  # fmt: skip
    for name, charged, counted in state.totals:
        for dimension, a, c in zip(DIMENSIONS, charged, counted, strict=True):
            if a is not None:
                admitted.add_metric([name, dimension], a)
                consumed.add_metric([name, dimension], c)
    affinity = CounterMetricFamily(
        "foundry_gateway_affinity", "strategy quota: where each request's session went: kept (its target), "
        "moved (another, for want of quota or health), new (first seen here), none (no session key).",
        labels=["route", "result"],
    )  # fmt: skip
    for (route, result), count in state.affinity:
        affinity.add_metric([route, result], count)
    waits = HistogramMetricFamily(
        "foundry_gateway_quota_wait_seconds", "Time a strategy-quota request waited for quota (0 for most).",
        labels=["route", "priority"],
    )  # fmt: skip
    for (route, priority), buckets, total in state.waits:
        waits.add_metric([route, priority], buckets, total)
    return admitted, consumed, affinity, waits
