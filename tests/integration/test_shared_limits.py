"""Cost, limits and budgets across replicas, with a real Redis (Debian's redis-server) and two
gateway processes sharing it, in front of the Foundry emulator."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis as redis_py

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

KEY = "emu-key-shared-limits"
PRICE = {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.3}
CLIENTS = {"rpm": "key-rpm-3b1f", "budget": "key-budget-8c2e", "usd": "key-usd-5d7a", "free": "key-free-1a9c",
           "headers": "key-headers-6e4b", "exact": "key-exact-2f7d", "drop": "key-drop-9a3c",
           "many": "key-many-4b8e"}  # fmt: skip
HELLO = [{"role": "user", "content": "Hello there"}]


def inbound() -> dict[str, Any]:
    def key(name: str, **limits: Any) -> dict[str, Any]:
        return {"client": name, "sha256": hashlib.sha256(CLIENTS[name].encode()).hexdigest(), **limits}

    return {"api_keys": [
        key("rpm", requests_per_minute=10),
        key("budget", budget={"tokens_per_day": 150}),
        key("usd", budget={"usd_per_day": 0.0005}),
        key("free"),
        key("headers", requests_per_minute=1000, tokens_per_minute=1_000_000),
        key("exact", requests_per_minute=10),
        key("drop", budget={"tokens_per_day": 100_000_000}),
        key("many", budget={"tokens_per_day": 2000}),
    ]}  # fmt: skip


def gateway_config(foundry: str, redis_url: str | None, **redis: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "upstreams": [{"name": "foundry", "base_url": foundry, "auth": {"type": "api_key", "key_env": "K"}}],
        "routes": [
            {"model": "claude-sonnet-4-5", "targets": [{"upstream": "foundry", "deployment": "d"}], "price": PRICE,
             "cache_breakpoints": "auto"},
        ],
        "inbound": inbound(),
        "retries": {"max_attempts": 1},
    }  # fmt: skip
    if redis_url is not None:
        config["state"] = {"redis": {"url": redis_url, "timeout_ms": 200, **redis}}
    return config


@dataclass
class Shared:
    foundry: str
    redis: Process
    redis_port: int
    replicas: list[tuple[Process, str]]
    work: Path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    work = tmp_path_factory.mktemp("shared")
    emulator, foundry = start_foundry_emulator("--api-key", KEY, log_dir=work)
    redis, port = start_redis(work)
    url = f"redis://127.0.0.1:{port}/0"
    replicas = [start_gateway(gateway_config(foundry, url), env={"K": KEY}, log_dir=work / n) for n in "ab"]
    try:
        yield Shared(foundry, redis, port, [(p, base) for p, base, _ in replicas], work)
    finally:
        for proc, _, _ in replicas:
            proc.stop()
        redis.stop()
        emulator.stop()


def ask(base: str, client: str, **extra: Any) -> httpx.Response:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": HELLO, **extra}
    return httpx.post(base + "/v1/messages", json=body, headers={"x-api-key": CLIENTS[client]}, timeout=10)


def chat(base: str, client: str) -> httpx.Response:
    body = {"model": "claude-sonnet-4-5", "messages": HELLO}
    return httpx.post(base + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENTS[client]}"})


def same_minute(margin: float = 8.0) -> None:
    """Wait out the end of a minute, so a burst is counted in one per-minute window."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def test_two_replicas_hold_a_client_to_its_requests_per_minute_together(shared: Shared) -> None:
    same_minute()
    statuses = [ask(shared.replicas[i % 2][1], "rpm").status_code for i in range(14)]
    assert statuses == [200] * 10 + [429] * 4, "ten in all, whichever replica took them"
    refused = ask(shared.replicas[0][1], "rpm")
    assert refused.status_code == 429 and "across all replicas" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_the_headers_say_where_a_client_stands(shared: Shared) -> None:
    same_minute()
    native = ask(shared.replicas[0][1], "headers")
    left = int(native.headers["anthropic-ratelimit-requests-remaining"])
    assert left < 1000 and native.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    tokens_left = int(native.headers["anthropic-ratelimit-tokens-remaining"])
    eventually(lambda: minute_tokens(shared, "headers") > 0)  # the first answer's tokens, charged just after it
    chat = httpx.post(shared.replicas[1][1] + "/v1/chat/completions",
                      json={"model": "claude-sonnet-4-5", "messages": HELLO},
                      headers={"authorization": f"Bearer {CLIENTS['headers']}"})  # fmt: skip
    assert int(chat.headers["x-ratelimit-remaining-requests"]) == left - 1, "counted across both replicas"
    assert int(chat.headers["x-ratelimit-remaining-tokens"]) < tokens_left, "the first answer's tokens counted"
    assert chat.headers["x-ratelimit-reset-requests"].endswith("s")


