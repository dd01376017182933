"""Refresh timing and backoff: pure functions, table-driven."""

from __future__ import annotations

import pytest

from token_sidecar.schedule import MIN_DELAY, backoff_delay, refresh_delay

NOW = 1_000_000.0

REFRESH = [
    ("two thirds of the lifetime, no jitter draw", 3600, None, 0.1, 0.0, 2400.0),
    ("jitter moves it earlier, never later", 3600, None, 0.1, 1.0, 2160.0),
    ("Entra's refresh_on wins", 3600, NOW + 1800, 0.1, 0.0, 1800.0),
    ("a refresh_on in the past is ignored", 3600, NOW - 5, 0.0, 0.0, 2400.0),
    ("short lifetimes still wait a little", 0.3, None, 0.0, 0.0, MIN_DELAY),
    ("an expired token refreshes at once (after the floor)", -10, None, 0.0, 0.0, MIN_DELAY),
]


@pytest.mark.parametrize(
    ("name", "lifetime", "refresh_on", "jitter", "draw", "expected"), REFRESH, ids=[r[0] for r in REFRESH]
)
def test_refresh_delay(
    name: str, lifetime: float, refresh_on: float | None, jitter: float, draw: float, expected: float
) -> None:
    delay = refresh_delay(NOW, NOW + lifetime, refresh_on, fraction=2 / 3, jitter=jitter, draw=draw)
    assert delay == pytest.approx(expected)


BACKOFF = [
    (1, 0.0, 1.0),
    (1, 1.0, 2.0),
    (2, 1.0, 4.0),
    (3, 0.5, 6.0),
    (10, 1.0, 300.0),
    (50, 0.0, 150.0),
    (1_025, 1.0, 300.0),  # 2 ** 1024 overflows a float: the loop once died here
    (10**6, 0.0, 150.0),
]


@pytest.mark.parametrize(("failures", "draw", "expected"), BACKOFF)
def test_backoff_is_exponential_capped_and_jittered(failures: int, draw: float, expected: float) -> None:
    assert backoff_delay(failures, initial=2.0, maximum=300.0, draw=draw) == pytest.approx(expected)
