"""Foundry quota through the gateway, against the emulator enforcing it as Foundry does: pools
across deployments, token buckets, 429 with retry-after, prompt caches per deployment."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from devtools.harness import (
    Process,
    access_lines,
    emulator_control,
    eventually,
    metric,
    start_foundry_emulator,
    start_gateway,
    start_redis,
)
from gateway.app import create_app
from gateway.app_keys import LIVE
from gateway.config import load_config
from gateway.reload import reload_once
from tests.emulators.foundry.server import EmulatorState
from tests.emulators.foundry.server import create_app as create_emulator

KEY = "emu-key-quota"
REGIONS = ("east", "west", "north")  # east and west: subscription A; north: subscription B
KEYS = {"alice": "key-alice-71c3", "bob": "key-bob-52d9", "etl": "key-etl-03fa"}
TOOLS = [{"name": f"tool_{i}", "description": "does a thing " * 40, "input_schema": {"type": "object"}}
         for i in range(8)]  # fmt: skip
TOOLS[-1] = {**TOOLS[-1], "cache_control": {"type": "ephemeral"}}
SYSTEM = [{"type": "text", "text": "You are a careful coding agent. " * 200, "cache_control": {"type": "ephemeral"}}]


@dataclass
class Emulator:
    proc: Process
    root: str  # http://127.0.0.1:PORT

    def upstreams(self) -> list[dict[str, Any]]:
        auth = {"type": "api_key", "key_env": "K"}
        return [{"name": r, "base_url": f"{self.root}/{r}/anthropic", "auth": auth} for r in REGIONS]

    def pools(self, spec: list[dict[str, Any]]) -> None:
        emulator_control(self.root + "/anthropic", "quota", spec)

    def report(self) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in emulator_control(self.root + "/anthropic", "quota")}

    def requests(self) -> list[dict[str, Any]]:
        return [r for r in emulator_control(self.root + "/anthropic", "requests") if "deployment" in r]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    proc, base = start_foundry_emulator("--api-key", KEY, log_dir=tmp_path_factory.mktemp("quota-emulator"))
    try:
        yield Emulator(proc, base.removesuffix("/anthropic"))
    finally:
        proc.stop()


@pytest.fixture()
def fresh(emulator: Emulator) -> Emulator:
    emulator_control(emulator.root + "/anthropic", "reset", {})
    return emulator


def inbound() -> dict[str, Any]:
    def key(name: str, **more: Any) -> dict[str, Any]:
        return {"client": name, "sha256": hashlib.sha256(KEYS[name].encode()).hexdigest(), **more}

    return {"api_keys": [key("alice"), key("bob"), key("etl", priority="batch")]}


def config(emulator: Emulator, pools: list[dict[str, Any]], route: dict[str, Any], **more: Any) -> dict[str, Any]:
    targets = [{"upstream": r, "deployment": "claude", "quota_pool": "sub-a" if r != "north" else "sub-b"}
               for r in REGIONS]  # fmt: skip
    return {
        "upstreams": emulator.upstreams(),
        "routes": [{"model": "claude", "targets": targets, "strategy": "quota", **route}],
        "quota_pools": pools,
        **more,
    }


@pytest.fixture()
def gateways(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.stop()


def gateway(started: list[Process], cfg: dict[str, Any], where: Path) -> str:
    proc, base, _ = start_gateway(cfg, env={"K": KEY}, log_dir=where)
    started.append(proc)
    return base


def turn(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The conversation with a new user turn, marked as Claude Code marks its last message."""
    earlier = [{**m, "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]]}
               for m in messages]  # fmt: skip
    return [
        *earlier,
        {"role": "user", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]},
    ]


