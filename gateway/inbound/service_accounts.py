"""Kubernetes service-account tokens as inbound credentials, verified offline.

A module of its own because of what it imports: PyJWT and cryptography are 9 MB of resident
memory, so `gateway.inbound` loads this only when service accounts are configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from foundry_common.watched_file import WatchedFile
from gateway.config import ServiceAccountAuth
from gateway.errors import GatewayError, unauthenticated
from gateway.inbound.clients import Client


class ServiceAccounts:
    """Projected service-account tokens: signature (the issuer's JWKS), issuer, audience, expiry."""

    def __init__(self, config: ServiceAccountAuth, clients: Mapping[tuple[str, str], Client]) -> None:
        self._config = config
        self._clients = clients
        self._jwks = WatchedFile(config.jwks_file, 5.0, secret=False)
        self._keys: dict[str | None, Any] = {}

    def _refresh(self) -> None:
        try:
            content = self._jwks.changed()
        except OSError as exc:
            if not self._keys:
                raise unauthenticated(f"service-account keys unavailable ({self._config.jwks_file}: {exc})") from None
            return  # keep the keys already read
        if content is None:
            return
        try:
            keys = jwt.PyJWKSet.from_json(content.decode()).keys
        except (jwt.PyJWKSetError, ValueError, UnicodeDecodeError):
            self._jwks.invalidate_identity()
            if not self._keys:
                raise unauthenticated(f"service-account keys in {self._config.jwks_file} are not a JWKS") from None
            return
        self._keys = {k.key_id: k.key for k in keys}

    def verify(self, token: str) -> Client:
        self._refresh()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) or (next(iter(self._keys.values())) if len(self._keys) == 1 else None)
            if key is None:
                raise unauthenticated("Service-account token signed by a key the cluster issuer does not list")
            claims = jwt.decode(
                token,
                key,
                # The algorithm follows the key, never the token's header: an ES256 header over an
                # RSA key (or the reverse) is a token that does not verify, not a crash.
                algorithms=["ES256"] if isinstance(key, ec.EllipticCurvePublicKey) else ["RS256"],
                audience=self._config.audience,
                issuer=self._config.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthenticated("Service-account token has expired") from None
        except jwt.InvalidAudienceError:
            raise unauthenticated(f"Service-account token audience must be {self._config.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise unauthenticated("Service-account token is from another issuer") from None
        except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError, TypeError) as exc:
            # Every verification failure is a 401, whatever the library raised for it.
            raise unauthenticated(f"Service-account token does not verify ({type(exc).__name__})") from None
        parts = str(claims["sub"]).split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
            raise unauthenticated("Token subject is not a service account")
        client = self._clients.get((parts[2], parts[3]))
        if client is None:
            raise GatewayError(
                403,
                f"Service account {parts[2]}/{parts[3]} is not a client of this gateway",
                error_type="permission_error",
            )
        return client