def test_a_token_budget_across_both_replicas_is_refused_at_the_same_total(shared: Shared) -> None:
    used = []
    for i in range(20):
        response = ask(shared.replicas[i % 2][1], "budget")
        if response.status_code != 200:
            break
        usage = response.json()["usage"]
        used.append(sum(usage[k] for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                              "cache_creation_input_tokens")))  # fmt: skip
        total = sum(used)
        settled(shared, "budget", lambda v, total=total: v == total)  # its reservation gives way to its usage
    assert response.status_code == 429, "refused once the day's tokens were used"
    message = response.json()["error"]["message"]
    assert "tokens_per_day budget" in message and "resets at" in message and "T00:00:00Z" in message
    assert sum(used) >= 150 > sum(used[:-1]), "refused at the first request after the total passed the budget"


def test_a_dollar_budget_uses_the_price(shared: Shared) -> None:
    statuses = []
    for i in range(7):
        statuses.append(ask(shared.replicas[i % 2][1], "usd").status_code)
        # A charge reaches Redis within CHARGE_DELAY_SECONDS (250 ms), not before the next request
        # can arrive: each admission waits until the answers before it have settled.
        served = statuses.count(200)
        settled(shared, "usd", lambda v, served=served: v == served * 102, kind="usd")
    # Each request costs $0.000102 at $3/$15 per million (14 tokens in, 4 out): the $0.0005 day
    # is spent after five, whichever replica served them.
    assert statuses == [200] * 5 + [429] * 2
    refused = ask(shared.replicas[0][1], "usd")
    assert "usd_per_day budget" in refused.json()["error"]["message"]


