"""OpenTelemetry traces, by the GenAI semantic conventions: a server span per request, a client
span per attempt at Foundry, W3C trace context read from callers and sent on to Foundry.

On only when OTEL_TRACES_EXPORTER names an exporter (otlp); unset or `none`, `from_environ` is
None and the request path makes no span object and no call here, one `is None` test at each
site. Everything else is the OpenTelemetry SDK's, configured by the standard OTEL_* variables:
the OTLP/HTTP endpoint and headers, the sampler, the service name, the batch processor.

No attribute holds prompt or completion text, a key or a token: only names, counts, statuses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from gateway.context import RequestContext
    from gateway.runtime import Target

PROVIDER = "anthropic"  # Claude's Messages API, served by Foundry (server.address says which resource)
_OFF = ("", "none")


class TracingConfigError(Exception):
    """OTEL_* settings the gateway cannot honour: said at start-up, never a silent no-op."""


class Tracing:
    """The tracer and propagator of a process that traces; build with `from_environ`."""

    __slots__ = ("_propagator", "_provider", "_tracer", "kind")

    def __init__(self, service: str) -> None:
        # Imported only when tracing is on: a process that does not trace never loads the SDK.
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins over the default name.
        named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
        resource = Resource.create({} if named else {SERVICE_NAME: service})
        self._provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER(_ARG)
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("foundry-gateway")
        self._propagator = TraceContextTextMapPropagator()
        self.kind = trace.SpanKind

    @classmethod
    def from_environ(cls, service: str, environ: Mapping[str, str] = os.environ) -> Tracing | None:
        exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
        if exporter in _OFF:
            return None
        if exporter != "otlp":
            raise TracingConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: only otlp (or none) is supported")
        protocol = environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        )
        if protocol != "http/protobuf":
            raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported")
        return cls(service)

    def shutdown(self) -> None:
        """Export what is still batched; at exit."""
        self._provider.shutdown()

    # The request path.

    def server_span(self, headers: Mapping[str, str], name: str) -> Span:
        parent = self._propagator.extract(headers)  # the caller's traceparent/tracestate, if any
        return self._tracer.start_span(name, context=parent, kind=self.kind.SERVER)

    def attempt_span(self, parent: Span, target: Target, route: str, reason: str) -> Span:
        from opentelemetry.trace import set_span_in_context

        span = self._tracer.start_span(
            f"chat {route}", context=set_span_in_context(parent), kind=self.kind.CLIENT, attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER,
                "gen_ai.request.model": route,
                "foundry_gateway.upstream": target.upstream.name,
                "foundry_gateway.deployment": target.deployment,
                "foundry_gateway.attempt.reason": reason,  # first, retry (same target) or fallback
                "server.address": target.upstream.host,
            },
        )  # fmt: skip
        return span

    def start(self, name: str, attributes: Mapping[str, str | int | float]) -> Span:
        """A span of the process's own work (the sidecar's token refreshes)."""
        return self._tracer.start_span(name, kind=self.kind.INTERNAL, attributes=attributes)

    def inject(self, headers: MutableMapping[str, str], span: Span) -> None:
        """traceparent (and tracestate) for Foundry: its spans join the caller's trace."""
        from opentelemetry.trace import set_span_in_context

        self._propagator.inject(headers, context=set_span_in_context(span))

    # Ends.

    @staticmethod
    def end_attempt(span: Span, status: int | None, error: str | None) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error is not None:
            from opentelemetry.trace import StatusCode

            span.set_attribute("error.type", error)
            span.set_status(StatusCode.ERROR)
        span.end()

    @staticmethod
    def end_request(span: Span, ctx: RequestContext, status: int) -> None:
        span.update_name(f"chat {ctx.route}")
        span.set_attributes(request_attributes(ctx, status))
        if status >= 500 or ctx.stream_error:
            from opentelemetry.trace import StatusCode

            span.set_attribute("error.type", ctx.stream_error or str(status))
            span.set_status(StatusCode.ERROR)
        span.end()

    @staticmethod
    def first_token(span: Span) -> None:
        span.add_event("gen_ai.first_token")

    @staticmethod
    def trace_id(span: Span) -> str:
        return format(span.get_span_context().trace_id, "032x")


def request_attributes(ctx: RequestContext, status: int) -> dict[str, Any]:
    """The server span's attributes at the request's end. Pure: names and counts only."""
    usage = ctx.usage
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": ctx.route,
        "http.response.status_code": status,
        "foundry_gateway.dialect": ctx.dialect.value,
        "foundry_gateway.stream": ctx.stream,
    }
    if ctx.client is not None:
        attributes["foundry_gateway.client"] = ctx.client.name
    if ctx.deployment is not None:
        attributes["gen_ai.response.model"] = ctx.deployment  # the deployment that answered
        attributes["foundry_gateway.upstream"] = ctx.upstream or ""
    if ctx.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = ctx.max_tokens
    if ctx.response_id is not None:
        attributes["gen_ai.response.id"] = ctx.response_id
    if ctx.stop_reason is not None:
        attributes["gen_ai.response.finish_reasons"] = [ctx.stop_reason]
    if usage:
        cache_read = usage.get("cache_read_input_tokens", 0)
        cache_write = usage.get("cache_creation_input_tokens", 0)
        # Input counts every prompt token, cached or not, as the conventions ask; the cache's share apart.
        attributes["gen_ai.usage.input_tokens"] = usage.get("input_tokens", 0) + cache_read + cache_write
        attributes["gen_ai.usage.output_tokens"] = usage.get("output_tokens", 0)
        attributes["gen_ai.usage.cache_read.input_tokens"] = cache_read
        attributes["gen_ai.usage.cache_creation.input_tokens"] = cache_write
    if ctx.spent is not None and ctx.spent.usd is not None:
        attributes["foundry_gateway.cost_usd"] = ctx.spent.usd
    if ctx.retries:
        attributes["foundry_gateway.retries"] = ctx.retries
    return attributes
