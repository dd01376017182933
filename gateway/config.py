"""The gateway's one configuration schema, and loading it from YAML.

The pydantic models are the single source of truth: `load_config` validates a file
against them, and `json_schema()` emits the JSON Schema the Helm chart's
values.schema.json and the docs are generated from.
"""

from __future__ import annotations

import fnmatch
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from gateway.reasoning_seal import parse_keys

_MESSAGES_SUFFIX = "/v1/messages"


class _Model(BaseModel):
    # extra="forbid": a misspelt key is an error that names it, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Model):
    """The gateway's own listener and limits."""

    host: str = Field("0.0.0.0", description="Address the gateway listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port the gateway listens on (0 picks a free one).")
    max_body_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger ones get 413. Foundry's own limit is 32 MB.",
    )
    upstream_connections: int = Field(
        4096,
        ge=1,
        description="Most connections open to Foundry at once; it bounds concurrent upstream requests and streams.",
    )
    body_read_timeout_seconds: float = Field(
        30, gt=0, description="A client that has not sent its whole body by then gets 408 (slow-client defence)."
    )
    max_messages: int = Field(10000, ge=1, description="Most messages in one request; more get 400.")
    max_concurrent_requests: int = Field(
        2048, ge=1, description="Requests served at once; more get 429 with retry-after at once instead of queueing."
    )
    heartbeat_seconds: float = Field(
        15,
        gt=0,
        description="SSE comment sent on a stream that has been quiet this long (load balancer idle timeouts).",
    )
    drain_delay_seconds: float = Field(
        5, ge=0, description="After SIGTERM: /readyz fails at once, new connections are still served this long."
    )
    drain_timeout_seconds: float = Field(
        100, ge=0, description="After the delay: in-flight requests and streams get this long to finish."
    )
    admin_host: str = Field("0.0.0.0", description="Address of the admin listener (/healthz, /readyz, /metrics).")
    admin_port: int = Field(
        9090,
        ge=0,
        le=65535,
        description="Admin listener port: probes and Prometheus only, off the API port (0 picks a free one).",
    )
    max_connections: int = Field(
        10000,
        ge=1,
        description="Client connections open at once on the API port; more are answered 503 and closed.",
    )
    header_timeout_seconds: float = Field(
        10, gt=0, description="A new connection that has not sent a whole request head by then is closed."
    )
    idle_timeout_seconds: float = Field(
        75, gt=0, description="A keep-alive connection idle (or part-way through a request head) this long is closed."
    )
    max_upstream_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest non-streamed answer read from Foundry; a larger one is a 502. Claude's longest answer "
        "(128k output tokens, thinking included) is a few megabytes of JSON.",
    )
    max_upstream_error_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Most of an upstream error body read for its message; the rest is not read.",
    )
    max_upstream_event_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest single server-sent event accepted from Foundry; a larger one ends the stream in error.",
    )


class RetryConfig(_Model):
    """Retries and fallbacks, before the first byte reaches the client only."""

    max_attempts: int = Field(3, ge=1, le=10, description="Attempts per request, across the route's targets.")
    budget_ratio: float = Field(
        0.2, ge=0, le=1, description="Retries allowed as a share of requests (over 10 s), so an outage is no storm."
    )
    budget_min_per_second: float = Field(
        2, ge=0, description="Retries always allowed per second, however few requests."
    )
    retry_after_cap_seconds: float = Field(
        5, ge=0, description="Longest retry-after the gateway waits out itself; longer ones go back to the client."
    )
    retry_after_cooldown: bool = Field(
        True, description="Skip a target for the retry-after Foundry sends with a 429, 503 or 529."
    )
    cooldown_failures: int = Field(3, ge=1, description="Consecutive failures that put a target in cooldown.")
    cooldown_seconds: float = Field(
        10, gt=0, description="How long a failing target is skipped before it is probed again."
    )
    cooldown_max_seconds: float = Field(
        60,
        gt=0,
        description="Longest pause a retry-after can put on a target; longer (or unreadable) hints are clamped.",
    )