def expected_cost(usage: dict[str, int]) -> float:
    return (
        usage.get("input_tokens", 0) * PRICE["input"]
        + usage.get("output_tokens", 0) * PRICE["output"]
        + usage.get("cache_read_input_tokens", 0) * PRICE["cache_read"]
        + usage.get("cache_creation_input_tokens", 0) * PRICE["cache_write"]
    ) / 1e6


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1/responses"])
@pytest.mark.parametrize("stream", [False, True])
def test_cost_is_price_times_the_usage_foundry_reported(shared: Shared, path: str, stream: bool) -> None:
    proc, base = shared.replicas[0]
    before = metric(proc.admin, 'foundry_gateway_cost_usd_total{client="free",route="claude-sonnet-4-5"}')
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "stream": stream}
    system = "You are a careful assistant. " * 20  # a stable prefix: cache writes, then reads
    if path == "/v1/responses":
        body |= {"input": f"cost check {stream}", "instructions": system}
    elif path == "/v1/chat/completions":
        body |= {"messages": [{"role": "system", "content": system}, {"role": "user", "content": f"cost {stream}"}]}
    else:
        body |= {"max_tokens": 50, "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                 "messages": [{"role": "user", "content": f"cost check {stream}"}]}  # fmt: skip
    response = httpx.post(base + path, json=body, headers={"x-api-key": CLIENTS["free"]}, timeout=10)
    assert response.status_code == 200
    reported = emulator_control(shared.foundry, "requests")[-1]["usage"]  # what the emulator answered
    after = metric(proc.admin, 'foundry_gateway_cost_usd_total{client="free",route="claude-sonnet-4-5"}')
    assert after - before == pytest.approx(expected_cost(reported), rel=1e-9)
    line = access_lines(proc)[-1]
    assert line["cost_usd"] == pytest.approx(expected_cost(reported), abs=1e-6) and line["client"] == "free"
    assert reported["cache_read_input_tokens"] or reported["cache_creation_input_tokens"], "cache tokens priced"


@pytest.fixture
def own_redis(shared: Shared) -> Iterator[tuple[Process, int]]:
    proc, port = start_redis(shared.work / f"own-{time.monotonic_ns()}")
    try:
        yield proc, port
    finally:
        proc.stop()


@pytest.mark.parametrize("on_error", ["allow", "deny"])
def test_redis_down_then_back(shared: Shared, own_redis: tuple[Process, int], on_error: str) -> None:
    redis, port = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    proc, base, _ = start_gateway(gateway_config(shared.foundry, url, on_error=on_error), env={"K": KEY},
                                  log_dir=shared.work / f"outage-{on_error}")  # fmt: skip
    try:
        assert ask(base, "rpm").status_code == 200
        redis.stop()
        during = [ask(base, "rpm") for _ in range(3)]
        if on_error == "allow":
            assert [r.status_code for r in during] == [200] * 3, "no request fails because Redis is down"
        else:
            assert [r.status_code for r in during] == [503] * 3
            assert "state.redis.on_error: deny" in during[0].json()["error"]["message"]
        errors = metric(proc.admin, 'foundry_gateway_shared_state_errors_total{operation="admit"}')
        assert errors >= 3
        back, _ = start_redis(shared.work / f"back-{on_error}", port=port)
        try:
            same_minute()
            assert ask(base, "rpm").status_code == 200
            assert int(ask(base, "rpm").headers["anthropic-ratelimit-requests-remaining"]) == 8, "counting resumed"
        finally:
            back.stop()
    finally:
        proc.stop()


class Silent:
    """A server that accepts connections and never answers: Redis hung, or a black hole."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_redis_that_never_answers_adds_at_most_the_timeout(shared: Shared) -> None:
    silent = Silent()
    config = gateway_config(shared.foundry, f"redis://127.0.0.1:{silent.port}/0", timeout_ms=100)
    proc, base, _ = start_gateway(config, env={"K": KEY}, log_dir=shared.work / "silent")
    try:
        ask(base, "free")  # a client without limits never waits for Redis
        started = time.perf_counter()
        assert ask(base, "free").status_code == 200
        unlimited = time.perf_counter() - started
        times = []
        for _ in range(3):
            started = time.perf_counter()
            assert ask(base, "rpm").status_code == 200  # allow: served as if no limit were reached
            times.append(time.perf_counter() - started)
        assert max(times) < unlimited + 0.1 + 0.15, f"{times} vs {unlimited}: at most timeout_ms more"
        assert min(times) >= 0.09, "it did wait for Redis, up to the timeout"
    finally:
        proc.stop()
        silent.close()


def test_no_secret_in_logs_or_errors(shared: Shared) -> None:
    redis, port = start_redis(shared.work / "password-redis", None, "--requirepass", "the-real-one-0a1b2c")
    password = "redis-pass-9f8e7d6c5b"
    url = f"redis://:{password}@127.0.0.1:{port}/0"  # the wrong password: every call fails
    proc, base, _ = start_gateway(gateway_config(shared.foundry, url, on_error="deny"), env={"K": KEY},
                                  log_dir=shared.work / "password")  # fmt: skip
    try:
        response = ask(base, "rpm")
        assert response.status_code == 503 and password not in response.text
        assert "shared_state_failed" in proc.log(), "the failure is logged"
        assert password not in proc.log() and password not in httpx.get(proc.admin + "/metrics").text
    finally:
        proc.stop()
        redis.stop()


def test_without_redis_limits_are_per_pod(shared: Shared) -> None:
    proc, base, _ = start_gateway(gateway_config(shared.foundry, None), env={"K": KEY}, log_dir=shared.work / "pod")
    try:
        statuses = [ask(base, "rpm").status_code for _ in range(11)]
        assert statuses == [200] * 10 + [429]
        assert "on this gateway pod" in ask(base, "rpm").json()["error"]["message"]
    finally:
        proc.stop()


def day_tokens(shared: Shared, client: str, kind: str = "tokens") -> int:
    """The client's tokens (or micro-dollars) today, in the shared Redis."""
    day = time.strftime("%Y%m%d", time.gmtime())
    value = redis_py.Redis(port=shared.redis_port).get(f"fgw:{{{client}}}:{kind}:{day}")
    return int(value or 0)


def minute_tokens(shared: Shared, client: str) -> int:
    value = redis_py.Redis(port=shared.redis_port).get(f"fgw:{{{client}}}:tokens:{int(time.time() // 60)}")
    return int(value or 0)


def settled(shared: Shared, client: str, check: Any, kind: str = "tokens") -> int:
    """The client's tokens today once `check` holds of them (charges land just after an answer)."""
    eventually(lambda: check(day_tokens(shared, client, kind)), timeout=5)
    return day_tokens(shared, client, kind)


def test_a_limit_admits_exactly_its_number_when_charges_and_admissions_meet(shared: Shared) -> None:
    """Requests back to back, alternating replicas and dialects, from an empty script cache: exactly
    ten, three rounds running (tests/integration/test_redis_limiter.py holds the pipeline case itself)."""
    db = redis_py.Redis(port=shared.redis_port)
    for _ in range(3):
        same_minute()
        db.script_flush()
        for key in db.scan_iter("fgw:{exact}:requests:*"):
            db.delete(key)
        statuses = []
        for i in range(30):
            base = shared.replicas[i % 2][1]
            statuses.append((ask if i % 4 < 2 else chat)(base, "exact").status_code)
        assert statuses.count(200) == 10 and statuses[:10] == [200] * 10, statuses


def test_concurrent_requests_overshoot_a_budget_by_at_most_what_one_reserves(shared: Shared) -> None:
    """Each admission reserves its input estimate and max_tokens against the budget: 40 at once
    against 2,000 tokens a day are not all admitted on the same room."""

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=20) as http:
            words = " ".join(f"w{i}" for i in range(400))  # some 500 input tokens a request
            body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": words}]}
            sends = [http.post(shared.replicas[i % 2][1] + "/v1/messages", json=body,
                               headers={"x-api-key": CLIENTS["many"]}) for i in range(40)]  # fmt: skip
            return [r.status_code for r in await asyncio.gather(*sends)]

    statuses = asyncio.run(burst())
    assert 0 < statuses.count(200) < 10 and set(statuses) == {200, 429}, statuses
    one_request = 800  # its input estimate (its body's bytes / 4) and max_tokens, as reserved
    served = statuses.count(200)
    used = settled(shared, "many", lambda v: 0 < v <= served * 600)  # every reservation settled
    assert used <= 2000 + one_request, f"{used} tokens charged against a budget of 2,000"


