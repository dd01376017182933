"""Models, health, readiness, metrics, request ids, and the promise that no secret leaks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from devtools.harness import start_gateway
from tests.integration.conftest import API_KEY, BEARER, CLIENT_KEY, Stack, api_key_upstream, route


def test_models_list_the_routes_then_their_exact_aliases(stack: Stack) -> None:
    client = stack.openai()
    ids = [m.id for m in client.models.list()]
    assert ids == [
        "claude-sonnet-4-5",
        "claude-entra",
        "claude-dead",
        "claude-slow",
        "claude-expired",
        "claude-no-default",
        "claude-cached",
        "claude-drop-betas",
        "claude-only-betas",
        "claude-structured",
        "claude-lean",
        "claude-learner",
        "claude-overclaims",
        "claude-no-web-search",
        "claude-opus-4-1",
        "sonnet-latest",
        "claude-sonnet-4-6",
        "claude-opus-4-6",
    ]
    assert client.models.retrieve("claude-entra").id == "claude-entra"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def test_health_and_readiness(stack: Stack) -> None:
    assert httpx.get(stack.gateway.admin + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(stack.gateway.admin + "/readyz")
    assert ready.status_code == 503, "a route whose only token is expired makes the pod unready"
    detail = ready.json()
    assert detail["routes"]["claude-expired"] == "no target with usable credentials"
    assert detail["routes"]["claude-sonnet-4-5"] == "ok"
    assert "expired at" in detail["upstreams"]["expired"]


def test_ready_gateway(stack: Stack, tmp_path: Path) -> None:
    config = {"upstreams": [api_key_upstream("f", stack.foundry)], "routes": [route("m", "f", "d")]}
    gateway, _, _ = start_gateway(config, env={"FOUNDRY_TEST_KEY": API_KEY}, log_dir=tmp_path)
    try:
        assert httpx.get(gateway.admin + "/readyz").json()["status"] == "ready"
    finally:
        gateway.stop()
    unready, _, _ = start_gateway(config, env={"FOUNDRY_TEST_KEY": ""}, log_dir=tmp_path)
    try:
        response = httpx.get(unready.admin + "/readyz")
        assert response.status_code == 503 and "FOUNDRY_TEST_KEY" in response.json()["upstreams"]["f"]
    finally:
        unready.stop()


def test_request_id_is_taken_or_made_and_forwarded(stack: Stack) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(stack.base + "/v1/chat/completions", json=body, headers={"x-request-id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert stack.last_request()["headers"]["x-request-id"] == "trace-123"
    assert response.headers["request-id"].startswith("req_"), "Foundry's own id is relayed for support tickets"
    made = httpx.post(stack.base + "/v1/chat/completions", json=body).headers["x-request-id"]
    assert len(made) == 32


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 9, "stream": True,
                          "messages": [{"role": "user", "content": "x"}]}, 200),
        ("/v1/chat/completions", {"model": "claude-sonnet-4-5", "stream": True,
                                  "messages": [{"role": "user", "content": "x"}]}, 200),
        ("/v1/chat/completions", {"model": "no-such-model", "messages": []}, 404),
        ("/v1/no-such-endpoint", {}, 404),
    ],
)  # fmt: skip
def test_every_answer_carries_the_request_id(stack: Stack, path: str, body: dict[str, Any], status: int) -> None:
    with httpx.stream("POST", stack.base + path, json=body, headers={"x-request-id": "trace-456"}) as response:
        assert response.status_code == status
        assert response.headers["x-request-id"] == "trace-456"
        response.read()


def test_metrics_count_requests_tokens_and_token_expiry(stack: Stack) -> None:
    client = stack.openai()
    client.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "count me"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="not-a-route-" + str(time.time()), messages=[{"role": "user", "content": "x"}]
        )
    text = stack.metrics()
    assert 'foundry_gateway_requests_total{dialect="openai",route="claude-sonnet-4-5",status="200"}' in text
    assert 'foundry_gateway_requests_total{dialect="openai",route="other",status="404"}' in text
    assert "not-a-route" not in text, "unknown model names never become label values"
    assert 'foundry_gateway_tokens_total{route="claude-sonnet-4-5",type="input"}' in text
    assert (
        'foundry_gateway_upstream_requests_total{deployment="sonnet-deployment",status="200",upstream="foundry"}'
        in text
    )
    assert 'foundry_gateway_upstream_token_expiry_timestamp_seconds{upstream="entra"}' in text
    assert "foundry_gateway_request_duration_seconds_bucket" in text
    assert 'foundry_gateway_build_info{version="0.1.0"}' in text


def test_no_secret_in_logs_metrics_or_errors(stack: Stack) -> None:
    """Run flows that succeed and fail, then search everything a person could see for the secrets used."""
    client = stack.openai()
    bodies: list[str] = []
    client.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    list(
        client.chat.completions.create(model="claude-entra", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    for model in ("claude-dead", "claude-expired", "nope"):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        bodies.append(info.value.response.text)
    stack.fault(status=401, azure_shape=True)
    with pytest.raises(openai.AuthenticationError) as auth:
        client.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    bodies.append(auth.value.response.text)
    bodies.append(httpx.get(stack.gateway.admin + "/readyz").text)
    seen = "\n".join([stack.gateway.log(), stack.metrics(), *bodies])
    assert "request" in stack.gateway.log(), "the access log was written"
    for secret in (API_KEY, BEARER, CLIENT_KEY):
        assert secret not in seen, f"a secret leaked: {secret[:6]}…"