def test_a_session_keeps_its_deployment_across_turns_and_reads_its_cache(
    fresh: Emulator, gateways: list[Process], tmp_path: Path
) -> None:
    base = gateway(gateways, config(fresh, [{"name": "sub-a"}, {"name": "sub-b"}], {}), tmp_path)
    sessions = {f"session-{i}": [] for i in range(6)}  # type: dict[str, list[dict[str, Any]]]
    for n in range(4):
        for session, messages in sessions.items():
            messages[:] = turn(messages, f"step {n} of {session}")
            body = {"model": "claude", "max_tokens": 50, "system": SYSTEM, "tools": TOOLS, "messages": messages}
            answer = httpx.post(base + "/v1/messages", json=body, headers={"x-claude-code-session-id": session})
            assert answer.status_code == 200, answer.text
            messages.append({"role": "assistant", "content": answer.json()["content"]})
    seen = fresh.requests()
    by_session: dict[str, set[str]] = {}
    for request in seen:
        session = request["body"]["messages"][-1]["content"][0]["text"].rsplit(" ", 1)[1]
        by_session.setdefault(session, set()).add(request["deployment"])
    assert all(len(deployments) == 1 for deployments in by_session.values()), by_session
    assert len({d for ds in by_session.values() for d in ds}) >= 2, "sessions are spread over the targets"
    later = [r["usage"] for r in seen[len(sessions) :]]
    assert all(u["cache_read_input_tokens"] > 0 for u in later), "every later turn reads its session's cache"
    results = [line.get("affinity") for line in access_lines(gateways[0])]
    assert results.count("new") == len(sessions) and results.count("kept") == 3 * len(sessions)


def test_an_empty_pool_makes_requests_wait_and_serves_them_interactive_first_and_fairly(
    fresh: Emulator, gateways: list[Process], tmp_path: Path
) -> None:
    # One request a second, a bucket of one: the gateway holds the line, the emulator has room to spare.
    pools = [{"name": "sub-a", "requests_per_minute": 60, "burst_seconds": 1},
             {"name": "sub-b", "requests_per_minute": 60, "burst_seconds": 1}]  # fmt: skip
    fresh.pools([{"name": "a", "requests_per_minute": 600, "deployments": ["east/claude", "west/claude"]},
                 {"name": "b", "requests_per_minute": 600, "deployments": ["north/claude"]}])  # fmt: skip
    route = {"targets": [{"upstream": "east", "deployment": "claude", "quota_pool": "sub-a"}]}
    cfg = config(fresh, pools, route, inbound=inbound())
    base = gateway(gateways, cfg, tmp_path)
    admin = gateways[0].admin
    answers: dict[str, httpx.Response] = {}

    def send(name: str, client: str) -> None:
        body = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": name}]}
        answers[name] = httpx.post(base + "/v1/messages", json=body, headers={"x-api-key": KEYS[client]}, timeout=60)

    threads: list[threading.Thread] = []

    def start(name: str, client: str, depth: str, count: float) -> None:
        threads.append(threading.Thread(target=send, args=(name, client)))
        threads[-1].start()
        eventually(lambda: metric(admin, depth) >= count, what=f"{name} queued")

    send("first", "alice")  # takes the bucket
    batch = 'foundry_gateway_quota_queue_depth{priority="batch",route="claude"}'
    interactive = 'foundry_gateway_quota_queue_depth{priority="interactive",route="claude"}'
    start("etl-1", "etl", batch, 1)
    start("etl-2", "etl", batch, 2)
    for i in range(3):
        start(f"alice-{i}", "alice", interactive, i + 1)
    start("bob-0", "bob", interactive, 4)
    for t in threads:
        t.join()
    assert all(a.status_code == 200 for a in answers.values()), {k: a.text for k, a in answers.items()}
    order = [r["body"]["messages"][0]["content"] for r in fresh.requests()]
    assert order[0] == "first" and order[-2:] == ["etl-1", "etl-2"], order
    assert order.index("bob-0") <= 2, f"bob waits behind one of alice's, not all three: {order}"
    waited = [line for line in access_lines(gateways[0]) if line.get("quota_wait_ms")]
    assert len(waited) == 6 and all(line["quota_pool"] == "sub-a" for line in waited)
    assert metric(admin, 'foundry_gateway_quota_wait_seconds_count{priority="batch",route="claude"}') == 2