class LoggingConfig(_Model):
    """Log level and format."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Least severe level logged.")
    format: Literal["json", "console"] = Field("json", description="json for clusters, console for people.")


class EntraAuth(_Model):
    """`type: entra` sends `Authorization: Bearer` with the token the sidecar keeps in `token_file`."""

    type: Literal["entra"]
    token_file: Path = Field(
        Path("/var/run/foundry-token/token.json"),
        description="JSON token file kept fresh by the token sidecar (the chart mounts it here).",
    )
    recheck_seconds: float = Field(
        1.0,
        ge=0,
        description="How often, at most, the file is checked for a new token (stat only; read on change).",
    )


class ApiKeyAuth(_Model):
    """`type: api_key` sends the Foundry key as both `x-api-key` and `api-key`."""

    type: Literal["api_key"]
    key_env: str | None = Field(None, description="Environment variable holding the Foundry API key.")
    key_file: Path | None = Field(None, description="File holding the Foundry API key (a mounted Secret).")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ApiKeyAuth:
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError("set exactly one of key_env or key_file")
        return self


UpstreamAuth = Annotated[EntraAuth | ApiKeyAuth, Field(discriminator="type")]


class UpstreamTimeouts(_Model):
    """Limits on each request to this upstream; breaching one answers 504."""

    connect_seconds: float = Field(10.0, gt=0, description="TCP and TLS connect.")
    read_seconds: float = Field(
        300.0, gt=0, description="Longest silence from the upstream: before the first byte or between events."
    )
    total_seconds: float = Field(900.0, gt=0, description="Whole upstream exchange, streams included.")


class FeatureChanges(_Model):
    """Changes to what a hosting option's default profile says its deployments have."""

    add: list[str] = Field(
        default_factory=list, description="What these deployments have though the hosting option's default lacks it."
    )
    remove: list[str] = Field(
        default_factory=list, description="What these deployments lack though the hosting option's default has it."
    )


class BetaChanges(FeatureChanges):
    """Betas by name or family: `effort` is every effort-YYYY-MM-DD; case, quotes and spaces do not matter."""

    only: list[str] | None = Field(
        None, description="An allow-list: the only betas sent; every other beta is treated as one these lack."
    )

    @model_validator(mode="after")
    def _only_alone(self) -> BetaChanges:
        if self.only is not None and (self.add or self.remove):
            raise ValueError("only is an allow-list: set it, or add and remove, not both")
        return self


class CapabilityChanges(_Model):
    """What an upstream's deployments have beyond, or lack within, their hosting option's default profile
    (docs/capabilities.md lists each default). A request that needs something they lack is downgraded
    faithfully where a downgrade exists, or refused with a 400 before Foundry is called."""

    betas: BetaChanges = BetaChanges()
    fields: FeatureChanges = Field(
        FeatureChanges(),
        description="Body fields as dotted paths: output_config.format (structured outputs, strict tools with it), "
        "output_config.effort, context_management, container, mcp_servers; tools.<key> is a key of any tool.",
    )
    server_tools: FeatureChanges = Field(
        FeatureChanges(), description="Server tool types, exact (web_search_20250305) or glob (code_execution_*)."
    )


