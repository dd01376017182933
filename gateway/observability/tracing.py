"""OpenTelemetry tracing: whether it is on, and the SDK set-up every traced process shares.

On only when OTEL_TRACES_EXPORTER names an exporter (otlp); unset or `none`, nothing here is
called, the SDK is never imported, and the request path makes no span and tests one `is None`.
Everything else is the OpenTelemetry SDK's, configured by the standard OTEL_* variables: the
OTLP/HTTP endpoint and headers, the sampler, the service name, the batch processor.

The gateway makes its spans in an export process of its own (request_tracing.py says why); the
token sidecar, which traces a refresh every few minutes, makes them in-process (`ProcessTracing`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import Span

_OFF = ("", "none")


class TracingConfigError(Exception):
    """OTEL_* settings the gateway cannot honour: said at start-up, never a silent no-op."""


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether OTEL_TRACES_EXPORTER turns tracing on; raises for settings no process here can serve."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in _OFF:
        return False
    if exporter != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: only otlp (or none) is supported")
    protocol = environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    )
    if protocol != "http/protobuf":
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported")
    return True


def sdk_provider(
    service: str,
    *,
    sampler: Sampler | None = None,
    id_generator: IdGenerator | None = None,
    max_queue_size: int | None = None,
) -> TracerProvider:
    """A TracerProvider that batches spans to the OTLP/HTTP exporter, all of it as OTEL_* says."""
    # Imported only when tracing is on: a process that does not trace never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins over the default name.
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(
        resource=Resource.create({} if named else {SERVICE_NAME: service}),
        sampler=sampler,  # None: OTEL_TRACES_SAMPLER(_ARG)
        id_generator=id_generator,
        shutdown_on_exit=False,  # each process shuts its provider down itself, after its last span
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), max_queue_size=max_queue_size))
    return provider


class ProcessTracing:
    """Spans of a process's own occasional work, made in-process: the token sidecar's refreshes."""

    __slots__ = ("_provider", "_tracer")

    def __init__(self, service: str) -> None:
        self._provider = sdk_provider(service)
        self._tracer = self._provider.get_tracer("foundry-gateway")

    @classmethod
    def from_environ(cls, service: str, environ: Mapping[str, str] = os.environ) -> ProcessTracing | None:
        return cls(service) if tracing_enabled(environ) else None

    def start(self, name: str, attributes: Mapping[str, str | int | float]) -> Span:
        from opentelemetry.trace import SpanKind

        return self._tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)

    @staticmethod
    def end(span: Span, error: str | None = None) -> None:
        if error is not None:
            from opentelemetry.trace import StatusCode

            span.set_attribute("error.type", error)
            span.set_status(StatusCode.ERROR)
        span.end()

    def shutdown(self) -> None:
        """Export what is still batched; at exit."""
        self._provider.shutdown()
