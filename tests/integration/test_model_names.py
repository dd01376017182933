"""The names clients send: route names, exact aliases and patterns; every answer carries the name
the client sent, never a deployment's; /v1/models lists what may be sent; HEAD / answers."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import Stack

HELLO: list[Any] = [{"role": "user", "content": "Hello names"}]
NAMES = ["claude-sonnet-4-5", "sonnet-latest", "claude-sonnet-4-5-20250929"]


@pytest.mark.parametrize("name", NAMES)
def test_a_native_answer_names_the_model_the_client_sent(stack: Stack, name: str) -> None:
    message = stack.anthropic().messages.create(model=name, max_tokens=50, messages=HELLO)
    assert message.model == name
    assert stack.last_request()["body"]["model"] == "sonnet-deployment", "the route's deployment served it"


@pytest.mark.parametrize("name", NAMES)
def test_a_native_stream_names_the_model_the_client_sent(stack: Stack, name: str) -> None:
    with stack.anthropic().messages.stream(model=name, max_tokens=50, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.model == name and final.content
    body = {"model": name, "max_tokens": 50, "messages": HELLO, "stream": True}
    raw = httpx.post(stack.base + "/v1/messages", json=body).text
    assert "sonnet-deployment" not in raw
    first = raw.split("\n\n")[0]
    assert first.startswith("event: message_start\ndata: ")
    assert orjson.loads(first.split("data: ", 1)[1])["message"]["model"] == name


@pytest.mark.parametrize("name", NAMES)
def test_an_openai_answer_names_the_model_the_client_sent(stack: Stack, name: str) -> None:
    completion = stack.openai().chat.completions.create(model=name, messages=HELLO)
    assert completion.model == name


def test_aliases_count_under_their_route(stack: Stack) -> None:
    sample = 'foundry_gateway_requests_total{dialect="anthropic",route="claude-sonnet-4-5",status="200"}'
    before = stack.metric(sample)
    stack.anthropic().messages.create(model="claude-sonnet-4-5-20991231", max_tokens=5, messages=HELLO)
    assert stack.metric(sample) == before + 1


def test_the_model_list_holds_what_clients_may_send(stack: Stack) -> None:
    client = stack.openai()
    ids = [m.id for m in client.models.list()]
    assert "sonnet-latest" in ids and "claude-sonnet-4-5" in ids
    assert not any("*" in i for i in ids), "patterns are not names"
    assert client.models.retrieve("claude-sonnet-4-5-20250929").id == "claude-sonnet-4-5-20250929"
    listing = httpx.get(stack.base + "/v1/models", params={"limit": 1000}).json()
    assert [m["id"] for m in listing["data"] if m["id"].startswith("claude")], "what Claude Code's discovery keeps"


def test_a_name_nothing_matches_is_a_404_listing_the_names(stack: Stack) -> None:
    response = httpx.post(stack.base + "/v1/messages", json={"model": "gpt-4o", "max_tokens": 5,
                                                               "messages": HELLO})  # fmt: skip
    assert response.status_code == 404
    assert "sonnet-latest" in response.json()["error"]["message"]


def test_head_root_answers_the_connectivity_probe(stack: Stack) -> None:
    response = httpx.head(stack.base + "/")
    assert response.status_code == 200 and response.content == b""


def test_the_session_id_goes_into_the_access_log_only(stack: Stack) -> None:
    session = "cc-session-4d21e9"
    stack.anthropic().messages.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=HELLO, extra_headers={"x-claude-code-session-id": session}
    )
    lines = [orjson.loads(line) for line in stack.gateway.log().splitlines() if session in line]
    assert lines and lines[-1]["event"] == "request" and lines[-1]["session_id"] == session
    assert session not in stack.metrics()
    assert "x-claude-code-session-id" not in stack.last_request()["headers"], "not forwarded upstream"
