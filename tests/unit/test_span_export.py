"""The request records the gateway hands its export process, and the spans that process makes of
them: attributes table-driven, and the record's way through JSON into the SDK's own spans (its
tracer, an in-memory exporter) with the gateway's ids, parent, times and events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, StatusCode

from gateway.config import parse_config
from gateway.errors import Dialect
from gateway.observability.request_context import RequestContext
from gateway.observability.request_tracing import RequestTracing
from gateway.observability.span_export import PresetIds, Replayer, attempt_attributes, record_of, request_attributes
from gateway.observability.span_link import Row, SpanLink
from gateway.runtime import Runtime
from gateway.upstream.exchange import Outcome
from gateway.upstream.targets import Target

BASE: dict[str, Any] = {
    "route": "sonnet", "status": 200, "dialect": "openai", "stream": False, "client": None, "deployment": None,
    "upstream": None, "max_tokens": None, "response_id": None, "stop_reason": None, "usage": None,
    "cost_usd": None, "retries": 0, "stream_error": None,
}  # fmt: skip
GEN_AI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "sonnet"}


def bare_context(dialect: Dialect) -> RequestContext:
    """A request's record with no config behind it: what the span export reads of one."""
    return RequestContext("req", dialect, served=SimpleNamespace(), runtime=SimpleNamespace())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # Refused before any upstream: route, status and dialect only.
        ({"status": 400}, {"http.response.status_code": 400}),
        # Answered: the deployment, the answer's id and stop reason, what the client asked for.
        (
            {"client": "team-a", "deployment": "sonnet-dep", "upstream": "eastus2", "max_tokens": 64,
             "response_id": "chatcmpl-1", "stop_reason": "end_turn", "cost_usd": 0.0125},
            {"http.response.status_code": 200, "foundry_gateway.client": "team-a",
             "gen_ai.response.model": "sonnet-dep", "foundry_gateway.upstream": "eastus2",
             "gen_ai.request.max_tokens": 64, "gen_ai.response.id": "chatcmpl-1",
             "gen_ai.response.finish_reasons": ["end_turn"], "foundry_gateway.cost_usd": 0.0125},
        ),
        # Input counts cached tokens too, as the conventions ask; the cache's share apart.
        (
            {"usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                       "cache_creation_input_tokens": 20}},
            {"http.response.status_code": 200, "gen_ai.usage.input_tokens": 130, "gen_ai.usage.output_tokens": 5,
             "gen_ai.usage.cache_read.input_tokens": 100, "gen_ai.usage.cache_creation.input_tokens": 20},
        ),
        # Null counts (an upstream that sends them) count as none.
        (
            {"usage": {"input_tokens": None, "output_tokens": 7}},
            {"http.response.status_code": 200, "gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 7,
             "gen_ai.usage.cache_read.input_tokens": 0, "gen_ai.usage.cache_creation.input_tokens": 0},
        ),
        # A gateway failure is an error; a stream cut after its 200 is one too, by its reason.
        ({"status": 502, "retries": 1},
         {"http.response.status_code": 502, "error.type": "502", "foundry_gateway.retries": 1}),
        ({"stream": True, "stream_error": "upstream_stalled"},
         {"http.response.status_code": 200, "foundry_gateway.stream": True, "error.type": "upstream_stalled"}),
        # A client's 4xx is its own, not the gateway's error.
        ({"status": 429}, {"http.response.status_code": 429}),
    ],
)  # fmt: skip
def test_request_attributes(record: dict[str, Any], expected: dict[str, Any]) -> None:
    full = {**BASE, **record}
    assert request_attributes(full) == {
        **GEN_AI, "foundry_gateway.dialect": "openai", "foundry_gateway.stream": full["stream"], **expected,
    }  # fmt: skip


ATTEMPT = {"upstream": "eastus2", "deployment": "sonnet-dep", "reason": "first", "host": "r.services.ai.azure.com"}


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        ({"status": 200, "error": None}, {"http.response.status_code": 200}),
        ({"status": 529, "error": "529", "reason": "retry"},
         {"http.response.status_code": 529, "error.type": "529", "foundry_gateway.attempt.reason": "retry"}),
        ({"status": None, "error": "timeout", "reason": "fallback"},
         {"error.type": "timeout", "foundry_gateway.attempt.reason": "fallback"}),
    ],
)  # fmt: skip
def test_attempt_attributes(attempt: dict[str, Any], expected: dict[str, Any]) -> None:
    assert attempt_attributes(BASE, {**ATTEMPT, **attempt}) == {
        **GEN_AI, "foundry_gateway.upstream": "eastus2", "foundry_gateway.deployment": "sonnet-dep",
        "foundry_gateway.attempt.reason": "first", "server.address": "r.services.ai.azure.com", **expected,
    }  # fmt: skip


class Kept(SpanLink):
    """The records as the gateway would send them, kept instead of sent."""

    def __init__(self) -> None:
        super().__init__("test", "info", "json")
        self.kept: list[Row] = []

    def send(self, record: Row) -> None:
        self.kept.append(record)


@pytest.fixture
def exported() -> Iterator[tuple[Replayer, InMemorySpanExporter]]:
    from opentelemetry.sdk.trace import TracerProvider

    ids = PresetIds()
    provider = TracerProvider(sampler=ALWAYS_ON, id_generator=ids, shutdown_on_exit=False)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield Replayer(provider.get_tracer("test"), ids), memory
    provider.shutdown()


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "key-for-tests-0000")


