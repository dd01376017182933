"""The one place the gateway's metrics are written, and the access log with them.

A request's own record is its RequestContext, filled in as it goes (start, target chosen,
first token, usage, how it ended); `finish` turns it into the request metrics and one
access-log line. What happens on the way (attempts, retries, cooldowns, refused answers,
refused callers, connections, reloads) is told to the recorder as it happens. So relabelling
a metric touches this file and metrics.py only, and the access log is only a log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from gateway.observability.logging import AccessLog
from gateway.observability.metrics import GatewayMetrics

# The client label of requests made with inbound auth off.
ANONYMOUS = "anonymous"

if TYPE_CHECKING:
    from gateway.capabilities.learning import Finding
    from gateway.observability.request_context import RequestContext
    from gateway.upstream.exchange import Outcome
    from gateway.upstream.targets import Target

log = structlog.get_logger("gateway")


_BETA_LABELS = 64
_LABEL_SAFE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class Recorder:
    __slots__ = ("_beta_labels", "access_log", "metrics")

    def __init__(self, metrics: GatewayMetrics, access_log: AccessLog) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self._beta_labels: set[str] = set()

    # Gauges read at scrape time.

    def watch_in_flight(self, count: Callable[[], float]) -> None:
        self.metrics.in_flight.set_function(count)

    def watch_open_connections(self, count: Callable[[], float]) -> None:
        self.metrics.open_connections.set_function(count)

    # Callers and connections refused before a request is served.

    def connection_closed(self, reason: str) -> None:
        """`limit` or `header_timeout`."""
        self.metrics.connections_closed.labels(reason).inc()

    def concurrency_rejected(self) -> None:
        self.metrics.concurrency_rejections.inc()

    def inbound_rejected(self, reason: str) -> None:
        """`unauthenticated`, `forbidden_route` or `rate_limited`."""
        self.metrics.inbound_rejections.labels(reason).inc()

    # The exchange with Foundry.

    def upstream_answered(self, target: Target, status: str, seconds: float | None) -> None:
        """One attempt: Foundry's status, or `error` / `timeout` when there was no answer."""
        self.metrics.upstream_requests_by(target.upstream.name, target.deployment, status).inc()
        if seconds is not None:
            self.metrics.upstream_duration_by(target.upstream.name).observe(seconds)

    def _bounded(self, name: str) -> str:
        """A label a client's words decide (a beta, a field): the first _BETA_LABELS distinct names get
        their own series, later ones count as `other`."""
        if name not in self._beta_labels:
            if len(self._beta_labels) >= _BETA_LABELS or not _LABEL_SAFE.fullmatch(name):
                return "other"
            self._beta_labels.add(name)
        return name

    def betas_dropped(self, upstream: str, betas: tuple[str, ...]) -> None:
        """Betas the route's capability profile kept back, by the upstream the request went to."""
        for beta in betas:
            self.metrics.betas_dropped.labels(upstream, self._bounded(beta)).inc()

    def capability_refused(self, request_id: str, target: Target, findings: tuple[Finding, ...], retried: bool) -> None:
        """Foundry refused something the route's profile did not say its deployment lacks: counted by
        deployment and feature, and logged, so a platform team learns what to put in the profile."""
        for finding in findings:
            feature = f"{finding.kind}:{self._bounded(finding.name)}"
            self.metrics.capability_refused.labels(target.upstream.name, target.deployment, feature).inc()
        log.warning(
            "capability_refused",
            request_id=request_id,
            upstream=target.upstream.name,
            deployment=target.deployment,
            features=[f.feature for f in findings],
            retried_without=retried,
        )

    def retried(self, route: str, kind: str) -> None:
        """`fallback` to another target, or `retry` of the same one."""
        self.metrics.retries.labels(route, kind).inc()

    def retry_denied(self, route: str) -> None:
        self.metrics.retries_denied.labels(route).inc()

    def cooled_down(self, target: Target) -> None:
        self.metrics.cooldowns.labels(target.upstream.name, target.deployment).inc()

    def answer_refused(self, request_id: str, outcome: Outcome, reason: str) -> None:
        """An upstream answer the gateway would not pass on (a 502 to the client)."""
        self.metrics.unusable_answers.labels(outcome.upstream or "unknown", reason).inc()
        log.warning(
            "upstream_answer_refused",
            request_id=request_id,
            upstream=outcome.upstream,
            deployment=outcome.deployment,
            upstream_status=outcome.status,
            reason=reason,
        )

    def usage_missing(self, ctx: RequestContext) -> None:
        """An answer whose usage was missing or unusable: charged an estimate, counted and logged."""
        outcome = ctx.outcome
        self.metrics.usage_missing.labels(outcome.upstream or "unknown").inc()
        log.warning(
            "upstream_usage_missing",
            request_id=ctx.request_id,
            upstream=outcome.upstream,
            deployment=outcome.deployment,
            upstream_request_id=outcome.request_id,
            charged="estimate",
        )

    # Quota.

    def quota_throttled(self, pool: str) -> None:
        """A 429 from Foundry for a pool the gateway had admitted the request to."""
        self.metrics.quota_throttled.labels(pool).inc()

    # Shared state.

    def shared_state_failed(self, operation: str) -> None:
        self.metrics.shared_state_errors.labels(operation).inc()

    def shared_state_latency(self, seconds: float) -> None:
        self.metrics.shared_state_duration.observe(seconds)

    def watch_span_exporter(self, pid: Callable[[], int | None]) -> None:
        """Tracing is on: the export process's CPU and memory, and its drop counts from zero."""
        self.metrics.span_exporter_pid = pid
        for reason in ("backlog", "exporter_down", "unencodable"):
            self.metrics.spans_dropped.labels(reason)

    def spans_dropped(self, spans: int, reason: str) -> None:
        self.metrics.spans_dropped.labels(reason).inc(spans)

    # Config.

    def config_reloaded(self, result: str) -> None:
        """`applied` or `refused`."""
        self.metrics.config_reloads.labels(result).inc()

    # The end of a request.

    def finish(self, ctx: RequestContext, method: str, path: str, status: int) -> None:
        """The request's metrics and access-log line. Runs after the response is complete, so nothing
        here may raise: a failure would be written into a finished response."""
        try:
            self._finish(ctx, method, path, status)
        except Exception:
            log.exception("request_record_failed", request_id=ctx.request_id)

    def _finish(self, ctx: RequestContext, method: str, path: str, status: int) -> None:
        duration = time.perf_counter() - ctx.started
        span = ctx.span
        # A sampled request's trace id rides along as an exemplar (OpenMetrics scrapes show it), so a
        # slow bucket in Grafana links to its trace.
        exemplar = {"trace_id": span.trace_id} if span is not None and span.sampled else None
        ttft = ctx.ttft
        self._request_metrics(ctx, status, duration, ttft, exemplar)
        client = ctx.client.name if ctx.client is not None else None
        if client is not None:
            self.metrics.client_requests_by(client, ctx.route, str(status)).inc()
        self._spend_metrics(ctx, client or ANONYMOUS)
        self.access_log.record(self._access_fields(ctx, method, path, status, duration, ttft, client))

    def _request_metrics(
        self, ctx: RequestContext, status: int, duration: float, ttft: float | None, exemplar: dict[str, str] | None
    ) -> None:
        metrics = self.metrics
        dialect = ctx.dialect.value
        metrics.requests_by(ctx.route, dialect, str(status)).inc()
        metrics.request_duration_by(ctx.route, dialect).observe(duration, exemplar)
        if ttft is not None:
            metrics.time_to_first_token_by(ctx.route, dialect).observe(ttft, exemplar)
            output_tokens = ctx.usage.get("output_tokens")
            if isinstance(output_tokens, int) and output_tokens > 1 and not ctx.stream_error:
                metrics.time_per_output_token_by(ctx.route, dialect).observe((duration - ttft) / (output_tokens - 1))
        if ctx.usage:
            metrics.record_tokens(ctx.route, ctx.usage, ctx.outcome.upstream, ctx.outcome.deployment or "")
        if ctx.outcome.quota_refused is not None:
            self._quota_refused(ctx, ctx.outcome.quota_refused)
        if ctx.stream_error:
            metrics.stream_errors.labels(ctx.route, dialect, ctx.stream_error).inc()
        if ctx.client_disconnected:
            metrics.client_disconnects.labels(ctx.route, dialect).inc()

    def _quota_refused(self, ctx: RequestContext, reason: str) -> None:
        # What placement did (affinity, waits) it counts itself (gateway/quota/stats.py); refusals are few.
        priority = ctx.client.priority if ctx.client is not None else "interactive"
        self.metrics.quota_refused.labels(ctx.route, priority, reason).inc()

    def _spend_metrics(self, ctx: RequestContext, payer: str) -> None:
        spent = ctx.spent
        if spent is None:
            return
        metrics = self.metrics
        for kind, count in spent.tokens.by_kind():
            if count:
                metrics.client_tokens_by(payer, ctx.route, kind).inc(count)
        if spent.usd is not None:
            metrics.cost_by(payer, ctx.route).inc(spent.usd)
            if spent.saved_usd:
                metrics.cache_savings_by(payer, ctx.route).inc(spent.saved_usd)

    @staticmethod
    def _access_fields(
        ctx: RequestContext,
        method: str,
        path: str,
        status: int,
        duration: float,
        ttft: float | None,
        client: str | None,
    ) -> dict[str, Any]:
        """The access-log line's fields; unset ones are left out: one short line per request is what people read."""
        span, spent, outcome = ctx.span, ctx.spent, ctx.outcome
        target = outcome.target
        fields = {
            "request_id": ctx.request_id,
            "trace_id": span.trace_id if span is not None else None,
            "client": client,
            "session_id": ctx.session_id,
            "method": method,
            "path": path,
            "dialect": ctx.dialect.value,
            "route": ctx.route,
            "upstream": target.upstream.name if target is not None else None,
            "deployment": target.deployment if target is not None else None,
            "status": status,
            "upstream_status": outcome.status,
            "upstream_request_id": outcome.request_id,
            "stream": ctx.stream,
            "duration_ms": round(duration * 1000, 2),
            "ttft_ms": None if ttft is None else round(ttft * 1000, 2),
            "input_tokens": ctx.usage.get("input_tokens"),
            "output_tokens": ctx.usage.get("output_tokens"),
            "cache_read_tokens": ctx.usage.get("cache_read_input_tokens"),
            "cache_write_tokens": ctx.usage.get("cache_creation_input_tokens") or None,
            "cost_usd": round(spent.usd, 6) if spent is not None and spent.usd is not None else None,
            "usage_source": ctx.usage_source if ctx.usage_source != "reported" else None,
            "stream_error": ctx.stream_error,
            "client_disconnected": ctx.client_disconnected or None,
            "auth_retried": outcome.auth_retried or None,
            "retries": outcome.retries or None,
            "adjusted": ctx.adjusted or None,
            "betas_dropped": outcome.betas_dropped or None,
            "capability_refused": ctx.capability_refused or None,
            "quota_pool": outcome.charge.meter.name if outcome.charge is not None else None,
            "quota_wait_ms": round(outcome.waited * 1000, 1) if outcome.waited else None,
            "affinity": outcome.affinity,
            "quota_refused": outcome.quota_refused,
            "error": ctx.error,
        }
        return {k: v for k, v in fields.items() if v is not None}
