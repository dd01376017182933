"""The runtime form of a config: upstreams with live credentials, routes with resolved targets.

Built once per config (at start-up, and on each reload later), so the hot path does a
dict lookup and a weighted pick, nothing more. A request takes the `Runtime` it started
with and keeps it to the end.
"""

from __future__ import annotations

import fnmatch
import math
import random
import re
import time
from bisect import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from gateway.config import (
    GatewayConfig,
    RouteConfig,
    TargetConfig,
    UpstreamConfig,
    UpstreamTimeouts,
    is_pattern,
)
from gateway.errors import GatewayError, echo
from gateway.inbound.authenticator import Inbound
from gateway.inbound.clients import Client
from gateway.reasoning_seal import ReasoningSeal
from gateway.spend.prices import Price, list_price
from gateway.upstream.credentials import Credential, CredentialUnavailable, credential_for
from gateway.upstream.retry import RetryBudget, TargetHealth

OTHER_ROUTE = "other"  # metric label for a model name that matches no route
_MATCHES_KEPT = 4096  # names a pattern matched, remembered per config: dated ids are few, callers' typos many
_MATCHED_BYTES_KEPT = 256 * 1024  # and their characters: a name reaches here bounded (request_body.model_of)


def beta_name(value: str) -> str:
    """A beta as a name to compare: what clients write as `"Effort-2025-11-24" ; q=1` is effort-2025-11-24."""
    return value.split(";", 1)[0].strip().strip("\"'").strip().lower()


@dataclass(frozen=True, slots=True)
class Betas:
    """An upstream's beta policy, ready to apply: drop the listed, or keep only the listed."""

    listed: frozenset[str]  # beta_name()s
    keep_listed: bool

    def apply(self, header: str) -> tuple[str, tuple[str, ...]]:
        """The anthropic-beta value to send (each beta by its plain name), and the betas dropped from it."""
        kept: list[str] = []
        dropped: list[str] = []
        for beta in (beta_name(b) for b in header.split(",")):
            if beta:
                (kept if (beta in self.listed) == self.keep_listed else dropped).append(beta)
        return ",".join(kept), tuple(dropped)


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    config: UpstreamConfig
    credential: Credential
    messages_url: str
    count_tokens_url: str
    betas: Betas | None = None
    host: str = ""  # for traces' server.address


@dataclass(frozen=True, slots=True)
class Target:
    upstream: Upstream
    deployment: str
    weight: int
    timeouts: UpstreamTimeouts
    # Built once here rather than per request.
    client_timeout: aiohttp.ClientTimeout = field(compare=False)
    price: Price | None = field(default=None, compare=False)  # None: counted in tokens only


def _target(upstream: Upstream, t: TargetConfig, route: RouteConfig) -> Target:
    timeouts = route.timeouts or upstream.config.timeouts
    client_timeout = aiohttp.ClientTimeout(
        total=timeouts.total_seconds, connect=timeouts.connect_seconds, sock_read=timeouts.read_seconds
    )
    configured = t.price or route.price
    price = Price.of(configured) if configured is not None else list_price(t.deployment, route.model)
    return Target(upstream, t.deployment, t.weight, timeouts, client_timeout, price)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    targets: tuple[Target, ...]
    max_tokens_default: int | None
    priority: bool = False  # try targets in their listed order instead of by weight
    auto_cache: bool = False  # cache_breakpoints: auto
    structured_outputs: bool = False  # every target's upstream serves native structured outputs


