"""Prices, cost, windows and the per-pod limiter: table-driven, with a clock the tests set."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.config import BudgetConfig, PriceConfig
from gateway.errors import Dialect, GatewayError
from gateway.inbound.clients import Client, TokenBucket
from gateway.spend.limits import LocalLimiter, Standing, Windows, reservation
from gateway.spend.prices import Price, Spent, Tokens, cost_usd, list_price


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("now", "day", "day_end", "month", "month_end"),
    [
        ("2026-12-02T06:38:00", "20261202", "2026-12-03T00:00:00", "202612", "2027-01-01T00:00:00"),
        ("2026-12-31T23:59:59", "20261231", "2027-01-01T00:00:00", "202612", "2027-01-01T00:00:00"),
        ("2028-02-29T12:00:00", "20280229", "2028-03-01T00:00:00", "202802", "2028-03-01T00:00:00"),
        ("2027-01-31T00:00:00", "20270131", "2027-02-01T00:00:00", "202701", "2027-02-01T00:00:00"),
    ],
)
def test_utc_windows(now: str, day: str, day_end: str, month: str, month_end: str) -> None:
    windows = Windows.at(at(now))
    assert (windows.day, windows.day_end, windows.month, windows.month_end) == (day, at(day_end), month, at(month_end))
    assert windows.minute_end - at(now) <= 60


USAGE = {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 5000,
         "cache_creation_input_tokens": 3000, "cache_creation_1h_input_tokens": 1000}  # fmt: skip


@pytest.mark.parametrize(
    ("price", "usage", "usd"),
    [
        # Sonnet list price: 1000*3 + 200*15 + 5000*0.3 + 2000*3.75 + 1000*6, per million.
        (Price.of(PriceConfig(input=3, output=15)), USAGE, (3000 + 3000 + 1500 + 7500 + 6000) / 1e6),
        (Price.of(PriceConfig(input=3, output=15, cache_read=0, cache_write=3, cache_write_1h=3)),
         USAGE, (3000 + 3000 + 0 + 6000 + 3000) / 1e6),
        (Price.of(PriceConfig(input=1, output=5)), {"input_tokens": 10, "output_tokens": -4, "x": "9"}, 10 / 1e6),
    ],
)  # fmt: skip
def test_cost_is_the_price_of_each_kind_of_token(price: Price, usage: dict[str, Any], usd: float) -> None:
    assert cost_usd(price, Tokens.of(usage)) == pytest.approx(usd)


def test_cache_savings_and_a_route_without_a_price() -> None:
    spent = Spent.of(USAGE, Price.of(PriceConfig(input=3, output=15)))
    assert spent.saved_usd == pytest.approx(5000 * (3 - 0.3) / 1e6)
    assert spent.tokens.total == 1000 + 200 + 5000 + 3000
    unpriced = Spent.of(USAGE, None)
    assert unpriced.usd is None and unpriced.tokens.by_kind()[-1] == ("cache_write", 3000)


@pytest.mark.parametrize(
    ("names", "input_price"),
    [
        (("claude-sonnet-4-5", "route"), 3),
        (("my-deployment", "claude-opus-4-1"), 15),
        (("Claude-Opus-4-5-prod", "x"), 5),
        (("claude-haiku-4-5",), 1),
        (("gpt-4o",), None),
    ],
)
def test_list_prices_by_the_deployment_then_the_route(names: tuple[str, ...], input_price: float | None) -> None:
    price = list_price(*names)
    assert (price.input if price else None) == input_price


def test_standing_in_each_dialects_header_names() -> None:
    standing = Standing(requests_remaining=7, tokens_remaining=900, reset_seconds=12.4)
    assert Standing(7, 900, 12.4).headers(Dialect.OPENAI) == {
        "x-ratelimit-remaining-requests": "7", "x-ratelimit-reset-requests": "12s",
        "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "12s",
    }  # fmt: skip
    assert standing.headers(Dialect.RESPONSES) == standing.headers(Dialect.OPENAI)
    native = standing.headers(Dialect.ANTHROPIC)
    assert (
        native["anthropic-ratelimit-requests-remaining"] == "7"
        and native["anthropic-ratelimit-tokens-reset"][-1] == "Z"
    )
    assert Standing().headers(Dialect.ANTHROPIC) == {}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_per_pod_budget_refuses_after_the_spend_and_opens_the_next_day() -> None:
    clock = Clock(at("2026-12-02T23:00:00"))
    limiter = LocalLimiter(clock)
    client = Client("team", None, None, None, BudgetConfig(usd_per_day=1.0, tokens_per_month=10_000))
    asyncio.run(limiter.admit(client))
    limiter.settle(client, None, 500, 0.6)
    asyncio.run(limiter.admit(client))  # $0.60 of $1: still in
    limiter.settle(client, None, 500, 0.6)  # crosses it: the request that did finishes
    with pytest.raises(GatewayError) as refused:
        asyncio.run(limiter.admit(client))
    assert refused.value.status == 429 and "usd_per_day budget ($1.20 of $1.00)" in refused.value.message
    assert "resets at 2026-12-03T00:00:00Z" in refused.value.message and refused.value.headers["retry-after"] == "3600"
    clock.now = at("2026-12-03T00:00:01")
    asyncio.run(limiter.admit(client))  # a new day; the month's tokens still count
    limiter.settle(client, None, 9_500, 0.1)
    with pytest.raises(GatewayError, match="tokens_per_month budget"):
        asyncio.run(limiter.admit(client))


def test_per_pod_rate_limits_say_which_one() -> None:
    clock = Clock(1000.0)
    client = Client("team", None, TokenBucket(2, clock), None, None, requests_per_minute=2)
    limiter = LocalLimiter(clock)
    standing = asyncio.run(limiter.admit(client))
    assert standing.requests_remaining == 1
    asyncio.run(limiter.admit(client))
    with pytest.raises(GatewayError, match=r"requests_per_minute: 2\) on this gateway pod"):
        asyncio.run(limiter.admit(client))


def test_a_per_pod_reservation_holds_the_room_until_its_request_settles() -> None:
    """Requests at once against 1,000 tokens a day, each reserving 800: the second is admitted on
    what is left (the bound: one request's reservation past the budget), the third is refused while
    both are in flight, and admitted once they have settled what they really used."""
    clock = Clock(at("2026-12-02T12:00:00"))
    limiter = LocalLimiter(clock)
    client = Client("team", None, None, None, BudgetConfig(tokens_per_day=1_000))
    price = Price.of(PriceConfig(input=3, output=15))
    first = asyncio.run(limiter.admit(client, reservation(300, 500, [price, None])))
    assert first.reserved.tokens == 800 and first.reserved.usd == pytest.approx((300 * 3 + 500 * 15) / 1e6)
    second = asyncio.run(limiter.admit(client, reservation(300, 500, [price])))  # 800 of 1,000 held
    with pytest.raises(GatewayError, match=r"tokens_per_day budget \(1,600 of 1,000 tokens\)"):
        asyncio.run(limiter.admit(client, reservation(300, 500, [price])))
    limiter.settle(client, first, 120, 0.001)  # each used far less than it reserved
    limiter.settle(client, second, 100, 0.001)
    asyncio.run(limiter.admit(client, reservation(300, 500, [price])))  # 220 used: room again
