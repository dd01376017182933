"""The shared Redis (state.redis): one way to connect to it and one way to report it failing,
for everything that keeps state there (the limiter, the response store)."""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from foundry_common import scrub
from gateway.config import RedisConfig

log = structlog.get_logger("gateway")

# What a Redis call raises when Redis is down, slow or refuses: counted, never a 500.
FAILURES = (TimeoutError, redis.exceptions.RedisError, OSError)


def redis_client(config: RedisConfig, timeout_seconds: float | None = None) -> aioredis.Redis:
    """A client for the configured Redis, every call bounded by timeout_ms (or `timeout_seconds`)."""
    url = config.resolved_url
    password = aioredis.connection.parse_url(url).get("password")
    if isinstance(password, str):
        scrub.remember(password)  # redis-py's errors name the host, never the password: belt and braces
    timeout = timeout_seconds if timeout_seconds is not None else config.timeout_ms / 1000
    return aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False)


class FailureReport:
    """Each failure counted (foundry_gateway_shared_state_errors_total); logged at most once a
    second, so an outage does not become a log flood."""

    __slots__ = ("_last_logged", "_recorder")

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder
        self._last_logged = 0.0

    def __call__(self, operation: str, exc: BaseException) -> None:
        self._recorder.shared_state_failed(operation)
        now = time.monotonic()
        if now - self._last_logged >= 1.0:
            self._last_logged = now
            log.warning("shared_state_failed", operation=operation, error=scrub.scrub(f"{type(exc).__name__}: {exc}"))