def test_a_wait_past_the_bound_is_a_429_in_the_clients_dialect_with_a_computed_retry_after(
    fresh: Emulator, gateways: list[Process], tmp_path: Path
) -> None:
    pools = [{"name": "sub-a", "requests_per_minute": 6, "burst_seconds": 10},
             {"name": "sub-b", "requests_per_minute": 6, "burst_seconds": 10}]  # fmt: skip
    base = gateway(gateways, config(fresh, pools, {"max_wait_seconds": 2}), tmp_path)
    native = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(base + "/v1/messages", json=native).status_code == 200
    assert httpx.post(base + "/v1/messages", json=native).status_code == 200  # the other pool
    started = time.monotonic()
    refused = httpx.post(base + "/v1/messages", json=native)
    chat = httpx.post(base + "/v1/chat/completions", json={"model": "claude", "messages": native["messages"]})
    assert time.monotonic() - started < 2, "refused at once, not after waiting"
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    assert chat.status_code == 429 and chat.json()["error"]["code"] == "rate_limit_error"
    # One request refills in 10 s; nearly all of that is still to come.
    assert 8 <= int(refused.headers["retry-after"]) <= 10 and 8 <= int(chat.headers["retry-after"]) <= 10
    assert "max_wait" not in refused.json()["error"]["message"] or "2 s" in refused.json()["error"]["message"]
    assert len(fresh.requests()) == 2, "nothing Foundry would refuse was sent"
    admin = gateways[0].admin
    assert (
        metric(admin, 'foundry_gateway_quota_refused_total{priority="interactive",reason="wait_bound",route="claude"}')
        == 2
    )


