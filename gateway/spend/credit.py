"""A replica's lease on a client's shared limits: requests it may admit, and budget it has reserved,
without asking Redis again.

Admission asks Redis for as many requests as the client has been sending in half a second (at
least one; at most a twentieth of its requests_per_minute, and of each budget), reserves their
estimated cost against its budgets in the same script, and keeps what it was granted here. The
client's next requests on this replica are admitted from that credit with no round trip until it
runs out or half a second passes; then what is left goes back to Redis with the next lease (or
on a timer) and another is taken. A client sending a request now and then gets a credit of one:
exactly today's round trip per request. Overrun across replicas is bounded by one credit each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.inbound.clients import Client

LEASE_SECONDS = 0.5
_SHARE = 20  # no credit holds more than a twentieth of a limit


@dataclass(slots=True)
class Reserve:
    """A budget reservation being spent: tokens and micro-dollars."""

    tokens: int
    micro: int


@dataclass(slots=True, eq=False)
class Credit:
    """Requests this replica may still admit for the client, in the windows it was leased in, before
    `expires` (its clock); and the budget reservation it still holds for them."""

    windows: Any  # gateway.spend.limits.Windows
    started: float
    expires: float
    requests: int  # still to admit here
    held: Reserve  # budget reservation still unspent
    count: int  # the minute's requests across replicas at the lease, this credit included
    minute_tokens: int  # the minute's tokens across replicas at the lease
    admitted: int = 0  # admitted from it: the pace the next lease is sized by

    def covers(self, windows: Any, now: float, tokens: int, micro: int) -> bool:
        return (
            self.requests > 0
            and now < self.expires
            and self.windows is windows
            and self.held.tokens >= tokens
            and self.held.micro >= micro
        )

    def take(self, tokens: int, micro: int) -> None:
        self.requests -= 1
        self.admitted += 1
        self.held.tokens -= tokens
        self.held.micro -= micro


def lease_size(client: Client, previous: Credit | None, now: float, tokens: int, micro: int) -> int:
    """How many requests to lease: the client's pace here over the last credit times LEASE_SECONDS,
    bounded by a twentieth of its per-minute requests and of each budget in units of this request's
    reservation; 1 with no pace yet."""
    if previous is None:
        return 1
    pace = previous.admitted / max(now - previous.started, 1e-3)
    size = int(pace * LEASE_SECONDS) + 1
    bounds = [size]
    if client.requests_per_minute is not None:
        bounds.append(client.requests_per_minute // _SHARE)
    budget = client.budget
    if budget is not None:
        for limit, unit in (
            (budget.tokens_per_day, tokens),
            (budget.tokens_per_month, tokens),
            (budget.usd_per_day, micro / 1_000_000),
            (budget.usd_per_month, micro / 1_000_000),
        ):
            if limit is not None and unit > 0:
                bounds.append(int(limit / _SHARE / unit))
    return max(1, min(bounds))
