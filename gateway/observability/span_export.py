"""The gateway's span export process: it replays the request rows the gateway sends
(request_tracing.REQUEST_FIELDS, batched as JSON lines on stdin) as OpenTelemetry spans, made by the SDK's
tracer with the gateway's ids and times, and exported by the SDK's batch processor and OTLP/HTTP
exporter, all configured by the standard OTEL_* variables the gateway was started with.

Started by span_link.SpanLink as `python -m gateway.observability.span_export SERVICE LEVEL
FORMAT READY_FD`; it ends when its stdin closes, after exporting every span it holds.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import orjson
import structlog

# Imported at the top: only the export process (and the tests) load this module, never the gateway.
from opentelemetry.sdk.environment_variables import OTEL_BSP_MAX_QUEUE_SIZE
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

from foundry_common.log_setup import configure_logging
from foundry_common.tracing import sdk_provider
from gateway.observability.request_tracing import ATTEMPT_FIELDS, REQUEST_FIELDS

log = structlog.get_logger("gateway.tracing")

PROVIDER = "anthropic"  # Claude's Messages API, served by Foundry (server.address says which resource)
DEFAULT_QUEUE = 2048  # the SDK's default for OTEL_BSP_MAX_QUEUE_SIZE
NICENESS = 10  # background work's usual priority: about a tenth of a core the event loop also wants


def record_of(row: list[Any]) -> dict[str, Any]:
    """A request row, by its field names."""
    record = dict(zip(REQUEST_FIELDS, row, strict=True))
    record["attempts"] = [dict(zip(ATTEMPT_FIELDS, attempt, strict=True)) for attempt in record["attempts"]]
    return record


def request_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """The server span's attributes, from a request record. Pure: names and counts only."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": record["route"],
        "http.response.status_code": record["status"],
        "foundry_gateway.dialect": record["dialect"],
        "foundry_gateway.stream": record["stream"],
    }
    if record["client"] is not None:
        attributes["foundry_gateway.client"] = record["client"]
    if record["deployment"] is not None:
        attributes["gen_ai.response.model"] = record["deployment"]  # the deployment that answered
        attributes["foundry_gateway.upstream"] = record["upstream"] or ""
    if record["max_tokens"] is not None:
        attributes["gen_ai.request.max_tokens"] = record["max_tokens"]
    if record["response_id"] is not None:
        attributes["gen_ai.response.id"] = record["response_id"]
    if record["stop_reason"] is not None:
        attributes["gen_ai.response.finish_reasons"] = [record["stop_reason"]]
    usage = record["usage"]
    if usage:
        cache_read = usage.get("cache_read_input_tokens") or 0
        cache_write = usage.get("cache_creation_input_tokens") or 0
        # Input counts every prompt token, cached or not, as the conventions ask; the cache's share apart.
        attributes["gen_ai.usage.input_tokens"] = (usage.get("input_tokens") or 0) + cache_read + cache_write
        attributes["gen_ai.usage.output_tokens"] = usage.get("output_tokens") or 0
        attributes["gen_ai.usage.cache_read.input_tokens"] = cache_read
        attributes["gen_ai.usage.cache_creation.input_tokens"] = cache_write
    if record["cost_usd"] is not None:
        attributes["foundry_gateway.cost_usd"] = record["cost_usd"]
    if record["retries"]:
        attributes["foundry_gateway.retries"] = record["retries"]
    error = request_error(record)
    if error is not None:
        attributes["error.type"] = error
    return attributes


def request_error(record: dict[str, Any]) -> str | None:
    """error.type of a request the gateway failed: a 5xx, or a stream cut short."""
    if record["stream_error"]:
        return str(record["stream_error"])
    return str(record["status"]) if record["status"] >= 500 else None


