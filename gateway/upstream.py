"""The gateway's only outbound I/O: requests to Foundry, and turning their failures into client errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import GatewayError, upstream_error_message
from gateway.routing import Target, Upstream, credential_headers

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"

# Client headers that mean something to Foundry. Everything else, the caller's own
# credentials and cookies above all, stays at the gateway.
FORWARDED_REQUEST_HEADERS = ("anthropic-beta",)

# Upstream response headers a client may act on (retry hints, ids for support tickets).
RELAYED_RESPONSE_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry", "request-id", "apim-request-id")


def session_for(max_connections: int) -> aiohttp.ClientSession:
    # aiohttp's default of 100 connections would silently cap concurrent streams at 100.
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=30, keepalive_timeout=60)
    # Answers are relayed as the bytes they are (auto_decompress off), so none may come compressed:
    # without accept-encoding here aiohttp would offer gzip and deflate on the gateway's behalf.
    # Session headers also win over aiohttp's own user-agent, which skip_auto_headers would do at
    # the cost of a header dictionary built and merged on every request.
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        headers={"user-agent": "foundry-gateway", "accept-encoding": "identity"},
    )


def request_headers(
    upstream: Upstream, client_headers: Mapping[str, str], request_id: str, *, native: bool
) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream, application/json",
        "anthropic-version": DEFAULT_ANTHROPIC_VERSION,
        "x-request-id": request_id,
    }
    if native:
        version = client_headers.get("anthropic-version")
        if version:
            headers["anthropic-version"] = version
        for name in FORWARDED_REQUEST_HEADERS:
            value = client_headers.get(name)
            if value:
                headers[name] = value
    headers.update(credential_headers(upstream))
    return headers


def relayed_headers(upstream_headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name in RELAYED_RESPONSE_HEADERS:
        value = upstream_headers.get(name)
        if value is not None:
            out[name] = value
    return out


async def post(
    session: aiohttp.ClientSession, target: Target, url: str, body: bytes, headers: Mapping[str, str]
) -> aiohttp.ClientResponse:
    """POST to Foundry; connection failures and timeouts become 502 and 504."""
    try:
        return await session.post(url, data=body, headers=headers, timeout=target.client_timeout)
    except TimeoutError:
        raise upstream_timeout(target) from None
    except aiohttp.ClientError as exc:
        raise upstream_unreachable(target.upstream, exc) from None


def upstream_timeout(target: Target) -> GatewayError:
    t = target.timeouts
    return GatewayError(
        504,
        f"upstream {target.upstream.name} did not answer in time (connect {t.connect_seconds:g} s, "
        f"read {t.read_seconds:g} s, total {t.total_seconds:g} s)",
    )


def upstream_unreachable(upstream: Upstream, exc: BaseException) -> GatewayError:
    # The exception text names host and port only; the URL carries no credential.
    return GatewayError(502, f"upstream {upstream.name} is unreachable: {type(exc).__name__}: {exc}")


async def read_body(response: aiohttp.ClientResponse, target: Target) -> bytes:
    try:
        return await response.read()
    except TimeoutError:
        raise upstream_timeout(target) from None
    except aiohttp.ClientError as exc:
        raise upstream_unreachable(target.upstream, exc) from None


def error_from_upstream(status: int, body: bytes, upstream: Upstream, headers: CIMultiDictProxy[str]) -> GatewayError:
    """An upstream error answer as a client error: same status, its message, its retry hints."""
    parsed: Any
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    error_type, message = upstream_error_message(parsed)
    if parsed is None and body:
        message = f"upstream answered HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
    if status in (401, 403):
        message = f"upstream {upstream.name} refused the gateway's credentials ({status}): {message}"
    return GatewayError(status, message, error_type=error_type, headers=dict(relayed_headers(headers)))