class UpstreamConfig(_Model):
    """A Foundry resource's Anthropic endpoint and how to authenticate to it."""

    name: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Unique name; targets refer to it, metrics label by it."
    )
    base_url: str = Field(description="https://<resource>.services.ai.azure.com/anthropic")
    auth: UpstreamAuth
    timeouts: UpstreamTimeouts = UpstreamTimeouts()
    hosting: Literal["azure", "anthropic"] = Field(
        "azure",
        description="Where Foundry hosts these deployments: azure (Azure-hosted, the default) or anthropic (on "
        "Anthropic's infrastructure). Each has a default capability profile (docs/capabilities.md).",
    )
    capabilities: CapabilityChanges = Field(
        CapabilityChanges(), description="Changes to the hosting option's default profile, for these deployments."
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        # The beta policy and the structured-outputs switch became the capability profile: say where
        # they went rather than "extra inputs are not permitted".
        if isinstance(data, dict):
            if "betas" in data:
                raise ValueError(
                    "'betas' moved: write capabilities.betas.remove (was drop) or capabilities.betas.only (was only)"
                )
            if "structured_outputs" in data:
                raise ValueError(
                    "'structured_outputs' moved: hosting: anthropic has structured outputs; on azure write "
                    "capabilities.fields.add: [output_config.format]"
                )
        return data

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        if url.endswith(_MESSAGES_SUFFIX):
            url = url[: -len(_MESSAGES_SUFFIX)]
        if not url.startswith(("https://", "http://")):
            raise ValueError(
                f"must be an http(s) URL like https://<resource>.services.ai.azure.com/anthropic, got {value!r}"
            )
        return url

    @property
    def messages_url(self) -> str:
        return self.base_url + _MESSAGES_SUFFIX


class PriceConfig(_Model):
    """USD per million tokens, as Foundry bills them; cache writes and reads priced on their own."""

    input: float = Field(ge=0, description="Uncached input tokens.")
    output: float = Field(ge=0, description="Output tokens, thinking included.")
    cache_write: float | None = Field(None, ge=0, description="5-minute cache writes; omitted: 1.25 x input.")
    cache_write_1h: float | None = Field(None, ge=0, description="1-hour cache writes; omitted: 2 x input.")
    cache_read: float | None = Field(None, ge=0, description="Cache reads; omitted: 0.1 x input.")


class TargetConfig(_Model):
    """A deployment at an upstream that serves a route."""

    upstream: str = Field(description="Name of an entry in upstreams.")
    deployment: str = Field(min_length=1, description="The model deployment name at Foundry.")
    weight: int = Field(1, ge=1, description="Share of traffic among this route's targets.")
    price: PriceConfig | None = Field(None, description="This deployment's price, when it differs from the route's.")
    quota_pool: str | None = Field(
        None,
        description="Name of the entry in quota_pools this deployment draws from (its subscription, model and "
        "deployment type). Omitted: unmetered.",
    )


class RouteConfig(_Model):
    """A model name clients send, and the deployments that serve it."""

    model: str = Field(min_length=1, description="The model name clients send.")
    aliases: list[str] = Field(
        default_factory=list,
        description="Other names clients send for this route: exact names (sonnet-latest) or glob patterns "
        "(claude-sonnet-4-5-*, claude-opus-*). An exact name wins over any pattern; between patterns, the first "
        "in the file wins. Answers carry the name the client sent.",
    )
    targets: list[TargetConfig] = Field(min_length=1)
    strategy: Literal["weighted", "priority", "quota"] = Field(
        "weighted",
        description="weighted: spread by weight, fall back to the others; priority: the first target, then the next; "
        "quota: each session stays on one target (weighted rendezvous hashing of its session key, so its prompt "
        "cache is read, not written again) while that target's quota pool has room, else moves to the target whose "
        "pool has the most; with no pool that has room, the request waits its turn (max_wait_seconds).",
    )
    max_wait_seconds: float = Field(
        30,
        ge=0,
        description="strategy quota: the longest a request waits for quota. One that would wait longer gets 429 at "
        "once, with a retry-after computed from the pools' refill.",
    )
    max_queued: int = Field(
        1000, ge=0, description="strategy quota: requests that may wait at once; more get 429 at once."
    )
    max_tokens_default: int | None = Field(
        4096, ge=1, description="max_tokens sent when an OpenAI client sends none (Foundry requires it)."
    )
    cache_breakpoints: Literal["off", "auto"] = Field(
        "off",
        description="auto: for OpenAI clients that set no cache_control, mark the end of the tools and of the "
        "system prompt as prompt-cache breakpoints (cache reads cost a tenth of input tokens).",
    )
    timeouts: UpstreamTimeouts | None = Field(
        None, description="This route's own timeouts (long thinking, say); omitted: each upstream's."
    )
    price: PriceConfig | None = Field(
        None,
        description="USD per million tokens; omitted: the built-in list price of the Claude model the route or "
        "its deployment names (docs/cost.md), else the route is counted in tokens only.",
    )


class BudgetConfig(_Model):
    """Spend a client may make per UTC day and month; past one, its requests get 429 until the window turns."""

    usd_per_day: float | None = Field(None, gt=0, description="Dollars a UTC day, at the routes' prices.")
    usd_per_month: float | None = Field(None, gt=0, description="Dollars a UTC month, at the routes' prices.")
    tokens_per_day: int | None = Field(None, ge=1, description="Input (cache included) plus output tokens a UTC day.")
    tokens_per_month: int | None = Field(None, ge=1, description="The same, a UTC month.")


class _ClientSettings(_Model):
    """What every kind of caller is given: a name, the routes it may use, its limits and budget."""

    client: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Name in logs and metrics.")
    routes: list[str] | None = Field(None, description="Models this client may use; omitted: every route.")
    requests_per_minute: int | None = Field(
        None, ge=1, description="With state.redis, for all replicas together; else per pod. Omitted: no limit."
    )
    tokens_per_minute: int | None = Field(
        None, ge=1, description="Input plus output tokens a minute, shared or per pod as above; omitted: no limit."
    )
    budget: BudgetConfig | None = None
    priority: Literal["interactive", "batch"] = Field(
        "interactive",
        description="When quota is short, interactive requests are admitted before batch ones (strategy quota).",
    )
    share: float = Field(
        1,
        gt=0,
        le=1000,
        description="This client's weight among the clients of its priority waiting for quota: a share of 2 is "
        "given twice the tokens of a share of 1.",
    )


class InboundApiKey(_ClientSettings):
    """A caller's API key, kept as its SHA-256: the gateway never stores the key itself."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key (sha256sum of it, lower case).")


class ServiceAccountClient(_ClientSettings):
    """A Kubernetes service account allowed to call, and the client name it gets."""

    namespace: str = Field(min_length=1, description="The service account's namespace.")
    service_account: str = Field(min_length=1, description="The service account's name.")


class ServiceAccountAuth(_Model):
    """Projected service-account tokens, verified offline against the cluster issuer's keys."""

    issuer: str = Field(min_length=1, description="The cluster's service-account issuer (the token's iss).")
    audience: str = Field("foundry-gateway", description="The audience callers request for their projected token.")
    jwks_file: Path = Field(description="The issuer's JWKS (a ConfigMap of /openid/v1/jwks); re-read when it changes.")
    clients: list[ServiceAccountClient] = Field(min_length=1)


class InboundConfig(_Model):
    """Who may call the gateway. Omit the section to accept every caller (make demo does)."""

    api_keys: list[InboundApiKey] = Field(default_factory=list)
    service_accounts: ServiceAccountAuth | None = None


class ResponsesConfig(_Model):
    """The OpenAI Responses dialect (/v1/responses)."""

    reasoning_keys_file: Path | None = Field(
        None,
        description="Keys that seal the thinking in reasoning items clients carry between turns: one base64 "
        "32-byte key a line (32 random bytes, base64-encoded), the first seals, all open; add a new key "
        "on top to rotate. Read at start and at each reload. Omitted: a key per process, so an item "
        "opens only on the replica that made it (elsewhere its turn goes without thinking).",
    )
    store_ttl_seconds: int | None = Field(
        None,
        ge=60,
        description="Keep responses in the shared Redis (state.redis) this long, for previous_response_id, "
        "item_reference and GET/DELETE /v1/responses/{id}. Stored responses hold the conversation's text. "
        "Omitted: nothing is stored, and those are refused with a message that says so.",
    )
    max_stored_bytes_per_response: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Most bytes one stored response may add to Redis (its new input items and its output); a "
        "request whose new input alone is larger gets 413 before anything is sent, unless it sends store: false. "
        "Earlier turns are kept by reference, never copied.",
    )
    max_stored_bytes_per_client: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Most bytes one client may add to the store over two store_ttl_seconds windows (what it "
        "stored can still be alive); past it, its requests that would store get 429 until the older window ends.",
    )
    _keys: tuple[bytes, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _read_keys(self) -> ResponsesConfig:
        if self.reasoning_keys_file is not None:
            try:
                mode = self.reasoning_keys_file.stat().st_mode
                if mode & (stat.S_IROTH | stat.S_IWOTH):  # as for every secret file the gateway reads
                    raise ValueError(f"mode {stat.S_IMODE(mode):04o}: it must be neither world-readable nor -writable")
                self._keys = tuple(parse_keys(self.reasoning_keys_file.read_text(encoding="ascii")))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ValueError(f"reasoning_keys_file {self.reasoning_keys_file}: {reason}") from None
        return self

    @property
    def reasoning_keys(self) -> tuple[bytes, ...]:
        return self._keys


class RedisConfig(_Model):
    """The Redis the replicas share their request, token and budget counters through."""

    url: str | None = Field(
        None, pattern=r"^rediss?://", description="redis:// or rediss:// (TLS), password in the URL."
    )
    url_file: Path | None = Field(None, description="A file holding the URL (a mounted Secret); read at each load.")
    key_prefix: str = Field("fgw:", description="Prefix of every key the gateway writes.")
    timeout_ms: int = Field(
        50, ge=1, le=10000, description="The most a request waits for Redis; past it, on_error decides."
    )
    on_error: Literal["allow", "deny"] = Field(
        "allow", description="Redis down or slow: allow serves as if no limit were reached; deny answers 503."
    )
    _url: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _one_url(self) -> RedisConfig:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("set exactly one of url or url_file")
        if self.url_file is not None:
            try:
                url = self.url_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"url_file {self.url_file}: {exc}") from None
            if not url.startswith(("redis://", "rediss://")):
                raise ValueError(f"url_file {self.url_file}: the URL must begin with redis:// or rediss://")
            self._url = url
        else:
            self._url = self.url or ""
        return self

    @property
    def resolved_url(self) -> str:
        return self._url


