"""A request's spans while it runs: ids, times and its attempts, as plain records. What they become
is request_tracing.py's business (one row for the export process); the request's record and the
exchange only hold and end them."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from gateway.observability.span_link import Row


@dataclass(slots=True)
class AttemptSpan:
    """One attempt at Foundry: a client span under the request's. Ids are lower-case hex."""

    span_id: str
    start_ns: int
    reason: str  # first, retry (same target) or fallback
    upstream: str
    deployment: str
    host: str
    end_ns: int = 0
    status: int | None = None  # Foundry's HTTP status, when it answered
    error: str | None = None  # error.type: the status, timeout, connection_error
    parent: RequestSpan | None = None

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """traceparent (and tracestate) for Foundry: its spans join the caller's trace under this attempt."""
        parent = self.parent
        assert parent is not None
        headers["traceparent"] = f"00-{parent.trace_id}-{self.span_id}-{parent.flags}"
        if parent.tracestate is not None:
            headers["tracestate"] = parent.tracestate

    def end(self, status: int | None, error: str | None) -> None:
        self.end_ns = time.time_ns()
        self.status = status
        self.error = error

    def row(self) -> Row:
        return (self.span_id, self.start_ns, self.end_ns, self.reason, self.upstream, self.deployment, self.host,
                self.status, self.error)  # fmt: skip


@dataclass(slots=True)
class RequestSpan:
    """A request's server span while it runs: its ids, the caller's context, its attempts."""

    trace_id: str
    span_id: str
    parent_id: str | None  # the caller's span, from its traceparent
    tracestate: str | None  # the caller's, passed on to Foundry
    sampled: bool  # False: ids only, to pass the caller's trace on; no span is exported
    start_ns: int
    attempts: list[AttemptSpan] = field(default_factory=list)

    @property
    def flags(self) -> str:
        return "01" if self.sampled else "00"
