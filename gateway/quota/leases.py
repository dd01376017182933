"""Quota pools shared by every replica through Redis, without Redis on any request's path.

Redis holds each pool's buckets, refilled continuously from Redis's own clock. Every quarter
second each replica leases what it expects to spend before the next round (its recent pace,
plus what its waiting requests lack) and gives back what it holds beyond twice that; requests
spend only what their replica holds. The pool is overrun by no more than Foundry's own estimate
error. Redis down: each replica meters its share of the pool (1 / state.replicas) from the clock
until a lease succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from gateway.config import RedisConfig
from gateway.quota.book import QuotaBook
from gateway.quota.meter import PoolMeter
from gateway.shared_state import FAILURES, FailureReport, redis_client

log = structlog.get_logger("gateway")

LEASE_INTERVAL = 0.25
_HORIZON = 2 * LEASE_INTERVAL  # a lease covers this much use: a late round does not starve requests
_LEASE_TIMEOUT_SECONDS = 1.0  # off the request path: a slow Redis delays a round, it fails no request

# KEYS[1]: the pool's hash. ARGV: a drain flag (a 429 was seen), then for each dimension its rate per
# millisecond (negative: unmetered), capacity, ask and give. Returns each dimension's grant.
_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'ts', 'l1', 'l2', 'l3')
local ts = tonumber(state[1]) or now
local drain = ARGV[1] == '1'
local out = {}
for i = 1, 3 do
  local base = 2 + (i - 1) * 4
  local rate, cap = tonumber(ARGV[base]), tonumber(ARGV[base + 1])
  local ask, give = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  if rate < 0 then
    out[i] = '0'
  else
    local level = tonumber(state[i + 1]) or cap
    level = math.min(cap, level + math.max(0, now - ts) * rate + give)
    if drain then level = math.min(level, 0) end
    local grant = math.min(ask, math.max(level, 0))
    redis.call('HSET', KEYS[1], 'l' .. i, tostring(level - grant))
    out[i] = tostring(grant)
  end
end
redis.call('HSET', KEYS[1], 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], 600000)
return out
"""


class SharedPools:
    """The lease rounds of one book's metered pools: started with it, closed with the config that made it."""

    def __init__(self, config: RedisConfig, book: QuotaBook, recorder: Any) -> None:
        self._redis = redis_client(config, max(_LEASE_TIMEOUT_SECONDS, config.timeout_ms / 1000))
        self._script = self._redis.register_script(_LEASE)
        self.config = config
        self._report = FailureReport(recorder)
        self._last = time.monotonic()
        self.follow(book)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the rounds (once; in the event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def follow(self, book: QuotaBook) -> None:
        """Lease for `book`'s pools from now on (a reload that keeps the same Redis)."""
        self._book = book
        self._meters = [m for m in book.meters.values() if m.metered]

    async def _run(self) -> None:
        while True:
            try:
                await self.lease_round()
            except Exception:  # a bug here must not leave leased pools with nothing to refill them
                log.exception("quota_lease_round_failed")
                for meter in self._meters:
                    meter.share_alone()
            await asyncio.sleep(LEASE_INTERVAL)

    async def lease_round(self) -> None:
        now = time.monotonic()
        seconds, self._last = now - self._last, now
        for meter in self._meters:
            asks, gives = meter.lease_terms(seconds, _HORIZON)
            try:
                grants = await self._lease(meter, asks, gives)
            except FAILURES as exc:
                self._report("quota_lease", exc)
                meter.share_alone()
                continue
            meter.granted(grants, tuple(gives))
        self._book.returned()

    async def _lease(
        self, meter: PoolMeter, asks: list[float], gives: list[float], drain: bool | None = None
    ) -> tuple[float, ...]:
        if drain is None:
            drain, meter.throttled_since_lease = meter.throttled_since_lease, False
        args: list[Any] = ["1" if drain else "0"]
        caution = meter.caution(time.monotonic())
        for i, rate in enumerate(meter.rates):
            if rate is None:
                args += [-1, 0, 0, 0]
            else:
                args += [rate * caution / 1000, meter.capacity[i], asks[i], gives[i]]
        result = await self._script(keys=[f"{self.config.key_prefix}{{quota:{meter.name}}}"], args=args)
        return tuple(float(v) for v in result)

    async def close(self) -> None:
        """Stop leasing and give back what this replica holds, so the other replicas may spend it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for meter in self._meters:
            if meter.leased:
                held = [max(0.0, level) for level in meter.levels()]
                with contextlib.suppress(*FAILURES):
                    await self._lease(meter, [0.0, 0.0, 0.0], held, drain=False)
                    meter.granted((0.0, 0.0, 0.0), tuple(held))
                # A reload that drops state.redis keeps the meter: from now on it refills from the clock
                # (a lease round of another Redis, if there is one, takes it back at once).
                meter.share_alone()
        await self._redis.aclose()


def shared_pools_for(
    config: RedisConfig | None, book: QuotaBook, recorder: Any, previous: SharedPools | None
) -> SharedPools | None:
    """The lease rounds for a config: none without Redis or metered pools; kept across a reload
    that keeps the same Redis."""
    if config is None or not any(m.metered for m in book.meters.values()):
        return None
    if previous is not None and previous.config == config:
        previous.follow(book)
        return previous
    return SharedPools(config, book, recorder)
