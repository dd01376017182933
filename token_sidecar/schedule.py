"""When to refresh and how long to back off: pure functions of the clock and a random draw."""

from __future__ import annotations

MIN_DELAY = 0.5  # never spin, whatever the token's lifetime


def refresh_delay(
    now: float,
    expires_on: float,
    refresh_on: float | None,
    *,
    fraction: float,
    jitter: float,
    draw: float,
) -> float:
    """Seconds until the next refresh of a token just obtained at `now`.

    Entra's `refresh_on` wins when it lies ahead; otherwise at `fraction` of the lifetime.
    Jitter only moves the refresh earlier (by up to `jitter` of the wait), so pods that
    started together spread out without ever running a token closer to its expiry.
    """
    wait = refresh_on - now if refresh_on is not None and refresh_on > now else (expires_on - now) * fraction
    wait -= wait * jitter * draw
    return max(wait, MIN_DELAY)


# 2 ** 60 times any sane initial delay is past any maximum; a larger exponent would only
# overflow the float (after some 1,025 failures: 64 hours into an Entra outage).
_MAX_EXPONENT = 60


def backoff_delay(failures: int, *, initial: float, maximum: float, draw: float) -> float:
    """Capped exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(maximum, initial * 2.0 ** min(max(failures - 1, 0), _MAX_EXPONENT))
    return float(ceiling / 2 + ceiling / 2 * draw)
