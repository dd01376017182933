"""The shared limiter against a real Redis, in-process: what a failed or repeated charge batch does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.harness import start_redis
from gateway.config import BudgetConfig, RedisConfig
from gateway.inbound.clients import Client
from gateway.spend.limits import RedisLimiter, Reservation, Windows


class Counted:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def shared_state_failed(self, operation: str) -> None:
        self.failed.append(operation)

    def shared_state_latency(self, seconds: float) -> None:
        pass


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server, port = start_redis(tmp_path_factory.mktemp("limiter"))
    try:
        yield port
    finally:
        server.stop()


def day_tokens(port: int, client: str) -> int:
    return int(redis.Redis(port=port).get(f"fgw:{{{client}}}:tokens:{Windows.at(time.time()).day}") or 0)


async def test_a_charge_batch_sent_twice_is_applied_once(redis_port: int, tmp_path: Path) -> None:
    limiter = RedisLimiter(RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0"), Counted())
    client = Client("twice", None, None, None, BudgetConfig(tokens_per_day=1_000_000))
    try:
        limiter.settle(client, None, 120, 0.0)
        calls = limiter._take_charges()  # the batch a timeout would make the limiter send again
        await limiter._run(calls)
        await limiter._run(calls)  # Redis had applied it; the answer was lost
        assert day_tokens(redis_port, "twice") == 120
    finally:
        await limiter.close()


async def test_a_charge_redis_refuses_is_dropped_and_poisons_nothing(redis_port: int) -> None:
    recorder = Counted()
    limiter = RedisLimiter(RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0"), recorder)
    bad = Client("bad", None, None, None, BudgetConfig(tokens_per_day=1_000_000))
    good = Client("good", None, None, None, BudgetConfig(tokens_per_day=1_000_000), requests_per_minute=100)
    try:
        limiter.settle(bad, None, 2**63, 0.0)  # past what INCRBY takes: Redis refuses the script
        limiter.settle(good, None, 15, 0.0)
        standing = await limiter.admit(good)  # the charges ride with this admission's pipeline
        assert standing.requests_remaining is not None
        assert "charge_refused" in recorder.failed
        for _ in range(3):
            await limiter.admit(good)
        assert limiter._retries == [] and limiter._charges == {}, "nothing left to send again"
        assert day_tokens(redis_port, "good") == 15, "the good charge applied once"
    finally:
        await limiter.close()


async def test_an_admission_that_shares_a_pipeline_with_an_unloaded_script_counts_once(redis_port: int) -> None:
    """Redis answers NOSCRIPT for a charge whose script it has not seen, while the admission beside it
    in the pipeline has run: only the charge may be sent again."""
    redis.Redis(port=redis_port).script_flush()
    limiter = RedisLimiter(RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0"), Counted())
    client = Client("once", None, None, None, None, requests_per_minute=10)
    try:
        first = await limiter.admit(client)  # loads the admission script only
        limiter.settle(client, None, 12, 0.0)  # a charge, whose script Redis has not seen
        second = await limiter.admit(client)  # rides with it in one pipeline
        assert (first.requests_remaining, second.requests_remaining) == (9, 8)
        assert (await limiter.admit(client)).requests_remaining == 7
    finally:
        await limiter.close()


def minute_requests(port: int, client: str) -> int:
    return int(redis.Redis(port=port).get(f"fgw:{{{client}}}:requests:{Windows.at(time.time()).minute}") or 0)


class Trips(Counted):
    """Counts the admission round trips (each one's latency is reported once)."""

    def __init__(self) -> None:
        super().__init__()
        self.trips = 0

    def shared_state_latency(self, seconds: float) -> None:
        self.trips += 1


def same_minute(margin: float = 10.0) -> None:
    """Wait out the end of a minute, so what a test counts falls in one per-minute window."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


async def test_a_busy_client_is_admitted_from_its_lease_without_a_round_trip_each(redis_port: int) -> None:
    same_minute()
    recorder = Trips()
    limiter = RedisLimiter(RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0", timeout_ms=1000), recorder)
    busy = Client("busy", None, None, None, requests_per_minute=100_000)
    try:
        for _ in range(400):
            await limiter.admit(busy)
        assert recorder.trips < 40, f"{recorder.trips} round trips for 400 requests"
        assert minute_requests(redis_port, "busy") >= 400  # leased ahead of use, never behind it
    finally:
        await limiter.close()
    assert minute_requests(redis_port, "busy") == 400, "what the lease held unused went back at close"


async def test_leases_never_admit_past_a_limit_across_replicas(redis_port: int) -> None:
    same_minute()
    config = RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0", timeout_ms=1000)
    replicas = [RedisLimiter(config, Trips()), RedisLimiter(config, Trips())]
    client = Client("capped", None, None, None, requests_per_minute=1000)
    admitted = 0
    try:
        for i in range(1400):
            try:
                await replicas[i % 2].admit(client)
                admitted += 1
            except Exception as exc:  # the 429 past the limit
                assert getattr(exc, "status", None) == 429
    finally:
        for limiter in replicas:
            await limiter.close()
    assert admitted == 1000


async def test_a_lease_reserves_a_budget_ahead_and_gives_back_what_it_did_not_spend(redis_port: int) -> None:
    limiter = RedisLimiter(RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0", timeout_ms=1000), Trips())
    client = Client("budgeted", None, None, None, BudgetConfig(tokens_per_day=10_000_000))
    reserve = Reservation(500, 0.0)
    try:
        standings = [await limiter.admit(client, reserve) for _ in range(50)]
        held = day_tokens(redis_port, "budgeted")
        assert held >= 50 * 500, "every admitted request's reservation is held in Redis"
        for standing in standings:
            limiter.settle(client, standing, 100, 0.0)  # each used 100 of its 500
    finally:
        await limiter.close()
    assert day_tokens(redis_port, "budgeted") == 50 * 100, "settled to what was used; the unspent lease went back"


async def test_concurrent_requests_of_a_client_share_one_lease_round_trip(redis_port: int) -> None:
    same_minute()
    recorder = Trips()
    limiter = RedisLimiter(RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0", timeout_ms=1000), recorder)
    busy = Client("crowd", None, None, None, requests_per_minute=100_000)
    try:
        for _ in range(20):  # 20 rounds of 32 at once, as 32 connections send them
            await asyncio.gather(*(limiter.admit(busy) for _ in range(32)))
        # A round's requests wait for the one lease in flight instead of each leasing one request.
        assert recorder.trips < 200, f"{recorder.trips} round trips for 640 requests"
    finally:
        await limiter.close()
    assert minute_requests(redis_port, "crowd") == 640
