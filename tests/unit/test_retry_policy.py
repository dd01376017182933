"""The retry and routing policy, table-driven over an injected clock: what to do after a failed
attempt, the retry budget, target cooldowns and half-open probes, weighted target order, the
token bucket, and what a reload carries over."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.inbound.clients import TokenBucket
from gateway.runtime import Runtime
from gateway.upstream.retry import RetryBudget, Step, TargetHealth, after_failure


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


STEPS = [
    # (name, status, retry_after, attempt, max_attempts, lone_target, expected)
    ("a refused request is not retried", 400, None, 1, 3, False, Step.FAIL),
    ("a 404 deployment is not retried", 404, None, 1, 3, True, Step.FAIL),
    ("an overload moves on", 529, None, 1, 3, False, Step.ANOTHER),
    ("a 500 moves on", 500, None, 1, 3, True, Step.ANOTHER),
    ("no answer at all moves on", None, None, 1, 3, False, Step.ANOTHER),
    ("the last attempt fails", 503, None, 3, 3, False, Step.FAIL),
    ("one attempt only", 529, None, 1, 1, False, Step.FAIL),
    ("a lone target waits out a short hint", 429, 1.0, 1, 3, True, Step.WAIT),
    ("a lone target hands a long hint back", 429, 30.0, 1, 3, True, Step.FAIL),
    ("a hint at the cap is waited out", 429, 5.0, 1, 3, True, Step.WAIT),
    ("with other targets a hint means fall back", 429, 1.0, 1, 3, False, Step.ANOTHER),
    ("a lone target's last attempt does not wait", 429, 1.0, 3, 3, True, Step.FAIL),
]


@pytest.mark.parametrize(
    ("name", "status", "retry_after", "attempt", "max_attempts", "lone", "expected"), STEPS, ids=[s[0] for s in STEPS]
)
def test_after_failure(
    name: str,
    status: int | None,
    retry_after: float | None,
    attempt: int,
    max_attempts: int,
    lone: bool,
    expected: Step,
) -> None:
    step = after_failure(
        status, retry_after, attempt=attempt, max_attempts=max_attempts, lone_target=lone, wait_cap=5.0
    )
    assert step is expected


def test_the_retry_budget_allows_its_share_and_its_floor_then_refuses() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_second=0.5, window=10, clock=clock)  # floor: 5 per window
    assert [budget.try_retry() for _ in range(6)] == [True] * 5 + [False]
    for _ in range(100):
        budget.record_request()
    assert [budget.try_retry() for _ in range(16)] == [True] * 15 + [False], "20% of 100, 5 spent already"
    clock.now += 11  # the window has slid past all of it
    assert budget.try_retry()


def test_a_target_cools_after_consecutive_failures_and_is_probed_once_it_has_cooled() -> None:
    clock = Clock()
    health = TargetHealth(threshold=3, cooldown=10, clock=clock)
    assert [health.failed(500) for _ in range(3)] == [False, False, True]
    assert not health.available() and health.remaining() == 10
    clock.now += 10
    assert health.available(), "half-open: one probe may go"
    assert health.failed(500), "a failed probe cools it again at once"
    assert not health.available()
    clock.now += 10
    health.succeeded()
    assert health.available() and health.failures == 0


def test_a_retry_after_cools_a_target_at_once_and_says_it_was_throttled() -> None:
    clock = Clock()
    health = TargetHealth(threshold=3, cooldown=10, clock=clock)
    assert health.failed(429, retry_after=30)
    assert health.cooling_status == 429 and health.remaining() == 30


def test_the_token_bucket_refills_by_the_minute_and_may_go_into_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(60, clock)  # one a second
    assert bucket.wait() == 0
    bucket.take(60)
    assert bucket.wait() == pytest.approx(1.0)
    clock.now += 0.5
    assert bucket.wait() == pytest.approx(0.5)
    bucket.take(100)  # a long answer, paid for by the requests after it
    assert bucket.wait() == pytest.approx(100.5)
    clock.now += 3600
    assert bucket.wait() == 0 and bucket.level == 60, "refilled, never past its capacity"


AUTH = {"type": "api_key", "key_env": "K"}


def config(**extra: Any) -> Any:
    return parse_config(
        {
            "upstreams": [
                {
                    "name": name,
                    "base_url": f"https://{name}.example/anthropic",
                    "auth": {"type": "api_key", "key_env": "K"},
                }
                for name in ("east", "west", "north")
            ],
            "routes": [
                {
                    "model": "m",
                    "targets": [
                        {"upstream": "east", "deployment": "d", "weight": 6},
                        {"upstream": "west", "deployment": "d", "weight": 3},
                        {"upstream": "north", "deployment": "d", "weight": 1},
                    ],
                    **extra,
                }
            ],
            "inbound": {"api_keys": [{"client": "c", "sha256": "0" * 64, "requests_per_minute": 2}]},
        }
    )


def test_weighted_targets_lead_in_proportion_to_their_weight_and_every_target_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("K", "key-for-tests-0000")
    runtime = Runtime(config(), rng=random.Random(7))
    route = runtime.routes["m"]
    orders = [tuple(t.upstream.name for t in runtime.routing.plan(route)) for _ in range(10_000)]
    assert all(sorted(order) == ["east", "north", "west"] for order in orders), "fallbacks cover every target"
    firsts = Counter(order[0] for order in orders)
    assert firsts["east"] / 10_000 == pytest.approx(0.6, abs=0.02)
    assert firsts["west"] / 10_000 == pytest.approx(0.3, abs=0.02)
    assert firsts["north"] / 10_000 == pytest.approx(0.1, abs=0.02)


def test_priority_keeps_the_listed_order_and_skips_a_cooling_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "key-for-tests-0000")
    runtime = Runtime(config(strategy="priority"))
    route = runtime.routes["m"]
    assert [t.upstream.name for t in runtime.routing.plan(route)] == ["east", "west", "north"]
    runtime.routing.health(route.targets[0]).failed(429, retry_after=30)
    assert [t.upstream.name for t in runtime.routing.plan(route)] == ["west", "north"]


def test_a_reload_carries_health_budget_and_buckets_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "key-for-tests-0000")
    old = Runtime(config())
    old.routing.health(old.routes["m"].targets[0]).failed(429, retry_after=30)
    client = old.inbound.clients["c"] if old.inbound else None
    assert client is not None and client.requests is not None
    client.requests.take(2)
    new = Runtime(config(max_tokens_default=100), previous=old)
    assert not new.routing.health(new.routes["m"].targets[0]).available(), "still paused"
    assert new.routing.budget is old.routing.budget
    assert new.inbound is not None and new.inbound.clients["c"].requests is client.requests
