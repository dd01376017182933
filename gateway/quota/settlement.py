"""A request's end, as its quota pool sees it: the charge corrected to what Foundry counted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.quota.affinity import Sessions
from gateway.quota.book import Charge, QuotaBook
from gateway.quota.meter import Demand


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if type(value) is int and value > 0 else 0


def counted(usage: Mapping[str, Any]) -> Demand:
    """What Foundry counts of an answer against quota: the request; its uncached input (input after
    the last breakpoint plus cache writes; cache reads are free); its output."""
    return Demand(
        1,
        _count(usage, "input_tokens") + _count(usage, "cache_creation_input_tokens"),
        _count(usage, "output_tokens"),
    )


def settle_quota(
    book: QuotaBook,
    sessions: Sessions,
    charge: Charge,
    usage: Mapping[str, Any],
    session: bytes | None,
    target: bytes,
) -> Demand:
    """Correct the charge by the usage the request settled on; remember how much of the session's
    prompt its target now holds, so its next turn is charged only the rest. Returns what was used."""
    used = counted(usage)
    book.settle(charge, used)
    if session is not None:
        cached = _count(usage, "cache_read_input_tokens") + _count(usage, "cache_creation_input_tokens")
        sessions.answered(session, target, cached)
    return used
