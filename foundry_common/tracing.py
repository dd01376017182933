"""OpenTelemetry tracing: whether it is on, and the SDK set-up every traced process shares (the
gateway's export process, the token sidecar).

On only when OTEL_TRACES_EXPORTER names an exporter (otlp); unset or `none`, nothing here is
called, the SDK is never imported, and the request path makes no span and tests one `is None`.
Everything else is the OpenTelemetry SDK's, configured by the standard OTEL_* variables: the
OTLP/HTTP endpoint and headers, the sampler, the service name, the batch processor.

The gateway makes its spans in an export process of its own (request_tracing.py says why); the
token sidecar, which traces a refresh every few minutes, makes them in-process
(token_sidecar/tracing.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import Sampler

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
