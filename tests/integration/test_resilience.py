"""Retries, fallbacks, cooldowns, heartbeats, disconnects, limits, drain and hot reload, by fault injection."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from devtools.harness import (
    Process,
    emulator_control,
    eventually,
    free_port,
    replace_file,
    start_foundry_emulator,
    start_gateway,
)
from devtools.harness import metric as harness_metric

KEY = "resilience-key-4c2e"
HELLO: Any = [{"role": "user", "content": "a b c d e f"}]


def upstream(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_url": url, "auth": {"type": "api_key", "key_env": "RES_KEY"}, **extra}


class Setup:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.a, self.a_url = start_foundry_emulator("--api-key", KEY, log_dir=work / "a")
        self.b, self.b_url = start_foundry_emulator("--api-key", KEY, log_dir=work / "b")
        self.dead_url = f"http://127.0.0.1:{free_port()}/anthropic"
        self.gateways: list[Process] = []

    def gateway(self, routes: list[dict[str, Any]], **sections: Any) -> tuple[Process, str, Path]:
        config = {
            "upstreams": [
                upstream("a", self.a_url),
                upstream("b", self.b_url),
                upstream("dead", self.dead_url),
                upstream("slow", self.a_url, timeouts={"read_seconds": 1.5}),
            ],
            "routes": routes,
            **sections,
        }
        proc, base, path = start_gateway(config, env={"RES_KEY": KEY}, log_dir=self.work / f"gw{len(self.gateways)}")
        self.gateways.append(proc)
        ADMIN[base] = proc.admin
        return proc, base, path

    def served(self) -> tuple[int, int]:
        return len(emulator_control(self.a_url, "requests")), len(emulator_control(self.b_url, "requests"))

    def reset(self) -> None:
        emulator_control(self.a_url, "reset", {})
        emulator_control(self.b_url, "reset", {})

    def stop(self) -> None:
        for p in [*self.gateways, self.a, self.b]:
            p.stop()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    s = Setup(tmp_path_factory.mktemp("resilience"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(autouse=True)
def clean(setup: Setup) -> None:
    setup.reset()


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=30)


# The admin listener (/metrics, /readyz) of each gateway started here, by its API base URL.
ADMIN: dict[str, str] = {}


def metric(base: str, sample: str) -> float:
    return harness_metric(ADMIN[base], sample)


PRIORITY = [
    {"model": "ab", "strategy": "priority",
     "targets": [{"upstream": "a", "deployment": "d"}, {"upstream": "b", "deployment": "d"}]},
    {"model": "dead-b", "strategy": "priority",
     "targets": [{"upstream": "dead", "deployment": "d"}, {"upstream": "b", "deployment": "d"}]},
    {"model": "a", "targets": [{"upstream": "a", "deployment": "d"}]},
]  # fmt: skip


@pytest.fixture(scope="module")
def gw(setup: Setup) -> str:
    # Failure cooldowns off here (each test starts from a healthy target); one test below turns them on.
    _, base, _ = setup.gateway(PRIORITY, retries={"cooldown_failures": 100, "retry_after_cap_seconds": 2})
    return base


@pytest.mark.parametrize("status", [529, 500, 503, 429, 408])
def test_a_failed_attempt_falls_back_to_the_next_target(setup: Setup, gw: str, status: int) -> None:
    fallbacks = metric(gw, 'foundry_gateway_retries_total{kind="fallback",route="ab"}')
    emulator_control(setup.a_url, "faults", [{"status": status}])
    reply = client(gw).chat.completions.create(model="ab", messages=HELLO)
    assert reply.choices[0].message.content == "You said: a b c d e f"
    assert setup.served() == (1, 1), "A failed once, B served"
    assert metric(gw, 'foundry_gateway_retries_total{kind="fallback",route="ab"}') == fallbacks + 1


@pytest.mark.parametrize(
    "fault", [{"reset": True}, {"delay": 3}], ids=["reset before the answer", "no headers in time"]
)
def test_a_reset_or_a_slow_first_byte_falls_back(setup: Setup, fault: dict[str, Any]) -> None:
    _, base, _ = setup.gateway(
        [{"model": "slow-b", "strategy": "priority",
          "targets": [{"upstream": "slow", "deployment": "d"}, {"upstream": "b", "deployment": "d"}]}]
    )  # fmt: skip
    emulator_control(setup.a_url, "faults", [fault])
    reply = client(base).chat.completions.create(model="slow-b", messages=HELLO)
    assert reply.choices[0].message.content == "You said: a b c d e f"
    assert setup.served() == (1, 1)


def test_a_connection_error_falls_back(setup: Setup, gw: str) -> None:
    reply = client(gw).chat.completions.create(model="dead-b", messages=HELLO)
    assert reply.choices[0].message.content.startswith("You said")  # type: ignore[union-attr]
    assert setup.served() == (0, 1)


def test_a_stream_failing_after_its_first_byte_is_not_retried(setup: Setup, gw: str) -> None:
    emulator_control(setup.a_url, "faults", [{"cut_after": 4}])
    with pytest.raises(openai.APIError, match="connection was cut"):
        list(client(gw).chat.completions.create(model="ab", messages=HELLO, stream=True))
    assert setup.served() == (1, 0), "nothing may be retried once the client has bytes"


def test_a_short_retry_after_on_a_lone_target_is_waited_out(setup: Setup, gw: str) -> None:
    emulator_control(setup.a_url, "faults", [{"status": 429, "retry_after": "1"}])
    started = time.monotonic()
    reply = client(gw).chat.completions.create(model="a", messages=HELLO)
    assert reply.choices[0].finish_reason == "stop"
    assert time.monotonic() - started >= 1.0
    assert setup.served() == (2, 0)


def test_a_long_retry_after_goes_back_and_pauses_the_target(setup: Setup, gw: str) -> None:
    emulator_control(setup.a_url, "faults", [{"status": 429, "retry_after": "3"}])
    with pytest.raises(openai.RateLimitError) as first:
        client(gw).chat.completions.create(model="a", messages=HELLO)
    assert first.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.RateLimitError) as paused:
        client(gw).chat.completions.create(model="a", messages=HELLO)
    assert "paused because Foundry asked to slow down" in paused.value.message
    assert int(paused.value.response.headers["retry-after"]) <= 3
    assert setup.served() == (1, 0), "the paused target is not called"
    assert eventually(lambda: client(gw).chat.completions.create(model="a", messages=HELLO), timeout=10)
    assert setup.served() == (2, 0), "called again once the pause was over, and not before"


def test_repeated_failures_cool_a_target_down_then_it_is_probed_again(setup: Setup) -> None:
    _, gw, _ = setup.gateway(PRIORITY, retries={"cooldown_failures": 3, "cooldown_seconds": 1})
    emulator_control(setup.a_url, "faults", [{"status": 500, "count": 3}])
    with pytest.raises(openai.InternalServerError):
        client(gw).chat.completions.create(model="a", messages=HELLO)
    assert setup.served() == (3, 0), "three attempts on the lone target"
    with pytest.raises(openai.InternalServerError) as cooled:
        client(gw).chat.completions.create(model="a", messages=HELLO)
    assert cooled.value.status_code == 503 and "failed repeatedly" in cooled.value.message
    assert setup.served() == (3, 0)
    assert metric(gw, 'foundry_gateway_target_cooldowns_total{deployment="d",upstream="a"}') == 1, "a fresh gateway"
    assert eventually(lambda: client(gw).chat.completions.create(model="a", messages=HELLO), timeout=10)
    assert setup.served() == (4, 0), "probed again once the cooldown was over, and not before"


def test_the_retry_budget_stops_a_retry_storm(setup: Setup) -> None:
    _, base, _ = setup.gateway(PRIORITY, retries={"budget_ratio": 0, "budget_min_per_second": 0})
    emulator_control(setup.a_url, "faults", [{"status": 529}])
    with pytest.raises(openai.InternalServerError) as info:
        client(base).chat.completions.create(model="ab", messages=HELLO)
    assert info.value.status_code == 529
    assert setup.served() == (1, 0)
    assert metric(base, 'foundry_gateway_retries_denied_total{route="ab"}') == 1


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_heartbeats_keep_a_quiet_stream_alive(setup: Setup, path: str) -> None:
    _, base, _ = setup.gateway(PRIORITY, server={"heartbeat_seconds": 0.3})
    emulator_control(setup.a_url, "faults", [{"stall_after": 2, "stall": 1.2}])
    body = {"model": "a", "messages": HELLO, "max_tokens": 100, "stream": True}
    with httpx.stream("POST", base + path, json=body, timeout=30) as response:
        raw = response.read().decode()
    assert raw.count(": keep-alive") >= 2
    assert raw.rstrip().endswith("data: [DONE]") or raw.rstrip().endswith('data: {"type":"message_stop"}')


def test_a_stalled_stream_ends_with_an_error_not_a_hang(setup: Setup) -> None:
    _, base, _ = setup.gateway([{"model": "slow", "targets": [{"upstream": "slow", "deployment": "d"}]}],
                               server={"heartbeat_seconds": 0.2})  # fmt: skip
    emulator_control(setup.a_url, "faults", [{"stall_after": 3, "stall": 30}])
    started = time.monotonic()
    with pytest.raises(openai.APIError, match="stalled"):
        list(client(base).chat.completions.create(model="slow", messages=HELLO, stream=True))
    assert time.monotonic() - started < 10, "heartbeats do not hide a stall from the read timeout"


def test_a_client_that_goes_away_cancels_the_upstream_request(setup: Setup) -> None:
    proc, base, _ = setup.gateway(PRIORITY)
    emulator_control(setup.a_url, "faults", [{"stall_after": 3, "stall": 60}])
    with httpx.stream(
        "POST", base + "/v1/chat/completions", json={"model": "a", "messages": HELLO, "stream": True}
    ) as r:
        next(r.iter_lines())
    deadline = time.monotonic() + 3
    while metric(base, "foundry_gateway_in_flight_requests") > 0:
        assert time.monotonic() < deadline, "the handler was not cancelled"
        time.sleep(0.05)
    assert metric(base, 'foundry_gateway_client_disconnects_total{dialect="openai",route="a"}') == 1
    assert '"client_disconnected":true' in proc.log()


def test_the_concurrency_limit_answers_429_at_once(setup: Setup) -> None:
    _, base, _ = setup.gateway(PRIORITY, server={"max_concurrent_requests": 2})
    emulator_control(setup.a_url, "faults", [{"stall_after": 2, "stall": 3, "count": 2}])
    body = {"model": "a", "messages": HELLO, "stream": True}
    done: list[str] = []

    def stream() -> None:
        with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30) as r:
            done.append(r.read().decode())

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while metric(base, "foundry_gateway_in_flight_requests") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(openai.RateLimitError) as info:
        client(base).chat.completions.create(model="a", messages=HELLO)
    assert info.value.response.headers["retry-after"] == "1"
    assert len(info.value.response.headers["x-request-id"]) == 32, "a refusal has its request id like any answer"
    assert not done, "answered while both admitted streams were still stalled: not queued behind them"
    for t in threads:
        t.join()
    assert all(d.rstrip().endswith("[DONE]") for d in done), "the admitted streams finished"
    assert metric(base, "foundry_gateway_concurrency_rejections_total") == 1


def test_sigterm_drains_open_streams(setup: Setup) -> None:
    proc, base, _ = setup.gateway(PRIORITY, server={"drain_delay_seconds": 1, "drain_timeout_seconds": 10})
    emulator_control(setup.a_url, "faults", [{"stall_after": 3, "stall": 2}])
    result: list[str] = []

    def stream() -> None:
        with httpx.stream("POST", base + "/v1/chat/completions", json={"model": "a", "messages": HELLO, "stream": True},
                          timeout=30) as r:  # fmt: skip
            result.append(r.read().decode())

    t = threading.Thread(target=stream)
    t.start()
    eventually(lambda: metric(base, "foundry_gateway_in_flight_requests") >= 1)
    os.kill(proc.popen.pid, signal.SIGTERM)
    eventually(lambda: httpx.get(proc.admin + "/readyz").status_code == 503)  # unready at once
    assert client(base).chat.completions.create(model="a", messages=HELLO).choices[0].finish_reason == "stop", (
        "still serving during the drain delay"
    )
    t.join(timeout=15)
    assert result and result[0].rstrip().endswith("data: [DONE]"), "the open stream finished"
    assert proc.popen.wait(timeout=15) == 0


def swap_config(path: Path, config: dict[str, Any]) -> None:
    replace_file(path, yaml.safe_dump(config).encode())


def wait_for_reload(proc: Process, base: str, result: str, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while metric(base, f'foundry_gateway_config_reloads_total{{result="{result}"}}') < count:
        assert time.monotonic() < deadline, proc.log()
        time.sleep(0.05)


def test_hot_reload_applies_a_valid_config_and_refuses_a_bad_one(setup: Setup) -> None:
    proc, base, path = setup.gateway(PRIORITY)
    config = yaml.safe_load(path.read_text())
    config["routes"].append({"model": "new-route", "targets": [{"upstream": "b", "deployment": "d"}]})
    swap_config(path, config)
    wait_for_reload(proc, base, "applied")
    assert "new-route" in [m.id for m in client(base).models.list()]
    assert client(base).chat.completions.create(model="new-route", messages=HELLO).choices[0].finish_reason == "stop"

    config["routes"].append({"model": "broken", "targets": [{"upstream": "nowhere", "deployment": "d"}]})
    swap_config(path, config)
    wait_for_reload(proc, base, "refused")
    assert "new-route" in [m.id for m in client(base).models.list()], "the running config stays"
    assert "config_reload_refused" in proc.log() and "nowhere" in proc.log()


def test_a_reload_under_load_leaves_open_streams_on_their_config(setup: Setup) -> None:
    proc, base, path = setup.gateway([{"model": "moving", "targets": [{"upstream": "a", "deployment": "before"}]}])
    streams = 8
    emulator_control(setup.a_url, "faults", [{"stall_after": 2, "stall": 3, "count": streams}])
    done: list[str] = []

    def stream() -> None:
        body = {"model": "moving", "messages": HELLO, "stream": True}
        with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30) as r:
            done.append(r.read().decode())

    threads = [threading.Thread(target=stream) for _ in range(streams)]
    for t in threads:
        t.start()
    while len(emulator_control(setup.a_url, "requests")) < streams:  # all open, all stalled
        time.sleep(0.05)
    config = yaml.safe_load(path.read_text())
    config["routes"] = [{"model": "moving", "targets": [{"upstream": "b", "deployment": "after"}]}]
    swap_config(path, config)
    wait_for_reload(proc, base, "applied")
    assert client(base).chat.completions.create(model="moving", messages=HELLO).choices[0].finish_reason == "stop"
    assert [r["body"]["model"] for r in emulator_control(setup.b_url, "requests")] == ["after"]
    for t in threads:
        t.join(timeout=15)
    assert len(done) == streams, "every open stream ended"
    assert all(d.rstrip().endswith("data: [DONE]") for d in done), "every open stream ended whole"
    assert {r["body"]["model"] for r in emulator_control(setup.a_url, "requests")} == {"before"}


def test_a_route_can_carry_its_own_timeouts(setup: Setup) -> None:
    _, base, _ = setup.gateway(
        [
            {
                "model": "impatient",
                "targets": [{"upstream": "a", "deployment": "d"}],
                "timeouts": {"read_seconds": 0.5},
            },
            {"model": "patient", "targets": [{"upstream": "a", "deployment": "d"}]},
        ],
        retries={"max_attempts": 1},
    )
    emulator_control(setup.a_url, "faults", [{"delay": 1}])
    with pytest.raises(openai.InternalServerError, match=r"read 0.5 s") as info:
        client(base).chat.completions.create(model="impatient", messages=HELLO)
    assert info.value.status_code == 504
    emulator_control(setup.a_url, "faults", [{"delay": 1}])
    assert client(base).chat.completions.create(model="patient", messages=HELLO).choices[0].finish_reason == "stop"


def test_heartbeats_follow_what_the_client_received_not_what_the_upstream_dripped(setup: Setup) -> None:
    _, base, _ = setup.gateway(PRIORITY, server={"heartbeat_seconds": 0.3})
    # One event, a byte every 20 ms: some 3 s in which the gateway reads but the client gets nothing.
    emulator_control(setup.a_url, "faults", [{"drip_after": 3, "drip_interval": 0.02}])
    body = {"model": "a", "messages": HELLO, "stream": True}
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30) as response:
        raw = response.read().decode()
    assert raw.rstrip().endswith("data: [DONE]")
    assert raw.count(": keep-alive") >= 4


def test_a_native_stream_whose_first_event_trickles_in_gets_heartbeats(setup: Setup) -> None:
    """The native relay holds the stream's head until message_start is whole: the client has none of it
    then, so heartbeats go out before it (some 2.5 s of a byte every 10 ms)."""
    _, base, _ = setup.gateway(PRIORITY, server={"heartbeat_seconds": 0.3})
    emulator_control(setup.a_url, "faults", [{"drip_after": 0, "drip_interval": 0.01}])
    body = {"model": "a", "messages": HELLO, "max_tokens": 100, "stream": True}
    with httpx.stream("POST", base + "/v1/messages", json=body, timeout=30) as response:
        raw = response.read().decode()
    assert raw.rstrip().endswith('data: {"type":"message_stop"}')
    head, _, _ = raw.partition("event: message_start")
    assert head.count(": keep-alive") >= 4, head


@pytest.mark.parametrize("hint", ["inf", "nan", "-5", "1e308", "Fri, 31 Dec 9999 23:59:59 GMT", "soon"])
def test_a_retry_after_no_one_could_wait_out_never_pauses_a_target_for_long(setup: Setup, hint: str) -> None:
    _, base, _ = setup.gateway(
        PRIORITY, retries={"max_attempts": 1, "cooldown_max_seconds": 1, "retry_after_cap_seconds": 0}
    )
    emulator_control(setup.a_url, "faults", [{"status": 429, "retry_after": hint}])
    with pytest.raises(openai.RateLimitError):
        client(base).chat.completions.create(model="a", messages=HELLO)
    try:
        client(base).chat.completions.create(model="a", messages=HELLO)
    except openai.RateLimitError as paused:  # a finite hint: paused, but for cooldown_max_seconds at most
        assert int(paused.response.headers["retry-after"]) <= 1
        assert eventually(lambda: client(base).chat.completions.create(model="a", messages=HELLO), timeout=5)


def test_a_reload_keeps_each_clients_rate_limit_and_each_targets_pause(setup: Setup) -> None:
    key = "sk-reload-client-8b2e"
    inbound = {"api_keys": [{"client": "steady", "sha256": hashlib.sha256(key.encode()).hexdigest(),
                             "requests_per_minute": 2}]}  # fmt: skip
    proc, base, path = setup.gateway(PRIORITY, inbound=inbound)
    limited = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
    limited.chat.completions.create(model="ab", messages=HELLO)
    emulator_control(setup.a_url, "faults", [{"status": 429, "retry_after": "30"}])
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model="a", messages=HELLO)
    with pytest.raises(openai.RateLimitError, match="over its rate limit"):
        limited.chat.completions.create(model="ab", messages=HELLO)

    config = yaml.safe_load(path.read_text())
    config["routes"].append({"model": "added", "targets": [{"upstream": "b", "deployment": "d"}]})
    swap_config(path, config)
    wait_for_reload(proc, base, "applied")
    assert "added" in proc.log()
    with pytest.raises(openai.RateLimitError, match="over its rate limit"):
        limited.chat.completions.create(model="added", messages=HELLO)
    config["inbound"]["api_keys"].append(
        {"client": "other", "sha256": hashlib.sha256(b"sk-other-client-1f").hexdigest()}
    )
    swap_config(path, config)
    wait_for_reload(proc, base, "applied", count=2)
    other = openai.OpenAI(base_url=base + "/v1", api_key="sk-other-client-1f", max_retries=0, timeout=30)
    with pytest.raises(openai.RateLimitError, match="paused because Foundry asked to slow down"):
        other.chat.completions.create(model="a", messages=HELLO)
