"""What a request can be sent to: upstreams with their live credentials, targets (an upstream's
deployment, its timeouts and price) and routes (the targets of a model name). Built once per
config load by the runtime; the exchange and the stream relay only read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from gateway.capabilities.profile import Profile, RouteProfile, profile_for
from gateway.config import RouteConfig, TargetConfig, UpstreamConfig, UpstreamTimeouts
from gateway.errors import GatewayError
from gateway.quota.meter import PoolMeter
from gateway.quota.scheduler import RouteQuota
from gateway.spend.prices import Price, list_price
from gateway.upstream.credentials import Credential, CredentialUnavailable, credential_for


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    config: UpstreamConfig
    credential: Credential
    messages_url: str
    count_tokens_url: str
    profile: Profile
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
    pool: PoolMeter | None = field(default=None, compare=False)  # the quota pool it draws from; None: unmetered
    affinity_id: bytes = field(default=b"", compare=False)  # names it to rendezvous hashing, the same on every replica


def target_for(upstream: Upstream, t: TargetConfig, route: RouteConfig, pool: PoolMeter | None = None) -> Target:
    timeouts = route.timeouts or upstream.config.timeouts
    client_timeout = aiohttp.ClientTimeout(
        total=timeouts.total_seconds, connect=timeouts.connect_seconds, sock_read=timeouts.read_seconds
    )
    configured = t.price or route.price
    price = Price.of(configured) if configured is not None else list_price(t.deployment, route.model)
    affinity_id = f"{upstream.name}/{t.deployment}".encode()
    return Target(upstream, t.deployment, t.weight, timeouts, client_timeout, price, pool, affinity_id)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    targets: tuple[Target, ...]
    max_tokens_default: int | None
    priority: bool = False  # try targets in their listed order instead of by weight
    auto_cache: bool = False  # cache_breakpoints: auto
    profile: RouteProfile = field(default_factory=lambda: RouteProfile(()), compare=False)  # what they all have
    quota: RouteQuota[Target] | None = field(default=None, compare=False)  # strategy quota: placement and queue
    max_wait: float = 0.0  # strategy quota: seconds a request may wait for quota
    metered: bool = False  # a target draws on a quota pool: requests are charged to it

    @property
    def structured_outputs(self) -> bool:
        """Every target serves native structured outputs (so far as Foundry's refusals have not said otherwise)."""
        return not self.profile.lacks_structured_outputs


def upstream_for(config: UpstreamConfig, credential: Credential | None = None) -> Upstream:
    """An upstream of the config, with its credential (made from its auth unless one is given)."""
    return Upstream(
        config.name,
        config,
        credential if credential is not None else credential_for(config.auth),
        config.messages_url,
        config.messages_url + "/count_tokens",
        profile_for(config.hosting, config.capabilities),
        urlsplit(config.messages_url).hostname or "",
    )


def credential_headers(upstream: Upstream) -> Mapping[str, str]:
    try:
        return upstream.credential.headers()
    except CredentialUnavailable as exc:
        raise GatewayError(503, f"upstream {upstream.name}: {exc}") from None
