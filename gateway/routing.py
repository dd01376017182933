"""The runtime form of a config: upstreams with live credentials, routes with resolved targets.

Built once per config (at start-up, and on each reload later), so the hot path does a
dict lookup and a weighted pick, nothing more. A request takes the `Runtime` it started
with and keeps it to the end.
"""

from __future__ import annotations

import random
import time
from bisect import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson

from gateway.config import GatewayConfig, UpstreamConfig
from gateway.credentials import Credential, CredentialUnavailable, credential_for
from gateway.errors import GatewayError

OTHER_ROUTE = "other"  # metric label for a model name that matches no route


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    config: UpstreamConfig
    credential: Credential
    messages_url: str
    count_tokens_url: str


@dataclass(frozen=True, slots=True)
class Target:
    upstream: Upstream
    deployment: str
    weight: int


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    targets: tuple[Target, ...]
    max_tokens_default: int | None


class Runtime:
    def __init__(
        self,
        config: GatewayConfig,
        credentials: Mapping[str, Credential] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.created = int(time.time())
        self._rng = rng or random.Random()
        self.upstreams: dict[str, Upstream] = {}
        for u in config.upstreams:
            credential = credentials[u.name] if credentials and u.name in credentials else credential_for(u.auth)
            self.upstreams[u.name] = Upstream(u.name, u, credential, u.messages_url, u.messages_url + "/count_tokens")
        self.routes: dict[str, Route] = {
            r.model: Route(
                r.model,
                tuple(Target(self.upstreams[t.upstream], t.deployment, t.weight) for t in r.targets),
                r.max_tokens_default,
            )
            for r in config.routes
        }
        self.models_body = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": self.created, "owned_by": "anthropic"}
                    for name in self.routes
                ],
            }
        )

    def route(self, model: str) -> Route:
        route = self.routes.get(model)
        if route is None:
            available = ", ".join(sorted(self.routes))
            raise GatewayError(
                404, f"The model {model!r} does not exist on this gateway. Available models: {available}", "model"
            )
        return route

    def pick(self, route: Route) -> Target:
        """A target with usable credentials, by weight; 503 naming why none is usable."""
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
        if len(usable) == 1:
            return usable[0]
        cumulative = list(accumulate(t.weight for t in usable))
        return usable[bisect(cumulative, self._rng.random() * cumulative[-1])]

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