def test_a_client_that_drops_a_stream_is_charged_what_it_was_sent(shared: Shared) -> None:
    before = day_tokens(shared, "drop")
    # From its 100th event the stream comes a byte at a time: the client leaves while it is under way.
    emulator_control(shared.foundry, "faults", [{"drip_after": 100, "drip_interval": 0.05}])
    words = " ".join(f"w{i}" for i in range(400))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": True,
            "messages": [{"role": "user", "content": words}]}  # fmt: skip
    with httpx.stream("POST", shared.replicas[0][1] + "/v1/messages", json=body,
                      headers={"x-api-key": CLIENTS["drop"]}, timeout=20) as response:  # fmt: skip
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data:") and "message_start" in line:
                input_tokens = orjson.loads(line[5:])["message"]["usage"]["input_tokens"]
            seen += "text_delta" in line
            if seen == 90:
                break  # the client goes away a quarter of the way through the answer
    # Settled: the reservation (input estimate plus 1,000) gives way to what the stream had carried.
    settled(shared, "drop", lambda v: input_tokens + 50 <= v - before <= input_tokens + 400)
    line = next(entry for entry in reversed(access_lines(shared.replicas[0][0])) if entry.get("client") == "drop")
    assert line["usage_source"] == "partial" and line["client_disconnected"] is True


def test_a_client_that_gives_up_on_an_answer_is_charged_an_estimate(shared: Shared) -> None:
    before = day_tokens(shared, "drop")
    emulator_control(shared.foundry, "faults", [{"delay": 3}])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(shared.replicas[1][1] + "/v1/messages", headers={"x-api-key": CLIENTS["drop"]}, timeout=0.5,
                   json={"model": "claude-sonnet-4-5", "max_tokens": 700, "messages": HELLO})  # fmt: skip
    charged = settled(shared, "drop", lambda v: v - before >= 700) - before
    assert 700 <= charged <= 700 + 100, "its max_tokens and its input estimate"
    for _ in range(300):
        line: dict[str, Any] = next(
            (e for e in reversed(access_lines(shared.replicas[1][0])) if e.get("client") == "drop"), {}
        )
        if line.get("status") == 499:
            break
        time.sleep(0.01)
    assert line["usage_source"] == "estimated"


def test_absurd_usage_is_not_charged_and_breaks_nothing(shared: Shared) -> None:
    answer = {"id": "msg_absurd", "type": "message", "role": "assistant", "model": "d",
              "content": [{"type": "text", "text": "huge"}], "stop_reason": "end_turn", "stop_sequence": None,
              "usage": {"input_tokens": 5, "output_tokens": 2**63}}  # fmt: skip
    emulator_control(shared.foundry, "faults", [{"body": orjson.dumps(answer).decode()}])
    before = day_tokens(shared, "drop")
    missing = 'foundry_gateway_upstream_usage_missing_total{upstream="foundry"}'
    counted = metric(shared.replicas[0][0].admin, missing)
    assert ask(shared.replicas[0][1], "drop").status_code == 200
    charged = settled(shared, "drop", lambda v: v > before) - before
    assert charged < 1000, "charged an estimate, not 2**63"
    assert metric(shared.replicas[0][0].admin, missing) == counted + 1
    assert "upstream_usage_missing" in shared.replicas[0][0].log()
    assert ask(shared.replicas[0][1], "drop").status_code == 200, "the replica's limiter still works"
