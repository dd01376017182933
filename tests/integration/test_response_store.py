"""Stored responses (responses.store_ttl_seconds) in a real Redis: previous_response_id,
item_reference, GET and DELETE, each client seeing only its own, and the time to live."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis
from openai import OpenAI

from devtools.harness import ROOT, Process, emulator_control, start_foundry_emulator, start_gateway, start_redis
from tests.emulators.foundry.validate import thinking_signature

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


def store_stack(work: Path, server: dict[str, Any], responses: dict[str, Any]) -> Iterator[Stored]:
    """An emulator, a Redis and a gateway with stored responses, for alice and bob."""
    emulator, foundry = start_foundry_emulator("--api-key", KEY, log_dir=work)
    redis_server, port = start_redis(work)
    config = {
        "server": server,
        "upstreams": [{"name": "foundry", "base_url": foundry, "auth": {"type": "api_key", "key_env": "K"}}],
        "routes": [{"model": MODEL, "targets": [{"upstream": "foundry", "deployment": "d"}]}],
        "inbound": {"api_keys": [{"client": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
                                 for name, key in KEYS.items()]},
        "state": {"redis": {"url": f"redis://127.0.0.1:{port}/0"}},
        "responses": {"store_ttl_seconds": TTL, **responses},
    }  # fmt: skip
    gateway, base, _ = start_gateway(config, env={"K": KEY}, log_dir=work)
    procs: list[Process] = [gateway, redis_server, emulator]
    try:
        yield Stored(base, foundry, port)
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    # The large-record test's 12 MB echo is over the default bound on an answer.
    yield from store_stack(tmp_path_factory.mktemp("store"), {"max_upstream_body_bytes": 32 << 20}, {})


def client(stored: Stored, who: str = "alice") -> OpenAI:
    return OpenAI(base_url=stored.base + "/v1", api_key=KEYS[who], max_retries=0, timeout=20)


def test_a_response_is_kept_for_its_ttl_then_deleted_on_request(stored: Stored) -> None:
    created = client(stored).responses.create(model=MODEL, input="Remember this")
    fetched = client(stored).responses.retrieve(created.id)
    assert fetched.output_text == "You said: Remember this" and fetched.id == created.id
    ttl = redis.Redis(port=stored.redis_port).ttl(f"fgw:{{alice}}:response:{created.id}")
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


def used_memory(stored: Stored) -> int:
    return int(redis.Redis(port=stored.redis_port).info("memory")["used_memory"])


def test_forking_a_stored_conversation_stores_only_what_is_new(stored: Stored) -> None:
    """Forks and chains name what is stored; they do not copy it (one 2 MB response forked 20 times)."""
    api = client(stored)
    big = api.responses.create(model=MODEL, input="x" * (2 << 20))  # its input and its echo: 4 MB stored
    before = used_memory(stored)
    for n in range(20):
        fork = api.responses.create(model=MODEL, input=f"fork {n}", previous_response_id=big.id)
        assert fork.output_text == f"You said: fork {n}"
    grown = used_memory(stored) - before
    assert grown < 512 * 1024, f"20 forks grew Redis by {grown} bytes: the conversation was copied"
    # Each fork still continues the whole conversation.
    sent = emulator_control(stored.foundry, "requests")[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"] and len(str(sent[0]["content"])) > 2 << 20


def test_an_upstream_that_repeats_its_message_id_overwrites_nothing(stored: Stored) -> None:
    answer = {"id": "msg_always_the_same", "type": "message", "role": "assistant", "model": "d",
              "content": [{"type": "text", "text": "same id"}], "stop_reason": "end_turn", "stop_sequence": None,
              "usage": {"input_tokens": 3, "output_tokens": 2}}  # fmt: skip
    emulator_control(stored.foundry, "faults", [{"body": orjson.dumps(answer).decode(), "count": 2}])
    first = client(stored).responses.create(model=MODEL, input="one")
    second = client(stored).responses.create(model=MODEL, input="two")
    assert first.id != second.id and "always_the_same" not in first.id
    assert client(stored).responses.retrieve(first.id).id == first.id
    assert client(stored).responses.retrieve(second.id).id == second.id


def test_another_clients_record_is_not_even_read(stored: Stored) -> None:
    """Keys live in their client's namespace: bob's lookup of alice's 2 MB response reads nothing of it."""
    created = client(stored, "alice").responses.create(model=MODEL, input="y" * (1 << 20))
    sent = redis.Redis(port=stored.redis_port).info("stats")["total_net_output_bytes"]
    with pytest.raises(openai.NotFoundError):
        client(stored, "bob").responses.retrieve(created.id)
    read = redis.Redis(port=stored.redis_port).info("stats")["total_net_output_bytes"] - sent
    assert read < 16 * 1024, f"Redis sent {read} bytes to answer a lookup of another client's response"


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "item_reference"}, "input[0].id"),
        ({"role": "user", "content": [{"type": "input_text", "text": "deep", "x": None}]}, "input[0]"),
    ],
)
def test_input_that_cannot_be_stored_is_a_400_before_foundry_is_called(
    stored: Stored, item: dict[str, Any], param: str
) -> None:
    if "content" in item:  # an extra key nested 300 deep inside an input part: orjson writes 254 levels
        nested: Any = "bottom"
        for _ in range(300):
            nested = {"n": nested}
        item["content"][0]["x"] = nested
    before = len(emulator_control(stored.foundry, "requests"))
    with pytest.raises(openai.BadRequestError) as raised:
        client(stored).responses.create(model=MODEL, input=[item])  # type: ignore[list-item]
    assert isinstance(raised.value.body, dict) and raised.value.body.get("param") == param
    assert len(emulator_control(stored.foundry, "requests")) == before, "Foundry was called"


