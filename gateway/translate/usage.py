"""Anthropic usage, read once the same way for every dialect: counts that are whole numbers, nothing else.

An upstream's usage is data from outside. A list, a string, a negative count or one no request
could reach where a number belongs must not reach the metrics, the rate limiter (whose Redis
counters a count of 2**63 would overflow) or the access log, nor break a stream. A count left
out this way is missing from the answer's usage, which the end of the request reports.
"""

from __future__ import annotations

from typing import Any

# Far above any request's tokens (a million-token context, 128k of output), far below what
# overflows a 64-bit counter however many requests add to it.
MAX_TOKEN_COUNT = 100_000_000


def merge_usage(into: dict[str, Any], usage: object) -> None:
    """Copy the plausible token counts of `usage` (a message's, or an event's cumulative ones) into `into`."""
    if isinstance(usage, dict):
        for key, value in usage.items():
            # bool is an int too, and is no count (the check is inline: it runs for every field of every answer)
            if type(value) is int and 0 <= value <= MAX_TOKEN_COUNT:
                into[key] = value
            elif key == "cache_creation" and isinstance(value, dict):
                # The 1-hour share of the cache writes, priced apart (gateway/spend/prices.py).
                hour = value.get("ephemeral_1h_input_tokens")
                if type(hour) is int and 0 <= hour <= MAX_TOKEN_COUNT:
                    into["cache_creation_1h_input_tokens"] = hour


# A content_block_delta event's framing around its text, in Anthropic's own bytes.
_DELTA_FRAMING_BYTES = 112
BYTES_PER_TOKEN = 4  # text's bytes per token, near enough for an estimate (JSON too)


def relayed_output_tokens(upstream_bytes: int, delta_events: int) -> int:
    """Output tokens a stream had carried when it was cut: its content deltas' text at four bytes a token."""
    return max(0, upstream_bytes - delta_events * _DELTA_FRAMING_BYTES) // BYTES_PER_TOKEN


def settled_usage(
    reported: dict[str, Any], estimate: tuple[int, int] | None, relayed_output: int | None
) -> tuple[dict[str, Any], str | None]:
    """What a request is charged for, and where that came from.

    `reported` is the usage Foundry reported; `estimate` (input, max output tokens) is set when
    Foundry was asked for an answer, whether or not one came; `relayed_output` is set for a stream
    cut before its end (the client left, or the stream broke), with the output it had carried.
    Foundry bills what it generated, so a request that lost its usage is charged an estimate.
    """
    if relayed_output is None and "input_tokens" in reported and "output_tokens" in reported:
        return reported, "reported"  # nearly every request
    if estimate is None:
        return reported, "reported" if reported else None
    if relayed_output is not None and "input_tokens" in reported:
        # A cut stream: message_start told its input; its output so far is what was relayed.
        output = min(estimate[1], max(reported.get("output_tokens", 0), relayed_output))
        return {**reported, "output_tokens": output}, "partial"
    return {"input_tokens": estimate[0], "output_tokens": estimate[1]}, "estimated"