class Runtime:
    """One config, ready to serve. `previous` is the runtime it replaces on a reload: each target's
    health, the retry budget and each client's rate-limit buckets carry over by name, so a reload
    that only adds a route neither forgives a throttled client nor un-pauses a failing target."""

    def __init__(
        self,
        config: GatewayConfig,
        credentials: Mapping[str, Credential] | None = None,
        rng: random.Random | None = None,
        previous: Runtime | None = None,
    ) -> None:
        self.config = config
        self.created = int(time.time())
        self._rng = rng or random.Random()
        self.upstreams: dict[str, Upstream] = {}
        for u in config.upstreams:
            credential = credentials[u.name] if credentials and u.name in credentials else credential_for(u.auth)
            betas = None
            if u.betas is not None:
                listed = u.betas.only if u.betas.only is not None else u.betas.drop
                betas = Betas(frozenset(beta_name(b) for b in listed or ()), u.betas.only is not None)
            self.upstreams[u.name] = Upstream(
                u.name,
                u,
                credential,
                u.messages_url,
                u.messages_url + "/count_tokens",
                betas,
                urlsplit(u.messages_url).hostname or "",
            )
        self.routes: dict[str, Route] = {
            r.model: Route(
                r.model,
                tuple(_target(self.upstreams[t.upstream], t, r) for t in r.targets),
                r.max_tokens_default,
                r.strategy == "priority",
                r.cache_breakpoints == "auto",
                all(self.upstreams[t.upstream].config.structured_outputs for t in r.targets),
            )
            for r in config.routes
        }
        # Every name a client may send: route names and exact aliases, one lookup; then patterns in
        # file order, each name they match remembered so a dated id sent again is one lookup too.
        self.names: dict[str, Route] = {}
        self._patterns: list[tuple[re.Pattern[str], Route]] = []
        for r in config.routes:
            self.names[r.model] = self.routes[r.model]
        for r in config.routes:
            for alias in r.aliases:
                if is_pattern(alias):
                    self._patterns.append((re.compile(fnmatch.translate(alias)), self.routes[r.model]))
                else:
                    self.names.setdefault(alias, self.routes[r.model])
        self._matched: dict[str, Route] = {}
        self._matched_bytes = 0
        keys = config.responses.reasoning_keys
        same_keys = previous is not None and previous.config.responses.reasoning_keys == keys
        # Kept across a reload, a per-process key too: items sealed before it still open.
        self.seal: ReasoningSeal = previous.seal if previous is not None and same_keys else ReasoningSeal(keys)
        retries = config.retries
        carried = previous._health if previous is not None else {}
        self._health: dict[tuple[str, str], TargetHealth] = {}
        for route in self.routes.values():
            for t in route.targets:
                key = (t.upstream.name, t.deployment)
                old = carried.get(key)
                self._health[key] = (
                    old.configure(retries.cooldown_failures, retries.cooldown_seconds)
                    if old is not None
                    else TargetHealth(retries.cooldown_failures, retries.cooldown_seconds)
                )
        self.budget: RetryBudget = (
            previous.budget.configure(retries.budget_ratio, retries.budget_min_per_second)
            if previous is not None
            else RetryBudget(retries.budget_ratio, retries.budget_min_per_second)
        )
        self.inbound: Inbound | None = (
            Inbound(config.inbound, previous=previous.inbound if previous is not None else None)
            if config.inbound is not None
            else None
        )
        self.models_body = orjson.dumps({"object": "list", "data": [self.model_entry(name) for name in self.names]})

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

    def plan(self, route: Route) -> list[Target]:
        """The targets to try, in order: usable credentials, not cooling down, spread by weight.

        503 when there is none, naming why (credentials) or when to come back (cooldown).
        """
        usable: list[Target] = []
        reasons: list[str] = []
        for target in route.targets:
            state = target.upstream.credential.status()
            if state.usable:
                usable.append(target)
            elif state.reason:
                reasons.append(f"upstream {target.upstream.name}: {state.reason}")
        if not usable:
            raise GatewayError(
                503, f"No upstream for model {route.name!r} has usable credentials. " + "; ".join(reasons)
            )
        ready = [t for t in usable if self.health(t).available()]
        if not ready:
            wait = max(1, math.ceil(min(self.health(t).remaining() for t in usable)))
            throttled = all(self.health(t).cooling_status == 429 for t in usable)
            cause = "Foundry asked to slow down (429)" if throttled else "they failed repeatedly"
            raise GatewayError(
                429 if throttled else 503,
                f"Every target of model {route.name!r} is paused because {cause}; retry in {wait} s",
                error_type="rate_limit_error" if throttled else None,
                headers={"retry-after": str(wait)},
            )
        return ready if route.priority else self._weighted_order(ready)

    def _weighted_order(self, targets: list[Target]) -> list[Target]:
        if len(targets) == 1:
            return targets
        remaining = list(targets)
        ordered: list[Target] = []
        while remaining:
            cumulative = list(accumulate(t.weight for t in remaining))
            ordered.append(remaining.pop(bisect(cumulative, self._rng.random() * cumulative[-1])))
        return ordered

    def health(self, target: Target) -> TargetHealth:
        return self._health[(target.upstream.name, target.deployment)]

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


def credential_headers(upstream: Upstream) -> Mapping[str, str]:
    try:
        return upstream.credential.headers()
    except CredentialUnavailable as exc:
        raise GatewayError(503, f"upstream {upstream.name}: {exc}") from None
