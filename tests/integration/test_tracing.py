"""OpenTelemetry traces, exported by the SDK's OTLP/HTTP exporter to a receiver that decodes the
protobuf it really sends: the span tree, the GenAI attributes, the caller's trace context carried
through to Foundry, retries as sibling attempts, and nothing secret in any attribute."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import (
    ROOT,
    access_lines,
    emulator_control,
    start_entra_emulator,
    start_foundry_emulator,
    start_gateway,
    start_sidecar,
)
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


def chat(base: str, stream: bool = False, traceparent: str | None = TRACEPARENT) -> httpx.Response:
    headers = {"authorization": "Bearer caller-key-not-for-spans"}
    if traceparent:
        headers["traceparent"] = traceparent
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
    assert chat(base).status_code == 200
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
    sent = emulator_control(foundry, "requests")[-1]["headers"]["traceparent"]
    assert sent == f"00-{CALLER_TRACE}-{attempt.span_id}-01"
    # The access log line names the trace.
    assert access_lines(gateway)[-1]["trace_id"] == CALLER_TRACE


def test_a_stream_has_its_first_token_event_and_usage(traced: Any) -> None:
    receiver, base, _, _ = traced
    trace = "5bf92f3577b34da6a3ce929d0e0e4737"
    response = chat(base, stream=True, traceparent=f"00-{trace}-{CALLER_SPAN}-01")
    assert response.status_code == 200 and "[DONE]" in response.text
    server, _ = tree(receiver, trace)
    assert "gen_ai.first_token" in server.events
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
