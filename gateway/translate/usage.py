"""Anthropic usage, read once the same way for every dialect: counts that are whole numbers, nothing else.

An upstream's usage is data from outside. A list, a string or a negative count where a number
belongs must not reach the metrics, the rate limiter or the access log, nor break a stream.
"""

from __future__ import annotations

from typing import Any


def merge_usage(into: dict[str, Any], usage: object) -> None:
    """Copy the non-negative integer counts of `usage` (a message's, or an event's cumulative ones) into `into`."""
    if isinstance(usage, dict):
        for key, value in usage.items():
            if type(value) is int and value >= 0:  # bool is an int too, and is no count
                into[key] = value
            elif key == "cache_creation" and isinstance(value, dict):
                # The 1-hour share of the cache writes, priced apart (gateway/spend/prices.py).
                hour = value.get("ephemeral_1h_input_tokens")
                if type(hour) is int and hour >= 0:
                    into["cache_creation_1h_input_tokens"] = hour
