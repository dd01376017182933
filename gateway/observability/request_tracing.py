"""The gateway's traces: a server span per request and a client span per attempt at Foundry, with
W3C trace context read from callers and sent on to Foundry.

Only what must happen on the request path happens here: read the caller's `traceparent`, decide
by the configured sampler, draw span ids, stamp times, and at the request's end hand one plain
record to the export process. That process (span_export.py) makes the spans with the SDK and
exports them. Making them here cost the event loop as much again as the request itself: about
60 µs per request in the SDK's span objects and 120 µs in its protobuf encoding, against a 10%
budget of about 30 µs (docs/benchmarks.md). The records cost a few µs each.

No field holds prompt or completion text, a key or a token: only names, counts, statuses, times.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

from foundry_common.tracing import tracing_enabled
from gateway.observability.span_link import SpanLink
from gateway.observability.spans import AttemptSpan, RequestSpan

if TYPE_CHECKING:
    from gateway.observability.request_context import RequestContext
    from gateway.upstream.targets import Target


# What the export process gets of a request: one row, its fields in this order (span_export.py
# reads them by these names). A row, not a mapping: it encodes in a sixth of the time.
REQUEST_FIELDS = (
    "trace_id", "span_id", "parent_id", "tracestate", "name", "start_ns", "end_ns", "first_token_ns", "status",
    "route", "dialect", "stream", "client", "deployment", "upstream", "max_tokens", "response_id", "stop_reason",
    "usage", "cost_usd", "retries", "stream_error", "attempts",
)  # fmt: skip
ATTEMPT_FIELDS = ("span_id", "start_ns", "end_ns", "reason", "upstream", "deployment", "host", "status", "error")


class RequestTracing:
    """Sampling, ids and trace context per request; the finished records go to the export process."""

    __slots__ = ("_extract", "_new_span_id", "_new_trace_id", "_sample", "_sampled", "_server", "link")

    def __init__(self, link: SpanLink) -> None:
        # The SDK's own pieces, so OTEL_TRACES_SAMPLER(_ARG) means what it means everywhere; imported
        # only when tracing is on. The provider is built for its sampler alone and makes no span.
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        sampler = TracerProvider(shutdown_on_exit=False).sampler
        ids = RandomIdGenerator()
        self._sample = sampler.should_sample
        self._sampled = Decision.RECORD_AND_SAMPLE
        self._server = SpanKind.SERVER
        self._extract = TraceContextTextMapPropagator().extract
        self._new_trace_id = ids.generate_trace_id
        self._new_span_id = ids.generate_span_id
        self.link = link

    @classmethod
    def from_environ(
        cls, service: str, log_level: str = "info", log_format: str = "json", environ: Mapping[str, str] = os.environ
    ) -> RequestTracing | None:
        if not tracing_enabled(environ):
            return None
        return cls(SpanLink(service, log_level, log_format))

    def server_span(self, headers: Mapping[str, str]) -> RequestSpan:
        parent_id = tracestate = None
        context = None
        if "traceparent" in headers:
            from opentelemetry.trace import get_current_span

            context = self._extract(_carrier(headers))
            caller = get_current_span(context).get_span_context()
            if caller.is_valid:
                trace_id = caller.trace_id
                parent_id = format(caller.span_id, "016x")
                tracestate = caller.trace_state.to_header() or None
            else:
                context = None  # a malformed traceparent starts a new trace, as the SDK would
        if parent_id is None:
            trace_id = self._new_trace_id()
        sampled = self._sample(context, trace_id, "", self._server).decision is self._sampled
        return RequestSpan(
            format(trace_id, "032x"), format(self._new_span_id(), "016x"), parent_id, tracestate, sampled,
            time.time_ns(),
        )  # fmt: skip

    def attempt_span(self, parent: RequestSpan, target: Target, reason: str) -> AttemptSpan:
        upstream = target.upstream
        span = AttemptSpan(
            format(self._new_span_id(), "016x"), time.time_ns(), reason, upstream.name, target.deployment,
            upstream.host, parent=parent,
        )  # fmt: skip
        parent.attempts.append(span)
        return span

    @staticmethod
    def inject(headers: MutableMapping[str, str], parent: RequestSpan, attempt: AttemptSpan) -> None:
        """traceparent (and tracestate) for Foundry: its spans join the caller's trace under the attempt."""
        assert attempt.parent is parent
        attempt.inject(headers)

    def end_request(self, span: RequestSpan, ctx: RequestContext, status: int, name: str) -> None:
        """What the request did, as one row for the export process; an unsampled request ends here.
        `name` is the span's name for a request that reached no model route ("chat {route}" otherwise).
        The export process turns the row into GenAI attributes: the request path builds no attribute map."""
        if not span.sampled:
            return
        end = time.time_ns()
        for attempt in span.attempts:
            if not attempt.end_ns:  # cut short with the request (the client went away)
                attempt.end(None, "cancelled")
        first_token = ctx.first_token_at
        spent = ctx.spent
        self.link.send((
            span.trace_id, span.span_id, span.parent_id, span.tracestate, name, span.start_ns, end,
            None if first_token is None else end - round((time.perf_counter() - first_token) * 1e9),
            status, ctx.route, ctx.dialect.value, ctx.stream, None if ctx.client is None else ctx.client.name,
            ctx.outcome.deployment, ctx.outcome.upstream, ctx.max_tokens, ctx.response_id, ctx.stop_reason,
            ctx.usage or None, None if spent is None else spent.usd, ctx.outcome.retries, ctx.stream_error,
            [attempt.row() for attempt in span.attempts],
        ))  # fmt: skip


class AttemptTracing:
    """The exchange's view of one request's trace: a span per attempt, under the request's."""

    __slots__ = ("_parent", "_tracing")

    def __init__(self, tracing: RequestTracing, parent: RequestSpan) -> None:
        self._tracing = tracing
        self._parent = parent

    def attempt(self, target: Target, reason: str) -> AttemptSpan:
        return self._tracing.attempt_span(self._parent, target, reason)


# W3C Trace Context: a tracestate of more than 512 characters may be dropped whole. One that long,
# or one not printable ASCII, is: the SDK's propagator would echo all of it into a warning per
# request, and bytes that are not UTF-8 break its parser.
_MAX_TRACESTATE = 512


def _carrier(headers: Mapping[str, str]) -> dict[str, str]:
    """The trace context headers, with a tracestate the propagator may safely read (or none)."""
    carrier = {"traceparent": headers["traceparent"]}
    state = headers.get("tracestate")
    if state is not None and len(state) <= _MAX_TRACESTATE and state.isascii() and state.isprintable():
        carrier["tracestate"] = state
    return carrier