def target() -> Target:
    config = parse_config({
        "upstreams": [{"name": "eastus2", "base_url": "https://r.services.ai.azure.com/anthropic",
                       "auth": {"type": "api_key", "key_env": "K"}}],
        "routes": [{"model": "sonnet", "targets": [{"upstream": "eastus2", "deployment": "sonnet-dep"}]}],
    })  # fmt: skip
    return Runtime(config).routes["sonnet"].targets[0]


def through_json(link: Kept) -> dict[str, Any]:
    (row,) = orjson.loads(orjson.dumps(link.kept))
    return record_of(row)


def test_a_record_becomes_the_sdks_spans_with_the_gateways_ids_parent_and_times(exported: Any) -> None:
    replayer, memory = exported
    link = Kept()
    tracing = RequestTracing(link)
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    span = tracing.server_span(CIMultiDict({"traceparent": caller, "tracestate": "vendor=abc,other=1"}))
    assert (span.trace_id, span.parent_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert span.sampled
    first = tracing.attempt_span(span, target(), "first")
    headers: dict[str, str] = {}
    RequestTracing.inject(headers, span, first)
    assert headers == {"traceparent": f"00-{span.trace_id}-{first.span_id}-01", "tracestate": "vendor=abc,other=1"}
    first.end(529, "529")
    retry = tracing.attempt_span(span, target(), "retry")
    retry.end(200, None)
    ctx = bare_context(Dialect.OPENAI)
    ctx.route, ctx.stream = "sonnet", True
    ctx.outcome = Outcome(target=target())  # eastus2's sonnet-dep
    ctx.first_token_at = time.perf_counter()
    ctx.usage = {"input_tokens": 3, "output_tokens": 2}
    before_end = time.time_ns()
    tracing.end_request(span, ctx, 200, "")

    record = through_json(link)
    assert record["end_ns"] >= before_end
    assert replayer.replay(record) == 3
    spans: tuple[ReadableSpan, ...] = memory.get_finished_spans()
    server = next(s for s in spans if s.kind is SpanKind.SERVER)
    attempts = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert server.context is not None and server.parent is not None
    assert format(server.context.trace_id, "032x") == span.trace_id
    assert format(server.context.span_id, "016x") == span.span_id
    assert server.parent.is_remote and format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert server.context.trace_state.to_header() == "vendor=abc,other=1"
    assert server.name == "chat sonnet" and server.start_time == span.start_ns and server.end_time == record["end_ns"]
    (event,) = server.events
    assert event.name == "gen_ai.first_token" and span.start_ns <= event.timestamp <= record["end_ns"]
    assert server.attributes is not None and server.attributes["gen_ai.usage.output_tokens"] == 2
    assert [format(a.context.span_id, "016x") for a in attempts if a.context] == [first.span_id, retry.span_id]
    assert all(a.parent is not None and a.parent.span_id == server.context.span_id for a in attempts)
    assert attempts[0].status.status_code is StatusCode.ERROR and attempts[1].status.status_code is StatusCode.UNSET
    assert attempts[0].start_time == first.start_ns and attempts[0].end_time == first.end_ns


def test_without_a_caller_a_new_trace_and_a_root_span(exported: Any) -> None:
    replayer, memory = exported
    link = Kept()
    tracing = RequestTracing(link)
    span = tracing.server_span(CIMultiDict({"traceparent": "00-not-a-trace-01"}))  # malformed: ignored
    assert span.parent_id is None and span.sampled and len(span.trace_id) == 32
    tracing.end_request(span, bare_context(Dialect.ANTHROPIC), 404, "GET /v1/nothing")
    replayer.replay(through_json(link))
    (server,) = memory.get_finished_spans()
    assert server.parent is None and server.name == "GET /v1/nothing"
    assert server.context is not None and format(server.context.trace_id, "032x") == span.trace_id


@pytest.mark.parametrize(
    ("sampler", "traceparent", "sampled"),
    [
        ({}, None, True),  # the SDK's default: parentbased_always_on
        ({}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", False),  # the caller did not sample
        ({"OTEL_TRACES_SAMPLER": "always_on"}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", True),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, None, False),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, None, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
    ],
)  # fmt: skip
def test_the_sampler_is_the_one_otel_traces_sampler_names(
    monkeypatch: pytest.MonkeyPatch, sampler: dict[str, str], traceparent: str | None, sampled: bool
) -> None:
    for name, value in sampler.items():
        monkeypatch.setenv(name, value)
    link = Kept()
    tracing = RequestTracing(link)
    span = tracing.server_span(CIMultiDict({"traceparent": traceparent} if traceparent else {}))
    assert span.sampled is sampled
    attempt = tracing.attempt_span(span, target(), "first")
    headers: dict[str, str] = {}
    RequestTracing.inject(headers, span, attempt)
    # Unsampled, the trace still goes on to Foundry, marked so.
    assert headers["traceparent"].endswith("-01" if sampled else "-00")
    tracing.end_request(span, bare_context(Dialect.OPENAI), 200, "")
    assert len(link.kept) == (1 if sampled else 0)


@pytest.mark.parametrize("state", ["k=" + "v" * 8192, "k=v\udcff", "k=\x1b[31mv"])
def test_a_tracestate_no_propagator_should_read_is_dropped_quietly(
    state: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = RequestTracing(Kept())
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with caplog.at_level("DEBUG"):
        span = tracing.server_span(CIMultiDict({"traceparent": caller, "tracestate": state}))
    assert span.parent_id == "00f067aa0ba902b7" and span.tracestate is None, "the trace goes on, without it"
    assert not caplog.records, "nothing of it is echoed into the log"
