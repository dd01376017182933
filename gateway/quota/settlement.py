"""A request's end, as its quota pool sees it: the charge corrected to what Foundry counted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.quota.affinity import SessionEntry
from gateway.quota.book import Charge, QuotaBook


def settle_quota(
    book: QuotaBook, charge: Charge, usage: Mapping[str, Any], session: SessionEntry | None, target: bytes
) -> None:
    """Correct the charge by what Foundry counts of the answer (the request; its uncached input:
    input after the last breakpoint plus cache writes, cache reads being free; its output); remember
    how much of the session's prompt its target now holds, so its next turn is charged only the rest.
    The usage is already read and bounded (gateway/translate/usage.py)."""
    used_input = usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
    book.settle(charge, (1, used_input, usage.get("output_tokens", 0)))
    if session is not None and session.target == target:
        session.cached_tokens = usage.get("cache_read_input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
