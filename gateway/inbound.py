"""Inbound identity: which client is calling, what it may use, and how fast.

Two kinds of caller, usable together: API keys, and Kubernetes service-account tokens
(projected, audience-bound), verified offline against the cluster issuer's JWKS. Keys are
matched by their SHA-256, so the config holds no secret; a key is looked up by its
digest, which reveals nothing about other keys. Rate limits are token buckets per client and
per pod (N replicas allow N times the rate).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.config import InboundApiKey, InboundConfig, ServiceAccountAuth, ServiceAccountClient
from gateway.credentials import WatchedFile
from gateway.errors import GatewayError


class TokenBucket:
    __slots__ = ("_clock", "_rate", "_updated", "capacity", "level")

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self.level = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self._rate)
        self._updated = now

    def wait(self, amount: float = 1.0) -> float:
        """0 when `amount` is available now, else seconds until it is (nothing is taken then)."""
        self._refill()
        return 0.0 if self.level >= amount else (amount - self.level) / self._rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount  # may go below zero: a long answer is paid for by the requests after it


@dataclass
class Client:
    name: str
    routes: frozenset[str] | None
    requests: TokenBucket | None
    tokens: TokenBucket | None

    def may_use(self, route: str) -> bool:
        return self.routes is None or route in self.routes


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The caller's key, the way either SDK sends it: Authorization: Bearer, x-api-key or api-key."""
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or headers.get("api-key") or None


def _unauthenticated(message: str) -> GatewayError:
    return GatewayError(401, message, error_type="authentication_error")


if TYPE_CHECKING:
    import jwt


class ServiceAccounts:
    """Projected service-account tokens: signature (the issuer's JWKS), issuer, audience, expiry."""

    def __init__(self, config: ServiceAccountAuth, clients: Mapping[tuple[str, str], Client]) -> None:
        # PyJWT and cryptography are 9 MB of resident memory: loaded only when service accounts are configured.
        global jwt
        import jwt

        self._config = config
        self._clients = clients
        self._jwks = WatchedFile(config.jwks_file, 5.0, secret=False)
        self._keys: dict[str | None, Any] = {}

    def _refresh(self) -> None:
        try:
            content = self._jwks.changed()
        except OSError as exc:
            if not self._keys:
                raise _unauthenticated(f"service-account keys unavailable ({self._config.jwks_file}: {exc})") from None
            return  # keep the keys already read
        if content is None:
            return
        try:
            keys = jwt.PyJWKSet.from_json(content.decode()).keys
        except (jwt.PyJWKSetError, ValueError, UnicodeDecodeError):
            self._jwks.invalidate_identity()
            if not self._keys:
                raise _unauthenticated(f"service-account keys in {self._config.jwks_file} are not a JWKS") from None
            return
        self._keys = {k.key_id: k.key for k in keys}

    def verify(self, token: str) -> Client:
        self._refresh()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) or (next(iter(self._keys.values())) if len(self._keys) == 1 else None)
            if key is None:
                raise _unauthenticated("Service-account token signed by a key the cluster issuer does not list")
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256", "ES256"],
                audience=self._config.audience,
                issuer=self._config.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("Service-account token has expired") from None
        except jwt.InvalidAudienceError:
            raise _unauthenticated(f"Service-account token audience must be {self._config.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise _unauthenticated("Service-account token is from another issuer") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthenticated(f"Service-account token does not verify ({type(exc).__name__})") from None
        parts = str(claims["sub"]).split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
            raise _unauthenticated("Token subject is not a service account")
        client = self._clients.get((parts[2], parts[3]))
        if client is None:
            raise GatewayError(
                403,
                f"Service account {parts[2]}/{parts[3]} is not a client of this gateway",
                error_type="permission_error",
            )
        return client


def _looks_like_jwt(value: str) -> bool:
    return value.startswith("eyJ") and value.count(".") == 2


class Inbound:
    def __init__(self, config: InboundConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._by_digest: dict[str, Client] = {}
        clients: dict[str, Client] = {}
        for key in config.api_keys:
            client = clients.get(key.client) or self._client(key, clock)
            clients[key.client] = client
            self._by_digest[key.sha256] = client
        self._service_accounts: ServiceAccounts | None = None
        if config.service_accounts is not None:
            by_account = {}
            for sa in config.service_accounts.clients:
                client = clients.get(sa.client) or self._client(sa, clock)
                clients[sa.client] = client
                by_account[(sa.namespace, sa.service_account)] = client
            self._service_accounts = ServiceAccounts(config.service_accounts, by_account)

    @staticmethod
    def _client(key: InboundApiKey | ServiceAccountClient, clock: Callable[[], float]) -> Client:
        return Client(
            key.client,
            frozenset(key.routes) if key.routes is not None else None,
            TokenBucket(key.requests_per_minute, clock) if key.requests_per_minute else None,
            TokenBucket(key.tokens_per_minute, clock) if key.tokens_per_minute else None,
        )

    def authenticate(self, headers: Mapping[str, str]) -> Client:
        key = presented_key(headers)
        if key is None:
            raise _unauthenticated("Missing API key: send it as Authorization: Bearer <key>, x-api-key or api-key")
        if self._service_accounts is not None and _looks_like_jwt(key):
            return self._service_accounts.verify(key)
        client = self._by_digest.get(hashlib.sha256(key.encode()).hexdigest())
        if client is None:
            raise _unauthenticated("Invalid API key")
        return client

    @staticmethod
    def admit(client: Client, route: str) -> None:
        """403 for a route the client may not use; 429 with retry-after when it is over a limit."""
        if not client.may_use(route):
            raise GatewayError(
                403, f"Client {client.name!r} may not use model {route!r}", param="model", error_type="permission_error"
            )
        waits = []
        if client.tokens is not None:
            waits.append(client.tokens.wait(1.0))
        if client.requests is not None:
            waits.append(client.requests.wait())
        wait = max(waits, default=0.0)
        if wait > 0:
            raise GatewayError(
                429,
                f"Client {client.name!r} is over its rate limit on this gateway; retry in {math.ceil(wait)} s",
                error_type="rate_limit_error",
                headers={"retry-after": str(math.ceil(wait))},
            )
        if client.requests is not None:
            client.requests.take(1)

    @staticmethod
    def charge(client: Client, tokens: int) -> None:
        if client.tokens is not None and tokens > 0:
            client.tokens.take(tokens)
