"""The sidecar's spans: one a refresh, made in-process (it traces a refresh every few minutes)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from foundry_common.tracing import sdk_provider, tracing_enabled

if TYPE_CHECKING:
    from opentelemetry.trace import Span


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
