"""Who is calling: API keys, and Kubernetes service-account tokens (projected, audience-bound),
usable together, verified offline against the cluster issuer's JWKS. Keys are matched by their
SHA-256, so the config holds no secret; a key is looked up by its digest, which reveals nothing
about other keys. Then what the caller may use, and whether it is within its limits.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gateway.config import InboundConfig
from gateway.errors import unauthenticated
from gateway.inbound.clients import Client, configured_client

if TYPE_CHECKING:
    from gateway.inbound.service_accounts import ServiceAccounts


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The caller's key, the way either SDK sends it: Authorization: Bearer, x-api-key or api-key."""
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or headers.get("api-key") or None


def _looks_like_jwt(value: str) -> bool:
    return value.startswith("eyJ") and value.count(".") == 2


class Inbound:
    def __init__(
        self, config: InboundConfig, clock: Callable[[], float] = time.monotonic, previous: Inbound | None = None
    ) -> None:
        self._by_digest: dict[str, Client] = {}
        carried = previous.clients if previous is not None else {}
        clients: dict[str, Client] = {}
        self.clients: dict[str, Client] = clients  # by name: what a reload carries each client's buckets by
        for key in config.api_keys:
            client = clients.get(key.client) or configured_client(key, carried.get(key.client), clock)
            clients[key.client] = client
            self._by_digest[key.sha256] = client
        self._service_accounts: ServiceAccounts | None = None
        if config.service_accounts is not None:
            from gateway.inbound.service_accounts import ServiceAccounts  # PyJWT only when it is needed

            by_account = {}
            for sa in config.service_accounts.clients:
                client = clients.get(sa.client) or configured_client(sa, carried.get(sa.client), clock)
                clients[sa.client] = client
                by_account[(sa.namespace, sa.service_account)] = client
            self._service_accounts = ServiceAccounts(config.service_accounts, by_account)

    def authenticate(self, headers: Mapping[str, str]) -> Client:
        key = presented_key(headers)
        if key is None:
            raise unauthenticated("Missing API key: send it as Authorization: Bearer <key>, x-api-key or api-key")
        if self._service_accounts is not None and _looks_like_jwt(key):
            return self._service_accounts.verify(key)
        # surrogateescape: a key with bytes that are not UTF-8 is a wrong key (401), not a 500.
        client = self._by_digest.get(hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest())
        if client is None:
            raise unauthenticated("Invalid API key")
        return client