class StateConfig(_Model):
    """State the replicas share. Omitted: limits and budgets are per pod (N replicas allow N times as much)."""

    redis: RedisConfig | None = None
    replicas: int = Field(
        1,
        ge=1,
        description="Replicas of the gateway (the chart sets it). Each meters quota_pools ÷ replicas when it "
        "cannot share them: without state.redis, or while Redis is down.",
    )


class QuotaPoolConfig(_Model):
    """Foundry quota one set of deployments shares: Claude quota is per subscription, model and version, and
    deployment type (Global Standard: one pool across every region; Data Zone: one per zone). Limits left
    out are not metered; a pool with none is unmetered."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Targets name it; metrics label by it.")
    requests_per_minute: int | None = Field(None, ge=1, description="The pool's RPM.")
    input_tokens_per_minute: int | None = Field(
        None, ge=1, description="The pool's ITPM: uncached input (after the last cache breakpoint) plus cache writes."
    )
    output_tokens_per_minute: int | None = Field(None, ge=1, description="The pool's OTPM.")
    burst_seconds: float = Field(
        15,
        gt=0,
        le=60,
        description="Seconds of refill a bucket holds. Foundry's buckets hold a minute, but Anthropic warns a limit "
        "may be enforced over shorter intervals (60 RPM as 1 a second): 15 s keeps a burst to a quarter of the "
        "minute's quota. Raise it towards 60 where Foundry is seen to allow it.",
    )


class GatewayConfig(_Model):
    """The whole gateway config file."""

    server: ServerConfig = ServerConfig()
    retries: RetryConfig = RetryConfig()
    inbound: InboundConfig | None = None
    logging: LoggingConfig = LoggingConfig()
    responses: ResponsesConfig = ResponsesConfig()
    state: StateConfig = StateConfig()
    upstreams: list[UpstreamConfig] = Field(min_length=1)
    routes: list[RouteConfig] = Field(min_length=1)
    quota_pools: list[QuotaPoolConfig] = Field(
        default_factory=list, description="Foundry quota pools; a route's targets name theirs (docs/quota.md)."
    )


class ConfigError(Exception):
    """A configuration that cannot be used: says which file, which key and why."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {key or '(top level)'}: {reason}" for key, reason in self.problems)
        super().__init__(f"invalid gateway config {source}:\n{lines}")


