"""A reload swaps everything the config decides together (runtime, limiter, response store), and a
request keeps what it started with: in-process gateway and emulator, two real Redis servers."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from aiohttp.test_utils import TestClient, TestServer

from devtools.harness import Process, start_redis
from gateway.app import create_app
from gateway.app_keys import LIVE
from gateway.config import load_config
from gateway.reload import reload_once
from tests.emulators.foundry.server import EmulatorState, Fault
from tests.emulators.foundry.server import create_app as create_emulator

KEY = "reload-state-key-5c1d"
CLIENT_KEY = "reload-client-key-9e8f"


@pytest.fixture(scope="module")
def redises(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    work = tmp_path_factory.mktemp("reload-state")
    first, first_port = start_redis(work)
    second, second_port = start_redis(work)
    procs: list[Process] = [first, second]
    try:
        yield first_port, second_port
    finally:
        for proc in procs:
            proc.stop()


Setup = tuple[TestClient[Any, Any], EmulatorState, Callable[[int, int | None], Any]]


@pytest.fixture
async def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redises: tuple[int, int]) -> AsyncIterator[Setup]:
    monkeypatch.setenv("RELOAD_STATE_KEY", KEY)
    state = EmulatorState(api_keys={KEY})
    emulator = TestServer(create_emulator(state))
    await emulator.start_server()
    path = tmp_path / "gateway.yaml"

    def write(redis_port: int, ttl: int | None) -> None:
        path.write_text(yaml.safe_dump({
            "upstreams": [{"name": "e", "base_url": str(emulator.make_url("/anthropic")),
                           "auth": {"type": "api_key", "key_env": "RELOAD_STATE_KEY"}}],
            "routes": [{"model": "claude", "targets": [{"upstream": "e", "deployment": "d"}]}],
            "inbound": {"api_keys": [{"client": "team", "sha256": hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}]},
            "state": {"redis": {"url": f"redis://127.0.0.1:{redis_port}/0"}},
            "responses": {"store_ttl_seconds": ttl} if ttl is not None else {},
        }))  # fmt: skip

    write(redises[0], 600)
    app = create_app(load_config(path))

    async def reload(redis_port: int, ttl: int | None) -> None:
        write(redis_port, ttl)
        assert await reload_once(app, path)

    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, state, reload
    finally:
        state.release.set()
        await client.close()
        await emulator.close()


async def respond(client: TestClient[Any, Any], text: str) -> str:
    response = await client.post(
        "/v1/responses",
        json={"model": "claude", "input": text},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert response.status == 200, await response.text()
    rid: str = (await response.json())["id"]
    return rid


def ttl_in(port: int, rid: str) -> int:
    return int(redis.Redis(port=port).ttl(f"fgw:{{team}}:response:{rid}"))


async def test_a_reload_moves_the_store_to_the_new_redis_and_ttl(gateway: Setup, redises: tuple[int, int]) -> None:
    client, _, reload = gateway
    before = await respond(client, "before")
    assert 0 < ttl_in(redises[0], before) <= 600
    await reload(redises[1], 3600)
    after = await respond(client, "after")
    assert ttl_in(redises[0], after) == -2, "stored on the old Redis"
    assert 600 < ttl_in(redises[1], after) <= 3600, "the new TTL was not applied"


async def test_a_reload_keeps_what_did_not_change_and_can_turn_the_store_off_and_on(
    gateway: Setup, redises: tuple[int, int]
) -> None:
    client, _, reload = gateway
    app = client.app
    assert app is not None
    served = app[LIVE].current
    await reload(redises[0], 600)  # the same file: nothing rebuilt
    assert app[LIVE].current is served
    await reload(redises[0], 1200)  # the TTL changed: a new store on the same Redis, the same limiter
    assert app[LIVE].current.store is not served.store and app[LIVE].current.limiter is served.limiter
    await reload(redises[0], None)
    assert app[LIVE].current.store is None
    rid = await respond(client, "not kept")
    gone = await client.get(f"/v1/responses/{rid}", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert gone.status == 404 and "keeps no responses" in (await gone.json())["error"]["message"]
    await reload(redises[0], 600)
    kept = await respond(client, "kept again")
    assert 0 < ttl_in(redises[0], kept) <= 600


async def test_an_in_flight_stream_finishes_on_the_state_it_started_with(
    gateway: Setup, redises: tuple[int, int]
) -> None:
    client, state, reload = gateway
    state.faults.append(Fault(hold_after=2))
    response = await client.post(
        "/v1/responses",
        json={"model": "claude", "input": "streamed", "stream": True},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert response.status == 200
    first = await response.content.readuntil(b"\n\n")  # response.created: the stream is under way
    assert b"response.created" in first
    old_clients = redis.Redis(port=redises[0]).info("clients")["connected_clients"]
    await reload(redises[1], 3600)
    state.release.set()
    body = (await response.read()).decode()
    rid = next(line for line in body.splitlines() if '"response.completed"' in line)
    rid = rid.split('"id":"', 1)[1].split('"', 1)[0]
    assert 0 < ttl_in(redises[0], rid) <= 600, "the stream was stored where it started"
    assert ttl_in(redises[1], rid) == -2
    # Its old store and limiter are closed once it has ended: their connections to the old Redis go.
    for _ in range(200):
        if redis.Redis(port=redises[0]).info("clients")["connected_clients"] < old_clients:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the old state's Redis connections were never closed")
