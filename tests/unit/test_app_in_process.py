"""create_app in-process, over real HTTP to the Foundry emulator's app (also in-process): the
endpoint table, the error dialect of every path, the middleware's catch-all, and the recorder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from gateway.app import ENDPOINTS, create_app, dialect_of
from gateway.config import parse_config
from gateway.errors import Dialect
from gateway.handlers import chat_completions
from gateway.upstream.exchange import NO_OUTCOME
from tests.emulators.foundry.server import EmulatorState
from tests.emulators.foundry.server import create_app as create_emulator

KEY = "in-process-key-3a7c"
HELLO: list[Any] = [{"role": "user", "content": "hi there"}]


@pytest.fixture
async def gateway(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TestClient[Any, Any], CollectorRegistry]]:
    monkeypatch.setenv("IN_PROCESS_KEY", KEY)
    emulator = TestServer(create_emulator(EmulatorState(api_keys={KEY})))
    await emulator.start_server()
    config = parse_config(
        {
            "upstreams": [
                {
                    "name": "emulator",
                    "base_url": str(emulator.make_url("/anthropic")),
                    "auth": {"type": "api_key", "key_env": "IN_PROCESS_KEY"},
                }
            ],
            "routes": [{"model": "claude", "targets": [{"upstream": "emulator", "deployment": "d"}]}],
        }
    )
    registry = CollectorRegistry()
    client = TestClient(TestServer(create_app(config, registry)))
    await client.start_server()
    try:
        yield client, registry
    finally:
        await client.close()
        await emulator.close()


DIALECT_OF = [
    ("/v1/chat/completions", Dialect.OPENAI),
    ("/v1/messages", Dialect.ANTHROPIC),
    ("/v1/messages/batches", Dialect.ANTHROPIC),
    ("/anthropic/v1/anything", Dialect.ANTHROPIC),
    ("/anthropic", Dialect.ANTHROPIC),
    ("/v1/embeddings", Dialect.OPENAI),
    ("/v1", Dialect.OPENAI),
    ("/", Dialect.OPENAI),
    ("/healthz", Dialect.OPENAI),
]


@pytest.mark.parametrize(("path", "dialect"), DIALECT_OF)
def test_the_dialect_of_a_path_no_endpoint_matches_comes_from_the_table(path: str, dialect: Dialect) -> None:
    assert dialect_of(path) is dialect


@pytest.mark.asyncio
async def test_every_endpoint_in_the_table_is_served(gateway: tuple[TestClient[Any, Any], CollectorRegistry]) -> None:
    client, _ = gateway
    for endpoint in ENDPOINTS:
        path = endpoint.path.replace("{model}", "claude").replace("{response_id}", "resp_1")
        body: dict[str, Any] | None = None
        if endpoint.method == "POST":
            body = {"model": "claude", "messages": HELLO}
            if endpoint.path.endswith("/messages"):
                body["max_tokens"] = 5
            if endpoint.path.endswith("/responses"):
                body = {"model": "claude", "input": "Hello"}
        response = await client.request(endpoint.method, path, json=body)
        # A stored response is the one thing served with a 404: none is ever stored.
        expected = 404 if "{response_id}" in endpoint.path else 200
        assert response.status == expected, (endpoint.path, await response.text())
    # The outcome every request has before it has an exchange is shared: nothing may write it.
    assert (NO_OUTCOME.target, NO_OUTCOME.status, NO_OUTCOME.retries) == (None, None, 0)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "path", "status", "dialect"),
    [
        ("GET", "/v1/nothing", 404, Dialect.OPENAI),
        ("POST", "/anthropic/v1/complete", 404, Dialect.ANTHROPIC),
        ("GET", "/v1/messages", 405, Dialect.ANTHROPIC),
        ("DELETE", "/v1/chat/completions", 405, Dialect.OPENAI),
    ],
)
async def test_unknown_paths_and_methods_answer_in_the_paths_dialect(
    gateway: tuple[TestClient[Any, Any], CollectorRegistry], method: str, path: str, status: int, dialect: Dialect
) -> None:
    client, _ = gateway
    response = await client.request(method, path)
    assert response.status == status
    body = await response.json()
    if dialect is Dialect.ANTHROPIC:
        assert body["type"] == "error" and "request_id" in body
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
    if status == 404:
        assert all(f"{e.method} {e.path}" in body["error"]["message"] for e in ENDPOINTS)


@pytest.mark.asyncio
async def test_a_bug_in_a_handler_is_a_500_in_dialect_and_still_recorded(
    gateway: tuple[TestClient[Any, Any], CollectorRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, registry = gateway

    def planted(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(chat_completions, "chat_to_messages", planted)
    response = await client.post("/v1/chat/completions", json={"model": "claude", "messages": HELLO})
    assert response.status == 500
    body = await response.json()
    assert body["error"]["message"].startswith("Internal gateway error (request id ")
    assert response.headers["x-request-id"] in body["error"]["message"]
    sample = registry.get_sample_value(
        "foundry_gateway_requests_total", {"route": "claude", "dialect": "openai", "status": "500"}
    )
    assert sample == 1


@pytest.mark.asyncio
async def test_the_recorder_counts_each_request_once_with_its_usage(
    gateway: tuple[TestClient[Any, Any], CollectorRegistry],
) -> None:
    client, registry = gateway
    labels = {"route": "claude", "dialect": "anthropic", "status": "200"}
    before = registry.get_sample_value("foundry_gateway_requests_total", labels) or 0
    tokens_before = registry.get_sample_value("foundry_gateway_tokens_total", {"route": "claude", "type": "output"})
    response = await client.post("/v1/messages", json={"model": "claude", "max_tokens": 50, "messages": HELLO})
    answer = await response.json()
    assert registry.get_sample_value("foundry_gateway_requests_total", labels) == before + 1
    tokens = registry.get_sample_value("foundry_gateway_tokens_total", {"route": "claude", "type": "output"})
    assert tokens == (tokens_before or 0) + answer["usage"]["output_tokens"]
