"""Retry budget, target cooldown, retry-after parsing and what to do after a failed attempt:
the policy behind retries and fallbacks.

Pure logic over an injected clock, so the policy is tested without sleeping; the exchange
(gateway/upstream/exchange.py) asks it and does what it says.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Mapping
from enum import Enum

# Answers worth another attempt (elsewhere, or later): the request itself was fine.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


class Step(Enum):
    """What to do after a failed attempt."""

    ANOTHER = "another"  # the next attempt: the next target, or the same one again
    WAIT = "wait"  # wait out the upstream's retry-after, then the same target again
    FAIL = "fail"  # this failure goes to the client now


def after_failure(
    status: int | None,
    retry_after: float | None,
    *,
    attempt: int,
    max_attempts: int,
    lone_target: bool,
    wait_cap: float,
) -> Step:
    """After attempt number `attempt` (from 1) failed with `status` (None: no usable answer at all,
    a connection error, a timeout, an answer refused). A request Foundry refused as such is not
    retried; a lone target's short retry-after is waited out, a long one goes back to the client.
    Whether a retry is then made also depends on the target's health and the retry budget, which
    the exchange asks next."""
    if status is not None and status not in RETRYABLE_STATUSES:
        return Step.FAIL
    if attempt >= max_attempts:
        return Step.FAIL
    if lone_target and retry_after is not None:
        return Step.FAIL if retry_after > wait_cap else Step.WAIT
    return Step.ANOTHER


class RetryBudget:
    """Retries may be at most `ratio` of the requests seen over `window` seconds, plus a small floor.

    Counts live in one-second buckets, so the window slides without keeping every timestamp.
    """

    def __init__(
        self, ratio: float, min_per_second: float, window: int = 10, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ratio = ratio
        self._floor = min_per_second * window
        self._window = window
        self._clock = clock
        self._requests = [0] * window
        self._retries = [0] * window
        self._stamps = [-1] * window

    def _slot(self) -> int:
        second = int(self._clock())
        slot = second % self._window
        if self._stamps[slot] != second:
            self._stamps[slot] = second
            self._requests[slot] = 0
            self._retries[slot] = 0
        return slot

    def _totals(self) -> tuple[int, int]:
        oldest = int(self._clock()) - self._window
        live = [i for i, stamp in enumerate(self._stamps) if stamp > oldest]
        return sum(self._requests[i] for i in live), sum(self._retries[i] for i in live)

    def configure(self, ratio: float, min_per_second: float) -> RetryBudget:
        """New settings from a reloaded config; the window's counts carry over."""
        self._ratio = ratio
        self._floor = min_per_second * self._window
        return self

    def record_request(self) -> None:
        self._requests[self._slot()] += 1

    def try_retry(self) -> bool:
        slot = self._slot()
        requests, retries = self._totals()
        if retries + 1 > max(self._floor, self._ratio * requests):
            return False
        self._retries[slot] += 1
        return True


class TargetHealth:
    """Consecutive failures of one target; enough of them, or a retry-after, cool it down."""

    __slots__ = ("_clock", "_cooldown", "_threshold", "cooling_status", "cooling_until", "failures")

    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self.failures = 0
        self.cooling_until = 0.0
        self.cooling_status = 503  # what to answer while it cools: 429 when Foundry asked for the pause

    def configure(self, threshold: int, cooldown: float) -> TargetHealth:
        """New settings from a reloaded config; the target's failures and cooldown carry over."""
        self._threshold = threshold
        self._cooldown = cooldown
        return self

    def available(self) -> bool:
        # Past its cooldown a target is tried again (half-open): one success closes it, a failure reopens it.
        return self._clock() >= self.cooling_until

    def remaining(self) -> float:
        return max(0.0, self.cooling_until - self._clock())

    def succeeded(self) -> None:
        self.failures = 0
        self.cooling_until = 0.0

    def failed(self, status: int | None = None, retry_after: float | None = None) -> bool:
        """Count a failure (status None: no answer at all); True when this one started a cooldown."""
        self.failures += 1
        now = self._clock()
        if retry_after is not None and retry_after > 0:
            self.cooling_until = max(self.cooling_until, now + retry_after)
            self.cooling_status = 429 if status == 429 else 503
            return True
        if self.failures >= self._threshold:
            self.cooling_until = now + self._cooldown
            self.cooling_status = 503
            return True
        return False


def retry_after_seconds(headers: Mapping[str, str], cap: float, now: float | None = None) -> float | None:
    """Seconds from `retry-after-ms`, else `retry-after` (seconds or an HTTP date), as Anthropic's SDK reads them.

    An upstream's hint pauses a target for every caller, so it is not taken on trust: a value
    that is not a finite, non-negative number (inf, nan, -5, garbage, a date before now) is
    ignored, and the target cools as for any failure; a finite one is clamped to `cap`.
    """
    ms = headers.get("retry-after-ms")
    if ms:
        seconds = _finite(ms)
        if seconds is not None:
            return min(seconds / 1000, cap)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
        if not math.isfinite(seconds) or seconds < 0:
            return None
    return min(seconds, cap)


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
