"""Stored responses (responses.store_ttl_seconds) in a real Redis: previous_response_id,
item_reference, GET and DELETE, each client seeing only its own, and the time to live."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import orjson
import pytest
import redis
from openai import OpenAI

from tests.emulators.foundry.validate import thinking_signature
from tests.harness import ROOT, Process, emulator_control, start_foundry_emulator, start_gateway, start_redis

KEY = "emu-key-store-1f2e3d"
TTL = 600
KEYS = {"alice": "key-alice-7a6b5c", "bob": "key-bob-4d3e2f"}
MODEL = "claude-sonnet-4-5"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
LOW: Any = {"effort": "low"}


@dataclass
class Stored:
    base: str
    foundry: str
    redis_port: int


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    work = tmp_path_factory.mktemp("store")
    emulator, foundry = start_foundry_emulator("--api-key", KEY, log_dir=work)
    server, port = start_redis(work)
    config = {
        "upstreams": [{"name": "foundry", "base_url": foundry, "auth": {"type": "api_key", "key_env": "K"}}],
        "routes": [{"model": MODEL, "targets": [{"upstream": "foundry", "deployment": "d"}]}],
        "inbound": {"api_keys": [{"client": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
                                 for name, key in KEYS.items()]},
        "state": {"redis": {"url": f"redis://127.0.0.1:{port}/0"}},
        "responses": {"store_ttl_seconds": TTL},
    }  # fmt: skip
    gateway, base, _ = start_gateway(config, env={"K": KEY}, log_dir=work)
    procs: list[Process] = [gateway, server, emulator]
    try:
        yield Stored(base, foundry, port)
    finally:
        for proc in procs:
            proc.stop()


def client(stored: Stored, who: str = "alice") -> OpenAI:
    return OpenAI(base_url=stored.base + "/v1", api_key=KEYS[who], max_retries=0, timeout=20)


def test_a_response_is_kept_for_its_ttl_then_deleted_on_request(stored: Stored) -> None:
    created = client(stored).responses.create(model=MODEL, input="Remember this")
    fetched = client(stored).responses.retrieve(created.id)
    assert fetched.output_text == "You said: Remember this" and fetched.id == created.id
    ttl = redis.Redis(port=stored.redis_port).ttl(f"fgw:response:{created.id}")
    assert 0 < ttl <= TTL
    client(stored).responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client(stored).responses.retrieve(created.id)


def test_another_client_is_told_it_does_not_exist(stored: Stored) -> None:
    created = client(stored, "alice").responses.create(model=MODEL, input="Mine")
    with pytest.raises(openai.NotFoundError, match="another client's"):
        client(stored, "bob").responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client(stored, "bob").responses.create(model=MODEL, input="and?", previous_response_id=created.id)


def test_store_false_keeps_nothing(stored: Stored) -> None:
    created = client(stored).responses.create(model=MODEL, input="Forget this", store=False)
    with pytest.raises(openai.NotFoundError):
        client(stored).responses.retrieve(created.id)


@pytest.mark.parametrize("stream", [False, True])
def test_previous_response_id_continues_a_tool_turn_with_its_thinking(stored: Stored, stream: bool) -> None:
    api = client(stored)
    first = api.responses.create(model=MODEL, input="Use get_weather for Paris", tools=[WEATHER], reasoning=LOW)
    call = next(item for item in first.output if item.type == "function_call")
    follow: Any = {"model": MODEL, "previous_response_id": first.id, "tools": [WEATHER], "reasoning": LOW,
                   "input": [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]}  # fmt: skip
    if stream:
        with api.responses.stream(**follow) as events:
            answer = events.get_final_response()
        # Stored before the client heard it end: the next turn may chain to it at once.
        assert api.responses.retrieve(answer.id).output_text == "Tool results: sunny"
    else:
        answer = api.responses.create(**follow)
    assert answer.output_text == "Tool results: sunny"
    sent = emulator_control(stored.foundry, "requests")[-1]["body"]
    assert "thinking" in sent, "thinking stayed on: the stored reasoning item opened"
    assistant = sent["messages"][1]["content"]
    assert assistant[0]["type"] == "thinking" and assistant[0]["signature"] == thinking_signature(
        assistant[0]["thinking"]
    )


def test_the_ai_sdks_default_responses_provider_runs_its_tool_loop(stored: Stored) -> None:
    """store: true, its default, sends earlier items as item_reference: served from the store."""
    js = ROOT / "tests" / "clients" / "js"
    done = subprocess.run(["node", "clients.mjs", "ai-openai-tools"], cwd=js, capture_output=True, text=True,
                          env={**os.environ, "BASE_URL": stored.base, "API_KEY": KEYS["alice"]}, timeout=60,
                          check=True)  # fmt: skip
    got = orjson.loads(done.stdout.strip().splitlines()[-1])["ok"]
    assert got["calls"] == [{"name": "get_weather", "args": {"city": "example"}}]
    assert got["text"] == "Tool results: sunny in example"
    items = emulator_control(stored.foundry, "requests")[-1]["body"]["messages"]
    assert [m["role"] for m in items] == ["user", "assistant", "user"], "the referenced items were filled in"
