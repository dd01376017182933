"""The runtime form of a config: upstreams with live credentials, routes with resolved targets.

Built once per config (at start-up, and on each reload later), so the hot path does a
dict lookup and a weighted pick, nothing more. A request takes the `Runtime` it started
with and keeps it to the end.
"""

from __future__ import annotations

import fnmatch
import random
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from gateway.capabilities.profile import RouteProfile
from gateway.config import GatewayConfig, RouteConfig, is_pattern
from gateway.errors import GatewayError, echo
from gateway.inbound.authenticator import Inbound
from gateway.inbound.clients import Client
from gateway.quota.affinity import Sessions
from gateway.quota.book import QuotaBook
from gateway.quota.fair_queue import PRIORITIES
from gateway.quota.meter import PoolMeter
from gateway.quota.scheduler import RouteQuota
from gateway.quota.stats import QuotaStats
from gateway.reasoning_seal import ReasoningSeal
from gateway.upstream.credentials import Credential
from gateway.upstream.routing import Routing
from gateway.upstream.targets import Route, Target, Upstream, target_for, upstream_for

OTHER_ROUTE = "other"  # metric label for a model name that matches no route
_MATCHES_KEPT = 4096  # names a pattern matched, remembered per config: dated ids are few, callers' typos many
_MATCHED_BYTES_KEPT = 256 * 1024  # and their characters: a name reaches here bounded (request_body.model_of)


class QuotaState(NamedTuple):
    pools: Sequence[tuple[str, tuple[float | None, ...], bool]]  # name, headroom per dimension, leased
    queues: Sequence[tuple[str, str, int, float]]  # route, priority, depth, max_wait_seconds
    # name, admitted and consumed per dimension since start (None: not metered)
    totals: Sequence[tuple[str, tuple[float | None, ...], tuple[float, ...]]] = ()
    affinity: Sequence[tuple[tuple[str, str], int]] = ()  # (route, result), requests placed
    # (route, priority), cumulative buckets (le as text), sum: foundry_gateway_quota_wait_seconds
    waits: Sequence[tuple[tuple[str, str], list[tuple[str, float]], float]] = ()


