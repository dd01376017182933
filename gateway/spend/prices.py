"""Prices per million tokens, and what a request's usage cost. Pure.

A price is resolved once per config load for every target (its own, else its route's, else the
list price of the Claude model its deployment or route names), so a request pays one multiply
per token kind. Usage is what Foundry reported: cache reads and writes priced on their own,
thinking counted in the output tokens.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import PriceConfig

MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_write_1h: float
    cache_read: float

    @classmethod
    def of(cls, config: PriceConfig) -> Price:
        # Claude's multipliers: a 5-minute write costs 1.25 x input, a 1-hour write 2 x, a read 0.1 x.
        return cls(
            config.input,
            config.output,
            config.cache_write if config.cache_write is not None else config.input * 1.25,
            config.cache_write_1h if config.cache_write_1h is not None else config.input * 2,
            config.cache_read if config.cache_read is not None else config.input * 0.1,
        )


def _list(input_price: float, output_price: float) -> Price:
    return Price.of(PriceConfig(input=input_price, output=output_price))


# Anthropic's list prices, which Foundry bills Claude at, as published at
# https://docs.claude.com/en/docs/about-claude/pricing on 2026-11-30. Matched against a target's
# deployment name, then its route's name; the first pattern that matches wins. A contract
# price goes in the config (`price` on the route or target) and wins over these.
PRICES_AS_OF = "2026-11-30"
LIST_PRICES: tuple[tuple[str, Price], ...] = (
    ("*opus-4-5*", _list(5, 25)),
    ("*opus-4-1*", _list(15, 75)),
    ("*opus-4*", _list(15, 75)),
    ("*sonnet-4*", _list(3, 15)),
    ("*sonnet-3-7*", _list(3, 15)),
    ("*haiku-4-5*", _list(1, 5)),
    ("*haiku-3-5*", _list(0.8, 4)),
)


def list_price(*names: str) -> Price | None:
    for name in names:
        for pattern, price in LIST_PRICES:
            if fnmatch.fnmatchcase(name.lower(), pattern):
                return price
    return None


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if type(value) is int and value > 0 else 0


@dataclass(frozen=True, slots=True)
class Tokens:
    """A request's tokens by kind, as Foundry counted them."""

    input: int
    output: int
    cache_read: int
    cache_write: int  # 5-minute writes
    cache_write_1h: int

    @classmethod
    def of(cls, usage: Mapping[str, Any]) -> Tokens:
        writes = _count(usage, "cache_creation_input_tokens")
        writes_1h = min(writes, _count(usage, "cache_creation_1h_input_tokens"))
        return cls(
            _count(usage, "input_tokens"),
            _count(usage, "output_tokens"),
            _count(usage, "cache_read_input_tokens"),
            writes - writes_1h,
            writes_1h,
        )

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write + self.cache_write_1h

    def by_kind(self) -> tuple[tuple[str, int], ...]:
        """The metric's token types: writes of both lifetimes are cache_write."""
        return (
            ("input", self.input),
            ("output", self.output),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write + self.cache_write_1h),
        )


def cost_usd(price: Price, tokens: Tokens) -> float:
    return (
        tokens.input * price.input
        + tokens.output * price.output
        + tokens.cache_read * price.cache_read
        + tokens.cache_write * price.cache_write
        + tokens.cache_write_1h * price.cache_write_1h
    ) / MILLION


def cache_savings_usd(price: Price, tokens: Tokens) -> float:
    """What the cache reads saved over paying for the same tokens as input."""
    return tokens.cache_read * (price.input - price.cache_read) / MILLION


@dataclass(frozen=True, slots=True)
class Spent:
    """What one request used and cost; usd is None on a route without a price."""

    tokens: Tokens
    usd: float | None
    saved_usd: float

    @classmethod
    def of(cls, usage: Mapping[str, Any], price: Price | None) -> Spent:
        tokens = Tokens.of(usage)
        if price is None:
            return cls(tokens, None, 0.0)
        return cls(tokens, cost_usd(price, tokens), cache_savings_usd(price, tokens))
