"""The Entra emulator's HTTP side."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"


@dataclass
class Client:
    client_id: str
    secret: str | None = None
    certificate_key: Any = None  # public key that verifies this client's certificate assertions
    federated_key: Any = None  # the cluster issuer's public key, for Workload Identity
    federated_subject: str | None = None


@dataclass
class EntraState:
    tenant: str
    signing_key: RSAPrivateKey
    clients: dict[str, Client]
    lifetime: int = 3600
    refresh_in: int | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    outage: str | None = None  # "server_error" or "hang" until cleared
    issued: int = 0
    requests: int = 0
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])


STATE: web.AppKey[EntraState] = web.AppKey("entra")


def aadsts(status: int, error: str, code: int, description: str) -> web.Response:
    now = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    return web.json_response(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
            f"Timestamp: {now}",
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
        },
        status=status,
    )


async def openid_configuration(request: web.Request) -> web.Response:
    tenant = request.match_info["tenant"]
    base = f"{request.scheme}://{request.host}/{tenant}"
    return web.json_response(
        {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "NA",
        }
    )


async def jwks(request: web.Request) -> web.Response:
    state = request.app[STATE]
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(state.signing_key.public_key(), as_dict=True)
    return web.json_response({"keys": [{**jwk, "kid": state.kid, "use": "sig", "alg": "RS256"}]})


def _verify_assertion(state: EntraState, client: Client, assertion: str, token_url: str) -> str | None:
    """None when the client assertion is good, else the AADSTS description of what is wrong."""
    try:
        if client.certificate_key is not None:
            claims = jwt.decode(assertion, client.certificate_key, algorithms=["RS256", "PS256"], audience=token_url)
            if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
                return "Client assertion iss and sub must be the client id."
            return None
        if client.federated_key is not None:
            claims = jwt.decode(assertion, client.federated_key, algorithms=["RS256"], audience=FEDERATED_AUDIENCE)
            if claims.get("sub") != client.federated_subject:
                subject = claims.get("sub")
                return f"No matching federated identity record found for presented assertion subject '{subject}'."
            return None
    except jwt.ExpiredSignatureError:
        return "The presented assertion is expired."
    except jwt.InvalidTokenError as exc:
        return f"Client assertion failed signature validation. ({type(exc).__name__})"
    return "Client assertion is not accepted for this application."


async def token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.requests += 1
    if state.outage == "hang" or (state.faults and state.faults[0].get("kind") == "hang"):
        _take_fault(state)
        await asyncio.sleep(3600)
    if state.outage == "server_error":
        return aadsts(503, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
    fault = _take_fault(state)
    if fault is not None:
        kind = fault.get("kind")
        if kind == "server_error":
            return aadsts(500, "server_error", 90033, "A transient error has occurred. Please try again.")
        if kind == "invalid_client":
            return aadsts(401, "invalid_client", 7000215, "Invalid client secret provided.")
    form = await request.post()
    tenant = request.match_info["tenant"]
    if tenant != state.tenant:
        return aadsts(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
    if form.get("grant_type") != "client_credentials":
        return aadsts(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
    client = state.clients.get(str(form.get("client_id", "")))
    if client is None:
        return aadsts(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{form.get('client_id')!s}' was not found in the directory '{tenant}'.",
        )
    scope = str(form.get("scope", ""))
    if not scope.endswith("/.default"):
        return aadsts(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid.")
    if "client_secret" in form:
        if client.secret is None or not secrets.compare_digest(str(form["client_secret"]), client.secret):
            return aadsts(401, "invalid_client", 7000215, "Invalid client secret provided.")
    elif form.get("client_assertion_type") == ASSERTION_TYPE:
        token_url = f"{request.scheme}://{request.host}{request.path}"
        problem = _verify_assertion(state, client, str(form.get("client_assertion", "")), token_url)
        if problem is not None:
            return aadsts(401, "invalid_client", 700027, problem)
    else:
        return aadsts(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required.")
    return web.json_response(issue(state, client.client_id, scope.removesuffix("/.default")))


def issue(state: EntraState, client_id: str, audience: str) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{state.tenant}/",
        "tid": state.tenant,
        "appid": client_id,
        "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
        "iat": now,
        "nbf": now,
        "exp": now + state.lifetime,
        "ver": "1.0",
        "uti": secrets.token_urlsafe(16),
    }
    state.issued += 1
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": state.lifetime,
        "ext_expires_in": state.lifetime,
        "access_token": jwt.encode(claims, state.signing_key, algorithm="RS256", headers={"kid": state.kid}),
    }
    if state.refresh_in is not None:
        body["refresh_in"] = state.refresh_in
    return body


def _take_fault(state: EntraState) -> dict[str, Any] | None:
    if not state.faults:
        return None
    fault = state.faults[0]
    fault["count"] = fault.get("count", 1) - 1
    if fault["count"] <= 0:
        state.faults.pop(0)
    return fault


async def control(request: web.Request) -> web.Response:
    """POST {"faults": [...], "outage": "server_error"|"hang"|null, "lifetime": N, "refresh_in": N}."""
    state = request.app[STATE]
    body = await request.json()
    state.faults.extend(body.get("faults", []))
    if "outage" in body:
        state.outage = body["outage"]
    if "lifetime" in body:
        state.lifetime = int(body["lifetime"])
    if "refresh_in" in body:
        state.refresh_in = body["refresh_in"]
    return web.json_response({"issued": state.issued, "requests": state.requests, "outage": state.outage})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"issued": state.issued, "requests": state.requests, "outage": state.outage})


def create_app(state: EntraState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", jwks)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
    app.router.add_post("/_emulator/control", control)
    app.router.add_get("/_emulator/stats", stats)
    return app