class Runtime:
    """One config, ready to serve. `previous` is the runtime it replaces on a reload: each target's
    health, the retry budget, each client's rate-limit buckets and the reasoning seal carry over,
    so a reload that only adds a route neither forgives a throttled client nor un-pauses a failing
    target."""

    def __init__(
        self,
        config: GatewayConfig,
        credentials: Mapping[str, Credential] | None = None,
        rng: random.Random | None = None,
        previous: Runtime | None = None,
    ) -> None:
        self.config = config
        self.created = int(time.time())
        given = credentials or {}
        # Pools keep what they have used, and sessions where they went, across a reload.
        self.quota: QuotaBook = QuotaBook(
            config.quota_pools, config.state.replicas, previous.quota if previous else None
        )
        self.sessions: Sessions = previous.sessions if previous is not None else Sessions()
        self.quota_stats: QuotaStats = previous.quota_stats if previous is not None else QuotaStats()
        self.upstreams: dict[str, Upstream] = {u.name: upstream_for(u, given.get(u.name)) for u in config.upstreams}
        self.routes: dict[str, Route] = {r.model: self._route(r) for r in config.routes}
        self._index_names()
        self.routing: Routing = Routing(
            self.routes.values(), config.retries, previous.routing if previous else None, rng
        )
        keys = config.responses.reasoning_keys
        same_keys = previous is not None and previous.config.responses.reasoning_keys == keys
        # Kept across a reload, a per-process key too: items sealed before it still open.
        self.seal: ReasoningSeal = previous.seal if previous is not None and same_keys else ReasoningSeal(keys)
        self.inbound: Inbound | None = (
            Inbound(config.inbound, previous=previous.inbound if previous is not None else None)
            if config.inbound is not None
            else None
        )
        self.models_body = orjson.dumps({"object": "list", "data": [self.model_entry(name) for name in self.names]})

    def _route(self, r: RouteConfig) -> Route:
        quota = None
        if r.strategy == "quota":
            quota = RouteQuota[Target](
                r.model, self.quota, self.sessions, r.max_wait_seconds, r.max_queued, stats=self.quota_stats
            )
        targets = tuple(target_for(self.upstreams[t.upstream], t, r, self._metered(t.quota_pool)) for t in r.targets)
        profile = RouteProfile.of([t.upstream.profile for t in targets])
        return Route(
            r.model,
            targets,
            r.max_tokens_default,
            r.strategy == "priority",
            r.cache_breakpoints == "auto",
            profile,
            quota,
            r.max_wait_seconds,
            any(t.pool is not None for t in targets),
        )

    def _metered(self, pool: str | None) -> PoolMeter | None:
        meter = self.quota.meters[pool] if pool is not None else None
        return meter if meter is not None and meter.metered else None  # a pool with no limit set costs nothing

    def _index_names(self) -> None:
        """Every name a client may send: route names and exact aliases, one lookup; then patterns in
        file order, each name they match remembered so a dated id sent again is one lookup too."""
        self.names: dict[str, Route] = {r.model: self.routes[r.model] for r in self.config.routes}
        self._patterns: list[tuple[re.Pattern[str], Route]] = []
        for r in self.config.routes:
            for alias in r.aliases:
                if is_pattern(alias):
                    self._patterns.append((re.compile(fnmatch.translate(alias)), self.routes[r.model]))
                else:
                    self.names.setdefault(alias, self.routes[r.model])
        self._matched: dict[str, Route] = {}
        self._matched_bytes = 0

    def model_entry(self, name: str) -> dict[str, object]:
        """A name clients may send, as OpenAI's model list shows one."""
        return {"id": name, "object": "model", "created": self.created, "owned_by": "anthropic"}

    def route(self, model: str, client: Client | None = None) -> Route:
        """The route for a model name or alias; 404 naming the models there are (those the client may use)."""
        route = self.names.get(model) or self._matched.get(model) or self._match(model)
        if route is None:
            available = ", ".join(sorted(n for n, r in self.names.items() if client is None or client.may_use(r.name)))
            raise GatewayError(
                404, f"The model {echo(model)} does not exist on this gateway. Available models: {available}", "model"
            )
        return route

    def _match(self, model: str) -> Route | None:
        for pattern, route in self._patterns:
            if pattern.match(model):
                if len(self._matched) < _MATCHES_KEPT and self._matched_bytes + len(model) <= _MATCHED_BYTES_KEPT:
                    self._matched[model] = route
                    self._matched_bytes += len(model)
                return route
        return None

    def quota_state(self) -> QuotaState:
        """What the quota metrics show at a scrape: each pool's headroom and whether it is shared
        now, each quota route's queue by priority and its bound."""
        pools = [(name, meter.headroom(), meter.leased) for name, meter in self.quota.meters.items() if meter.metered]
        queues = [
            (route.name, priority, route.quota.queue.depth[i], route.max_wait)
            for route in self.routes.values()
            if route.quota is not None
            for i, priority in enumerate(PRIORITIES)
        ]
        meters = [(name, m) for name, m in self.quota.meters.items() if m.metered]
        totals = [
            (name, tuple(None if r is None else a for r, a in zip(m.rates, m.admitted, strict=True)), tuple(m.consumed))
            for name, m in meters
        ]
        stats = self.quota_stats
        return QuotaState(pools, queues, totals, list(stats.affinity().items()), stats.histograms())

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every route has a target with usable credentials."""
        states = {name: u.credential.status() for name, u in self.upstreams.items()}
        routes: dict[str, Any] = {}
        ready = True
        for name, route in self.routes.items():
            ok = any(states[t.upstream.name].usable for t in route.targets)
            ready = ready and ok
            routes[name] = "ok" if ok else "no target with usable credentials"
        upstreams = {name: "ok" if s.usable else s.reason for name, s in states.items()}
        return ready, {"status": "ready" if ready else "not ready", "routes": routes, "upstreams": upstreams}