def _key_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("entra", "api_key") and path.endswith("auth"):
            continue  # the discriminator tag pydantic inserts, not a key the user wrote
        else:
            path += f".{part}" if path else part
    return path


def _cross_references(config: GatewayConfig) -> list[tuple[str, str]]:
    names = [u.name for u in config.upstreams]
    models = [r.model for r in config.routes]
    problems = _repeated(names, "upstreams[{}].name", "duplicate upstream name {!r}")
    problems += _repeated(models, "routes[{}].model", "duplicate route for model {!r}")
    if config.inbound is not None:
        digests = [k.sha256 for k in config.inbound.api_keys]
        clients = [k.client for k in config.inbound.api_keys]
        for i, key in enumerate(config.inbound.api_keys):
            if digests.index(key.sha256) != i:
                problems.append((f"inbound.api_keys[{i}].sha256", "the same key is listed twice"))
            if clients.index(key.client) != i:
                problems.append(
                    (
                        f"inbound.api_keys[{i}].client",
                        f"client {key.client!r} is already api_keys[{clients.index(key.client)}]: each client's "
                        "routes, limits and budget are set once (give each key its own client name)",
                    )
                )
            for j, model in enumerate(key.routes or []):
                if model not in models:
                    problems.append(
                        (f"inbound.api_keys[{i}].routes[{j}]", f"names route {model!r}, which is not defined")
                    )
        accounts = config.inbound.service_accounts
        for i, sa in enumerate(accounts.clients if accounts else []):
            for j, model in enumerate(sa.routes or []):
                if model not in models:
                    problems.append(
                        (
                            f"inbound.service_accounts.clients[{i}].routes[{j}]",
                            f"names route {model!r}, which is not defined",
                        )
                    )
    problems += _alias_conflicts(config.routes)
    if config.responses.store_ttl_seconds is not None and config.state.redis is None:
        problems.append(("responses.store_ttl_seconds", "stored responses live in the shared Redis: set state.redis"))
    problems += _pool_references(config)
    for i, route in enumerate(config.routes):
        for j, target in enumerate(route.targets):
            if target.upstream not in names:
                problems.append(
                    (
                        f"routes[{i}].targets[{j}].upstream",
                        f"names upstream {target.upstream!r}, which is not defined (defined: {', '.join(names)})",
                    )
                )
    return problems