def test_a_429_from_foundry_pauses_its_pool_and_the_other_region_of_that_pool_is_not_tried(
    fresh: Emulator, gateways: list[Process], tmp_path: Path
) -> None:
    # The gateway believes sub-a is large; Foundry (someone else spends it) says otherwise.
    fresh.pools([{"name": "a", "requests_per_minute": 2, "deployments": ["east/claude", "west/claude"]}])
    pools: list[dict[str, Any]] = [{"name": "sub-a", "requests_per_minute": 6000}, {"name": "sub-b"}]
    route = {"targets": [{"upstream": r, "deployment": "claude", "quota_pool": "sub-a"} for r in ("east", "west")],
             "strategy": "weighted"}  # fmt: skip
    base = gateway(gateways, config(fresh, pools, route), tmp_path)
    body = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    statuses = [httpx.post(base + "/v1/messages", json=body).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and statuses[2] == 429
    seen = emulator_control(fresh.root + "/anthropic", "requests")
    assert len(seen) == 3, "after the 429 neither the other region of the pool nor a retry was tried"
    assert statuses[3] == 429 and len(emulator_control(fresh.root + "/anthropic", "requests")) == 3, "paused"
    assert metric(gateways[0].admin, 'foundry_gateway_quota_upstream_throttled_total{pool="sub-a"}') == 1


def hammer(bases: list[str], seconds: float, clients: int = 8) -> list[int]:
    """`clients` callers sending one request after another, over the replicas in turn, for `seconds`."""
    statuses: list[int] = []
    deadline = time.monotonic() + seconds

    def caller(n: int) -> None:
        i = n
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < deadline:
                body = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": f"c{n}"}]}
                statuses.append(http.post(bases[i % len(bases)] + "/v1/messages", json=body).status_code)
                i += 1

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_two_replicas_share_a_pool_through_redis_and_fall_back_to_their_share_without_it(
    fresh: Emulator, gateways: list[Process], tmp_path: Path
) -> None:
    rate, burst = 240, 5  # 4 requests a second, 20 at once
    fresh.pools([{"name": "a", "requests_per_minute": rate, "burst_seconds": burst,
                  "deployments": ["east/claude", "west/claude"]}])  # fmt: skip
    redis, port = start_redis(tmp_path)
    try:
        pools: list[dict[str, Any]] = [{"name": "sub-a", "requests_per_minute": rate, "burst_seconds": burst}]
        pools.append({"name": "sub-b"})
        route = {"targets": [{"upstream": r, "deployment": "claude", "quota_pool": "sub-a"} for r in ("east", "west")]}
        state = {"redis": {"url": f"redis://127.0.0.1:{port}/0"}, "replicas": 2}
        bases = [gateway(gateways, config(fresh, pools, route, state=state), tmp_path / n) for n in "ab"]
        shared = 'foundry_gateway_quota_shared{pool="sub-a"}'
        eventually(lambda: all(metric(g.admin, shared) == 1 for g in gateways), what="both replicas leasing")
        started = time.monotonic()
        statuses = hammer(bases, 6)
        elapsed = time.monotonic() - started
        pool = fresh.report()["a"]
        admitted, refused = pool["spent"][0], pool["refused"]
        assert refused <= 0.05 * admitted, f"Foundry refused {refused} of {admitted}: the replicas overran the pool"
        assert admitted <= 1.05 * (rate * burst / 60 + rate / 60 * elapsed)
        assert admitted >= 0.7 * (rate / 60 * 6), "the pool was used, not starved"
        assert statuses.count(200) == admitted and set(statuses) <= {200, 429}

        redis.stop()  # each replica now meters its share of the pool alone: never the whole pool each
        eventually(lambda: all(metric(g.admin, shared) == 0 for g in gateways), what="both replicas alone")
        fresh.pools([{"name": "a", "requests_per_minute": rate, "burst_seconds": burst,
                      "deployments": ["east/claude", "west/claude"]}])  # fmt: skip
        started = time.monotonic()
        hammer(bases, 5)
        elapsed = time.monotonic() - started
        pool = fresh.report()["a"]
        assert pool["refused"] <= 0.05 * pool["spent"][0], "each replica kept to its half"
        assert pool["spent"][0] <= 1.05 * (rate * burst / 60 + rate / 60 * elapsed)
        assert metric(gateways[0].admin, 'foundry_gateway_shared_state_errors_total{operation="quota_lease"}') >= 1
    finally:
        redis.stop()


def test_a_request_that_is_never_sent_gives_its_quota_back(
    fresh: Emulator, gateways: list[Process], tmp_path: Path
) -> None:
    # A pool that holds one request at a time, and no waiting: a charge not given back refuses the next one.
    pools = [{"name": "sub-a", "requests_per_minute": 6, "burst_seconds": 10},
             {"name": "sub-b", "requests_per_minute": 6, "burst_seconds": 10}]  # fmt: skip
    route = {"targets": [{"upstream": "east", "deployment": "claude", "quota_pool": "sub-a"}], "max_wait_seconds": 0}
    base = gateway(gateways, config(fresh, pools, route), tmp_path)
    nested = '{"a":' * 300 + "1" + "}" * 300  # parsed, but more than Foundry's JSON may nest: refused when encoded
    tool = '{"name": "f", "input_schema": ' + nested + "}"
    raw = (
        '{"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}], "tools": ['
        + tool
        + "]}"
    )
    refused = httpx.post(base + "/v1/messages", content=raw, headers={"content-type": "application/json"})
    assert refused.status_code == 400 and "levels deep" in refused.json()["error"]["message"]
    body = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(base + "/v1/messages", json=body).status_code == 200, "the pool's one request came back"
    assert httpx.post(base + "/v1/messages", json=body).status_code == 429, "and is spent now"
    assert len(fresh.requests()) == 1


async def test_a_reload_that_drops_redis_leaves_the_pools_metering_alone(tmp_path: Path) -> None:
    """In-process: pools leased through Redis, then a config without state.redis. The meters stay (what
    was used stays used) and refill from the clock again, instead of waiting for leases that never come."""
    os.environ["QUOTA_RELOAD_KEY"] = KEY
    redis, port = start_redis(tmp_path)
    emulator = TestServer(create_emulator(EmulatorState(api_keys={KEY})))
    await emulator.start_server()
    path = tmp_path / "gateway.yaml"

    def write(shared: bool) -> None:
        path.write_text(yaml.safe_dump({
            "upstreams": [{"name": "e", "base_url": str(emulator.make_url("/anthropic")),
                           "auth": {"type": "api_key", "key_env": "QUOTA_RELOAD_KEY"}}],
            "routes": [{"model": "claude", "strategy": "quota", "max_wait_seconds": 5,
                        "targets": [{"upstream": "e", "deployment": "d", "quota_pool": "p"}]}],
            "quota_pools": [{"name": "p", "requests_per_minute": 600, "burst_seconds": 1}],
            **({"state": {"redis": {"url": f"redis://127.0.0.1:{port}/0"}}} if shared else {}),
        }))  # fmt: skip

    write(True)
    app = create_app(load_config(path))
    client = TestClient(TestServer(app))
    await client.start_server()
    body = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    try:
        meter = app[LIVE].runtime.quota.meters["p"]
        for _ in range(3):
            assert (await client.post("/v1/messages", json=body)).status == 200
        assert meter.leased
        write(False)
        assert await reload_once(app, path)
        async with asyncio.timeout(5):
            while meter.leased:  # noqa: ASYNC110 (polled: the old leases close once no request runs on them)
                await asyncio.sleep(0.02)
        assert app[LIVE].runtime.quota.meters["p"] is meter
        for _ in range(12):  # more than a burst holds (10): served as the clock refills it
            assert (await client.post("/v1/messages", json=body)).status == 200
    finally:
        await client.close()
        await emulator.close()
        redis.stop()
