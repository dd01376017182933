"""Requests being served, against the configured limit; and whether the pod is draining."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Load:
    """One count the concurrency limit, the in-flight gauge, readiness and the drain all read."""

    limit: int
    active: int = 0
    draining: bool = False
