"""What one request did, filled in as it goes; the recorder turns it into the access-log line and the
request metrics, and request_tracing into its spans."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import Dialect
from gateway.inbound.clients import Client
from gateway.observability.spans import RequestSpan
from gateway.runtime import OTHER_ROUTE, Runtime
from gateway.served import Served
from gateway.spend.limits import Standing
from gateway.spend.prices import Spent
from gateway.upstream.exchange import NO_OUTCOME, Outcome


@dataclass(slots=True, eq=False)
class StreamOutcome:
    """What a relayed stream did, as far as it got (handlers/streaming.py fills it in); the request's
    record takes it in at its end."""

    usage: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    response_id: str | None = None
    first_token_at: float | None = None  # perf_counter
    error: str | None = None  # why it ended early: an error type, upstream_error_event, internal_error
    client_gone: bool = False
    relayed_output: int | None = None  # cut before its end: the output tokens it had carried


@dataclass(slots=True)
class RequestContext:
    request_id: str
    dialect: Dialect
    served: Served  # what the config decided when this request started, kept to its end whatever a reload does
    runtime: Runtime  # served.runtime, read often enough to be a field of its own
    started: float = field(default_factory=time.perf_counter)
    route: str = OTHER_ROUTE
    # The exchange's, once there is one; until then one that nothing writes, shared by every request.
    outcome: Outcome = NO_OUTCOME
    stream: bool = False
    first_token_at: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    stream_error: str | None = None
    client_disconnected: bool = False
    client: Client | None = None
    session_id: str | None = None  # the caller's session (Claude Code's x-claude-code-session-id): the log only
    adjusted: tuple[str, ...] = ()  # what the gateway changed in the request so Claude accepts it
    capability_refused: tuple[str, ...] = ()  # what Foundry refused that the route's profile did not say it lacked
    error: str | None = None
    span: RequestSpan | None = None  # the request's server span, when tracing is on
    max_tokens: int | None = None
    response_id: str | None = None
    stop_reason: str | None = None
    standing: Standing | None = None  # where the client stands against its limits: response headers
    spent: Spent | None = None  # what the request used and cost, worked out at its end
    request_bytes: int = 0  # the body's size: an estimate of its input when Foundry reports none
    free: bool = False  # a token count: nothing to charge
    relayed_output: int | None = None  # a stream cut before its end: the output tokens it had carried
    usage_source: str | None = None  # reported, partial or estimated: what the charge was worked out from
    streamed: StreamOutcome | None = None  # the stream relay's, when the answer was streamed

    def response_headers(self) -> dict[str, str]:
        """What every answer carries, whole or streamed: its request id, and where its client stands."""
        headers = {"x-request-id": self.request_id}
        if self.standing is not None:
            headers.update(self.standing.headers(self.dialect))
        return headers

    def take_in_stream(self) -> None:
        """What the stream relay found out, taken into the record once, at the request's end."""
        streamed = self.streamed
        assert streamed is not None
        self.usage, self.stop_reason, self.response_id = streamed.usage, streamed.stop_reason, streamed.response_id
        self.first_token_at, self.stream_error = streamed.first_token_at, streamed.error
        self.relayed_output = streamed.relayed_output
        self.client_disconnected = self.client_disconnected or streamed.client_gone

    def answered(self, message: dict[str, Any], response_id: Any = None) -> None:
        """A non-streamed answer's id (as the client got it) and stop reason, for the trace."""
        stop, mid = message.get("stop_reason"), response_id or message.get("id")
        self.stop_reason = stop if isinstance(stop, str) else None
        self.response_id = mid if isinstance(mid, str) else None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started
