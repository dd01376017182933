"""OpenTelemetry traces, exported by the SDK's OTLP/HTTP exporter to a receiver that decodes the
protobuf it really sends: the span tree, the GenAI attributes, the caller's trace context carried
through to Foundry, retries as sibling attempts, and nothing secret in any attribute. And the
gateway's span export process: nothing lost in a burst or at exit, a crash or a stall costs
spans (counted), never requests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.harness import (
    ROOT,
    access_lines,
    child_pids,
    emulator_control,
    metric,
    start_entra_emulator,
    start_foundry_emulator,
    start_gateway,
    start_sidecar,
)
from gateway.observability.request_tracing import REQUEST_FIELDS
from gateway.observability.span_export import NICENESS
from gateway.observability.span_link import SpanLink
from tests.otlp_receiver import CLIENT, INTERNAL, SERVER, Receiver, Span

KEY = "emu-key-tracing-4c3b2a"
PROMPT = "the-secret-prompt-text-5e6f7a"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def tracing_env(receiver: Receiver) -> dict[str, str]:
    return {
        "K": KEY,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms, so tests need not wait
    }


def config(foundry: str, **retries: Any) -> dict[str, Any]:
    return {
        "upstreams": [{"name": "foundry", "base_url": foundry, "auth": {"type": "api_key", "key_env": "K"}}],
        "routes": [{"model": "claude-sonnet-4-5", "targets": [{"upstream": "foundry", "deployment": "sonnet-dep"}]}],
        "retries": {"max_attempts": 2, "retry_after_cooldown": False, **retries},
    }


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, str, str, Any]]:
    work = tmp_path_factory.mktemp("tracing")
    receiver = Receiver()
    emulator, foundry = start_foundry_emulator("--api-key", KEY, log_dir=work)
    gateway, base, _ = start_gateway(config(foundry), env=tracing_env(receiver), log_dir=work)
    try:
        yield receiver, base, foundry, gateway
    finally:
        gateway.stop()
        emulator.stop()
        receiver.close()


def chat(
    base: str, stream: bool = False, traceparent: str | None = TRACEPARENT, tracestate: str | None = None
) -> httpx.Response:
    headers = {"authorization": "Bearer caller-key-not-for-spans"}
    if traceparent:
        headers["traceparent"] = traceparent
    if tracestate:
        headers["tracestate"] = tracestate
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": PROMPT}], "stream": stream,
            "max_tokens": 64}  # fmt: skip
    return httpx.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def tree(receiver: Receiver, trace_id: str, attempts: int = 1) -> tuple[Span, list[Span]]:
    server = receiver.wait_for(1, trace_id=trace_id, kind=SERVER)
    clients = receiver.wait_for(attempts, trace_id=trace_id, kind=CLIENT)
    assert len(server) == 1, receiver.spans
    return server[0], clients


def test_a_request_is_a_server_span_with_an_attempt_under_the_callers_trace(traced: Any) -> None:
    receiver, base, foundry, gateway = traced
    emulator_control(foundry, "reset", {})
    assert chat(base, tracestate="vendor=opaque-1").status_code == 200
    server, (attempt,) = tree(receiver, CALLER_TRACE)
    assert server.parent_id == CALLER_SPAN, "a child of the caller's span"
    assert attempt.parent_id == server.span_id
    assert server.name == "chat claude-sonnet-4-5" and server.service == "foundry-gateway"
    a = server.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.request.model"] == "claude-sonnet-4-5" and a["gen_ai.response.model"] == "sonnet-dep"
    assert a["gen_ai.request.max_tokens"] == 64 and a["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.id"].startswith("msg_") and a["http.response.status_code"] == 200
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["foundry_gateway.attempt.reason"] == "first"
    assert attempt.attributes["http.response.status_code"] == 200
    # Foundry got the attempt's trace context: its spans join the caller's trace.
    sent = emulator_control(foundry, "requests")[-1]["headers"]
    assert sent["traceparent"] == f"00-{CALLER_TRACE}-{attempt.span_id}-01"
    assert sent["tracestate"] == server.trace_state == "vendor=opaque-1"
    # The spans' times are the request's: the attempt inside the request.
    assert server.start_ns <= attempt.start_ns < attempt.end_ns <= server.end_ns
    # The access log line names the trace.
    assert access_lines(gateway)[-1]["trace_id"] == CALLER_TRACE


def test_a_stream_has_its_first_token_event_and_usage(traced: Any) -> None:
    receiver, base, _, _ = traced
    trace = "5bf92f3577b34da6a3ce929d0e0e4737"
    response = chat(base, stream=True, traceparent=f"00-{trace}-{CALLER_SPAN}-01")
    assert response.status_code == 200 and "[DONE]" in response.text
    server, _ = tree(receiver, trace)
    assert server.start_ns < server.event_times["gen_ai.first_token"] < server.end_ns
    assert server.attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert server.attributes["gen_ai.usage.output_tokens"] > 0 and server.attributes["foundry_gateway.stream"]


def test_a_retried_request_shows_two_attempts(traced: Any) -> None:
    receiver, base, foundry, _ = traced
    trace = "6bf92f3577b34da6a3ce929d0e0e4738"
    emulator_control(foundry, "faults", [{"status": 529}])
    assert chat(base, traceparent=f"00-{trace}-{CALLER_SPAN}-01").status_code == 200
    server, attempts = tree(receiver, trace, attempts=2)
    assert {a.parent_id for a in attempts} == {server.span_id}, "siblings under the request"
    by_reason = {a.attributes["foundry_gateway.attempt.reason"]: a for a in attempts}
    assert by_reason["first"].attributes["http.response.status_code"] == 529
    assert by_reason["first"].attributes["error.type"] == "529" and by_reason["first"].status_code == 2
    assert by_reason["retry"].attributes["http.response.status_code"] == 200
    assert server.attributes["foundry_gateway.retries"] == 1


def test_without_a_callers_trace_a_new_one_starts(traced: Any) -> None:
    receiver, base, _, gateway = traced
    assert chat(base, traceparent=None).status_code == 200
    trace_id = access_lines(gateway)[-1]["trace_id"]
    server, _ = tree(receiver, trace_id)
    assert server.parent_id == ""


def test_no_prompt_text_or_credential_in_any_span(traced: Any) -> None:
    receiver, base, _, _ = traced
    chat(base)
    chat(base, stream=True)
    receiver.wait_for(4)
    text = repr([(s.name, s.attributes, s.events) for s in receiver.spans])
    for secret in (PROMPT, KEY, "caller-key-not-for-spans", "You said"):
        assert secret not in text


def test_exemplars_link_histograms_to_traces(traced: Any) -> None:
    _, base, _, gateway = traced
    chat(base)
    metrics = httpx.get(gateway.admin + "/metrics", headers={"accept": "application/openmetrics-text"}).text
    line = next(
        line for line in metrics.splitlines()
        if line.startswith("foundry_gateway_request_duration_seconds_bucket") and "trace_id" in line
    )  # fmt: skip
    trace_id = line.split('# {trace_id="')[1].split('"')[0]
    assert len(trace_id) == 32 and trace_id in {line["trace_id"] for line in access_lines(gateway)}


def test_an_endpoint_alone_does_not_turn_tracing_on(tmp_path: Path) -> None:
    receiver = Receiver()
    emulator, foundry = start_foundry_emulator("--api-key", KEY, log_dir=tmp_path)
    env = {"K": KEY, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    gateway, base, _ = start_gateway(config(foundry), env=env, log_dir=tmp_path)
    try:
        assert chat(base).status_code == 200
        assert receiver.wait_for(1, timeout=1.0) == []
        assert '"enabled":false' in gateway.log() and "trace_id" not in access_lines(gateway)[-1]
    finally:
        gateway.stop()
        emulator.stop()
        receiver.close()


def test_an_exporter_it_cannot_serve_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    upstream = "{name: f, base_url: 'http://127.0.0.1:9/anthropic', auth: {type: api_key, key_env: K}}"
    path.write_text(f"upstreams: [{upstream}]\nroutes: [{{model: m, targets: [{{upstream: f, deployment: d}}]}}]\n")
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "zipkin"}
    done = subprocess.run([sys.executable, "-m", "gateway", "--config", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 2 and "only otlp" in done.stderr


def test_the_sidecar_traces_its_token_refreshes(tmp_path: Path) -> None:
    receiver = Receiver()
    entra = start_entra_emulator(tmp_path, clients={"app": "sidecar-secret-3d2c1b"})
    env = {
        "AZURE_TENANT_ID": entra.tenant,
        "AZURE_CLIENT_ID": "app",
        "AZURE_CLIENT_SECRET": "sidecar-secret-3d2c1b",
        "AZURE_AUTHORITY_HOST": entra.authority,
        "SSL_CERT_FILE": str(entra.ca_file),
        **{k: v for k, v in tracing_env(receiver).items() if k.startswith("OTEL_")},
    }
    sidecar, _ = start_sidecar(["--output", str(tmp_path / "token.json")], env, tmp_path)
    try:
        (refresh,) = receiver.wait_for(1, name="token_sidecar refresh")
        assert refresh.service == "foundry-gateway-token-sidecar" and refresh.kind == INTERNAL
        assert refresh.attributes["token_sidecar.token"] and refresh.attributes["token_sidecar.expires_in_s"] > 0
        assert "sidecar-secret-3d2c1b" not in repr(refresh.attributes)
    finally:
        sidecar.stop()
        entra.process.stop()
        receiver.close()


def test_a_callers_unsampled_trace_goes_on_to_foundry_without_spans(traced: Any) -> None:
    receiver, base, foundry, gateway = traced
    trace = "7bf92f3577b34da6a3ce929d0e0e4739"
    assert chat(base, traceparent=f"00-{trace}-{CALLER_SPAN}-00").status_code == 200
    sent = emulator_control(foundry, "requests")[-1]["headers"]["traceparent"]
    assert sent.startswith(f"00-{trace}-") and sent.endswith("-00") and CALLER_SPAN not in sent
    assert access_lines(gateway)[-1]["trace_id"] == trace, "the log still names the caller's trace"
    chat(base, traceparent=None)  # a sampled request after it: once its spans are in, the other's would be
    receiver.wait_for(1, trace_id=access_lines(gateway)[-1]["trace_id"], kind=SERVER)
    assert receiver.wait_for(1, timeout=0.2, trace_id=trace) == []


def test_a_burst_loses_no_span(traced: Any) -> None:
    receiver, base, _, gateway = traced
    trace = "8bf92f3577b34da6a3ce929d0e0e4740"

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=50)) as client:
            body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
            replies = await asyncio.gather(*(
                client.post(base + "/v1/chat/completions", json=body,
                            headers={"authorization": "Bearer k", "traceparent": f"00-{trace}-{i + 1:016x}-01"})
                for i in range(300)
            ))  # fmt: skip
            return [r.status_code for r in replies]

    assert asyncio.run(burst()) == [200] * 300
    assert len(receiver.wait_for(300, trace_id=trace, kind=SERVER)) == 300
    assert len(receiver.wait_for(300, trace_id=trace, kind=CLIENT)) == 300
    assert metric(gateway.admin, 'foundry_gateway_spans_dropped_total{reason="backlog"}') == 0


def test_the_last_spans_are_exported_at_exit(tmp_path: Path) -> None:
    receiver = Receiver()
    emulator, foundry = start_foundry_emulator("--api-key", KEY, log_dir=tmp_path)
    # Batches wait a minute: only the exit sends this one.
    env = {**tracing_env(receiver), "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    gateway, base, _ = start_gateway(config(foundry), env=env, log_dir=tmp_path)
    try:
        trace = "9bf92f3577b34da6a3ce929d0e0e4741"
        assert chat(base, traceparent=f"00-{trace}-{CALLER_SPAN}-01").status_code == 200
        time.sleep(0.3)
        assert receiver.spans == []
        assert gateway.stop() == 0
        assert len(receiver.wait_for(2, timeout=1, trace_id=trace)) == 2
    finally:
        gateway.stop()
        emulator.stop()
        receiver.close()


def test_a_dead_export_process_costs_spans_not_requests_and_comes_back(tmp_path: Path) -> None:
    receiver = Receiver()
    emulator, foundry = start_foundry_emulator("--api-key", KEY, log_dir=tmp_path)
    gateway, base, _ = start_gateway(config(foundry), env=tracing_env(receiver), log_dir=tmp_path)
    try:
        (exporter,) = child_pids(gateway.popen.pid)
        # Serving comes first: the export process runs at a lower priority than the event loop.
        niceness = os.getpriority(os.PRIO_PROCESS, exporter) - os.getpriority(os.PRIO_PROCESS, gateway.popen.pid)
        assert niceness == NICENESS
        os.kill(exporter, signal.SIGKILL)
        gateway.wait_for_line("span_exporter_exited")
        lost = "abf92f3577b34da6a3ce929d0e0e4742"
        assert chat(base, traceparent=f"00-{lost}-{CALLER_SPAN}-01").status_code == 200
        gateway.wait_for_line("span_exporter_restarted")
        assert metric(gateway.admin, 'foundry_gateway_spans_dropped_total{reason="exporter_down"}') == 2
        kept = "bbf92f3577b34da6a3ce929d0e0e4743"
        assert chat(base, traceparent=f"00-{kept}-{CALLER_SPAN}-01").status_code == 200
        assert len(receiver.wait_for(2, trace_id=kept)) == 2
        assert receiver.wait_for(1, timeout=0.2, trace_id=lost) == []
        assert child_pids(gateway.popen.pid) not in ([], [exporter])
    finally:
        gateway.stop()
        emulator.stop()
        receiver.close()


def test_a_stalled_export_process_never_holds_up_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """The link itself, with a real export process that stops reading: sends return at once, what
    does not fit the backlog is dropped and counted, and what was sent before is exported after."""
    receiver = Receiver()
    for name, value in tracing_env(receiver).items():
        monkeypatch.setenv(name, value)
    dropped: list[tuple[int, str]] = []

    def record(n: int) -> tuple[Any, ...]:
        fields = {"trace_id": f"{n:032x}", "span_id": f"{n:016x}", "name": "", "start_ns": time.time_ns(),
                  "end_ns": time.time_ns(), "status": 200, "route": "r", "dialect": "openai", "stream": False,
                  "retries": 0, "attempts": []}  # fmt: skip
        return tuple(fields.get(name) for name in REQUEST_FIELDS)

    sent_while_stopped: list[int] = []

    async def run() -> None:
        link = SpanLink("foundry-gateway", "info", "json", backlog_bytes=64 << 10)
        await link.start(lambda spans, reason: dropped.append((spans, reason)))
        assert link.pid is not None
        link.send(record(1))
        link.flush()
        await asyncio.sleep(0.5)
        os.kill(link.pid, signal.SIGSTOP)
        try:
            for n in range(2, 3000):
                link.send(record(n))
                link.flush()
                sent_while_stopped.append(n)
                await asyncio.sleep(0)
        finally:
            os.kill(link.pid, signal.SIGCONT)
        await link.close()

    # With the process stopped, its pipe fills after 64 KB: a send that waited for it would never
    # return, and with it the loop (so the check is that the sends end at all, not how fast).
    sender = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    try:
        sender.start()
        sender.join(timeout=120)
        assert not sender.is_alive(), f"a send waited for the stopped process (after {len(sent_while_stopped)} sends)"
        assert len(sent_while_stopped) == 2998, "every send returned while the process was stopped"
        assert dropped and {reason for _, reason in dropped} == {"backlog"}
        exported = len(receiver.wait_for(3000 - sum(n for n, _ in dropped), timeout=15))
        assert exported + sum(n for n, _ in dropped) == 2999, "every span exported or counted as dropped"
        assert receiver.wait_for(1, trace_id=f"{1:032x}")
    finally:
        receiver.close()


def test_an_otel_setting_the_sdk_refuses_stops_the_gateway_at_start(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    upstream = "{name: f, base_url: 'http://127.0.0.1:9/anthropic', auth: {type: api_key, key_env: K}}"
    path.write_text(f"upstreams: [{upstream}]\nroutes: [{{model: m, targets: [{{upstream: f, deployment: d}}]}}]\n")
    env = {**os.environ, "K": KEY, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_MAX_QUEUE_SIZE": "lots"}
    done = subprocess.run([sys.executable, "-m", "gateway", "--config", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2, done
    assert "span export process cannot start" in done.stderr and "lots" in done.stderr


# 8,000: aiohttp's parser refuses a header line over 8,190 bytes, and control characters, itself.
@pytest.mark.parametrize("tracestate", [b"vendor=" + b"v" * 8000, b"vendor=\xff\xfe\xc3"])
def test_a_tracestate_no_one_should_read_leaves_the_log_as_it_was(traced: Any, tracestate: bytes) -> None:
    """Dropped quietly: no 8 KB echo per request, no traceback outside the JSON lines."""
    _, base, _, gateway = traced
    host, port = base.removeprefix("http://").split(":")
    body = b'{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}'
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"traceparent: " + TRACEPARENT.encode() + b"\r\ntracestate: " + tracestate + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")  # fmt: skip
    logged = len(gateway.log())
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    new = gateway.log()[logged:]
    assert all(line.startswith("{") and len(line) < 2000 for line in new.splitlines() if line), new[:3000]