def _repeated(names: list[str], key: str, reason: str) -> list[tuple[str, str]]:
    """Each name that an earlier entry already has: its key and why."""
    return [(key.format(i), reason.format(name)) for i, name in enumerate(names) if names.index(name) != i]


def _pool_references(config: GatewayConfig) -> list[tuple[str, str]]:
    pools = [p.name for p in config.quota_pools]
    problems = _repeated(pools, "quota_pools[{}].name", "duplicate quota pool name {!r}")
    for i, route in enumerate(config.routes):
        for j, target in enumerate(route.targets):
            if target.quota_pool is not None and target.quota_pool not in pools:
                problems.append(
                    (
                        f"routes[{i}].targets[{j}].quota_pool",
                        f"names quota pool {target.quota_pool!r}, which is not defined in quota_pools",
                    )
                )
    return problems


def is_pattern(alias: str) -> bool:
    return any(c in alias for c in "*?[")


def _alias_conflicts(routes: Sequence[RouteConfig]) -> list[tuple[str, str]]:
    """An exact name two routes claim, or a pattern that would take another route's own name."""
    problems: list[tuple[str, str]] = []
    owner: dict[str, str] = {r.model: r.model for r in routes}
    for i, route in enumerate(routes):
        for j, alias in enumerate(route.aliases):
            key = f"routes[{i}].aliases[{j}]"
            if is_pattern(alias):
                taken = [r.model for r in routes if r is not route and fnmatch.fnmatchcase(r.model, alias)]
                if taken:
                    problems.append((key, f"pattern {alias!r} matches the model name of route {taken[0]!r}"))
            elif owner.get(alias, route.model) != route.model:
                problems.append((key, f"{alias!r} is already the name or an alias of route {owner[alias]!r}"))
            else:
                owner[alias] = route.model
    return problems


def parse_config(data: Any, source: str = "<config>") -> GatewayConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(source, [("", "the config must be a YAML mapping")])
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            source, [(_key_path(err["loc"]), err["msg"]) for err in exc.errors(include_url=False)]
        ) from None
    problems = _cross_references(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | Path) -> GatewayConfig:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [("", f"not valid YAML: {exc}")]) from None
    return parse_config(data, source)


def json_schema() -> dict[str, Any]:
    return GatewayConfig.model_json_schema()