def attempt_attributes(record: dict[str, Any], attempt: dict[str, Any]) -> dict[str, Any]:
    """An attempt's client span attributes. Pure."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": record["route"],
        "foundry_gateway.upstream": attempt["upstream"],
        "foundry_gateway.deployment": attempt["deployment"],
        "foundry_gateway.attempt.reason": attempt["reason"],  # first, retry (same target) or fallback
        "server.address": attempt["host"],
    }
    if attempt["status"] is not None:
        attributes["http.response.status_code"] = attempt["status"]
    if attempt["error"] is not None:
        attributes["error.type"] = attempt["error"]
    return attributes


class PresetIds(IdGenerator):
    """Hands out the ids the gateway drew (and sent on in traceparent), set before each span."""

    trace_id = 0
    span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_id


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_ERROR = Status(StatusCode.ERROR)


def caller_span(trace_id: int, span_id: int, state: str | None) -> Span:
    """The caller's span, as the parent of the gateway's."""
    trace_state = TraceState.from_header([state]) if state else None
    return NonRecordingSpan(
        SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED, trace_state=trace_state)
    )


class Replayer:
    """Makes a record's spans with the SDK: the gateway's ids (through PresetIds) and its times."""

    def __init__(self, tracer: Tracer, ids: PresetIds) -> None:
        self._tracer = tracer
        self._ids = ids

    def replay(self, record: dict[str, Any]) -> int:
        """The request's spans, ended and handed to the batch processor; returns how many."""
        tracer, ids = self._tracer, self._ids
        trace_id = int(record["trace_id"], 16)
        context = None
        if record["parent_id"] is not None:
            context = set_span_in_context(caller_span(trace_id, int(record["parent_id"], 16), record["tracestate"]))
        ids.trace_id, ids.span_id = trace_id, int(record["span_id"], 16)
        name = record["name"] or f"chat {record['route']}"
        server = tracer.start_span(
            name, context=context, kind=SpanKind.SERVER, attributes=request_attributes(record),
            start_time=record["start_ns"],
        )  # fmt: skip
        if record["first_token_ns"] is not None:
            server.add_event("gen_ai.first_token", timestamp=record["first_token_ns"])
        if request_error(record) is not None:
            server.set_status(_ERROR)
        inside = set_span_in_context(server)
        for attempt in record["attempts"]:
            ids.span_id = int(attempt["span_id"], 16)
            span = tracer.start_span(
                f"chat {record['route']}", context=inside, kind=SpanKind.CLIENT,
                attributes=attempt_attributes(record, attempt), start_time=attempt["start_ns"],
            )  # fmt: skip
            if attempt["error"] is not None:
                span.set_status(_ERROR)
            span.end(end_time=attempt["end_ns"])
        server.end(end_time=record["end_ns"])
        return 1 + len(record["attempts"])


def main(argv: list[str]) -> int:
    service, level, fmt, ready_fd = argv
    # The gateway ends this process by closing its stdin, after the last record: a signal to the
    # process group (Ctrl-C in a terminal) must not cut the last export short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Serving comes first: where this process and the event loop share a core (a container held to
    # one CPU), the loop gets it, and spans back up and are dropped (counted) instead of requests slowing.
    os.nice(NICENESS)
    configure_logging(level, fmt)
    try:
        queue = int(os.environ.get(OTEL_BSP_MAX_QUEUE_SIZE) or DEFAULT_QUEUE)
        ids = PresetIds()
        # Sampled already: the gateway decided (its traceparent to Foundry carries the decision).
        provider = sdk_provider(service, sampler=ALWAYS_ON, id_generator=ids, max_queue_size=queue)
    except Exception as exc:  # an OTEL_* value the SDK refuses: said once, and the gateway does not start
        print(f"tracing: the span export process cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    replayer = Replayer(provider.get_tracer("foundry-gateway"), ids)
    with os.fdopen(int(ready_fd), "wb") as ready:
        ready.write(b"ready\n")
    pending = 0
    for line in sys.stdin.buffer:
        try:
            records = orjson.loads(line)
        except orjson.JSONDecodeError:  # only a gateway killed mid-write leaves half a line
            continue
        for row in records:
            try:
                pending += replayer.replay(record_of(row))
            except Exception:  # a bug here loses this request's spans, not the process and the rest
                log.exception("span_replay_failed")
        # The batch processor drops spans when its queue is full; waiting for it here instead holds
        # the gateway's records in the pipe, where the gateway bounds them and counts what it drops.
        if pending >= queue // 2:
            provider.force_flush()
            pending = 0
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