def test_a_large_record_is_stored_and_read_within_the_stores_own_timeout(stored: Stored) -> None:
    """state.redis.timeout_ms is 50 ms here (the limiter's); a 24 MB record needs more, and gets it."""
    created = client(stored).responses.create(model=MODEL, input="z" * (12 << 20))
    fetched = client(stored).responses.retrieve(created.id)
    assert len(fetched.output_text) > 12 << 20


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    bounds = {"max_stored_bytes_per_response": 8192, "max_stored_bytes_per_client": 40000}
    yield from store_stack(tmp_path_factory.mktemp("bounded"), {}, bounds)


def test_a_response_over_its_bound_is_refused_before_foundry_unless_not_stored(bounded: Stored) -> None:
    before = len(emulator_control(bounded.foundry, "requests"))
    with pytest.raises(openai.APIStatusError) as raised:
        client(bounded).responses.create(model=MODEL, input="w" * 10000)
    assert raised.value.status_code == 413 and "max_stored_bytes_per_response" in raised.value.message
    assert len(emulator_control(bounded.foundry, "requests")) == before
    assert client(bounded).responses.create(model=MODEL, input="w" * 10000, store=False).output_text


def test_a_client_over_its_stored_bytes_gets_a_429_and_others_are_unaffected(bounded: Stored) -> None:
    api = client(bounded, "alice")
    refused = None
    for _ in range(20):
        try:
            api.responses.create(model=MODEL, input="v" * 3000)
        except openai.RateLimitError as exc:
            refused = exc
            break
    assert refused is not None, "the client was never refused"
    assert "max_stored_bytes_per_client" in refused.message
    assert 1 <= int(refused.response.headers["retry-after"]) <= TTL
    stored_bytes = sum(int(v) for k in redis.Redis(port=bounded.redis_port).keys("fgw:{alice}:bytes:*")
                       for v in [redis.Redis(port=bounded.redis_port).get(k) or 0])  # fmt: skip
    assert stored_bytes <= 40000 + 8192, "a client may pass its bound by one response at most"
    assert client(bounded, "bob").responses.create(model=MODEL, input="v" * 3000).output_text


def test_a_conversation_part_of_which_has_expired_is_a_404_that_says_so(stored: Stored) -> None:
    api = client(stored)
    first = api.responses.create(model=MODEL, input="Remember the first turn")
    db = redis.Redis(port=stored.redis_port)
    (item_key,) = [k for k in db.keys("fgw:{alice}:item:in_*") if b"first turn" in (db.get(k) or b"")]
    db.delete(item_key)  # what its TTL would do
    with pytest.raises(openai.NotFoundError) as gone:
        api.responses.create(model=MODEL, input="and then?", previous_response_id=first.id)
    assert "has expired or was deleted" in gone.value.message


def test_an_input_that_is_no_input_is_refused_as_sent_with_the_store_on(stored: Stored) -> None:
    before = len(emulator_control(stored.foundry, "requests"))
    response = httpx.post(stored.base + "/v1/responses", json={"model": MODEL},
                          headers={"authorization": f"Bearer {KEYS['alice']}"})  # fmt: skip
    assert response.status_code == 400 and response.json()["error"]["param"] == "input"
    assert len(emulator_control(stored.foundry, "requests")) == before
