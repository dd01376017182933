"""The gateway's only outbound I/O: requests to Foundry, and turning their failures into client errors.

An upstream is trusted with the prompt, not with the gateway's behaviour: redirects are never
followed (they would carry the credential and the prompt to another host), every body is read
to a bound, and what an upstream says in an error is scrubbed of the gateway's own secrets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from foundry_common import scrub
from gateway.errors import GatewayError, upstream_error_message
from gateway.upstream.retry import retry_after_seconds
from gateway.upstream.targets import Target, Upstream, credential_headers

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"

# Client headers that mean something to Foundry. Everything else, the caller's own
# credentials and cookies above all, stays at the gateway.
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
    upstream: Upstream,
    client_headers: Mapping[str, str],
    request_id: str,
    *,
    native: bool,
    betas: str | None = None,
) -> dict[str, str]:
    """The headers for one attempt; a native request's anthropic-beta is `betas`, fitted to the route."""
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
        if betas:
            headers["anthropic-beta"] = betas
    headers.update(credential_headers(upstream))
    return headers


def relayed_headers(upstream_headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name in RELAYED_RESPONSE_HEADERS:
        value = upstream_headers.get(name)
        if value is not None:
            out[name] = value
    # A retry hint no client could act on (inf, nan, -5, garbage) is not passed on as one.
    for name in ("retry-after", "retry-after-ms"):
        if name in out and retry_after_seconds({name: out[name]}, math.inf) is None:
            del out[name]
    return out


async def post(
    session: aiohttp.ClientSession, target: Target, url: str, body: bytes, headers: Mapping[str, str]
) -> aiohttp.ClientResponse:
    """POST to Foundry; connection failures and timeouts become 502 and 504. Redirects are answers, not followed."""
    try:
        return await session.post(url, data=body, headers=headers, timeout=target.client_timeout, allow_redirects=False)
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


class UnusableAnswer(GatewayError):
    """An upstream answer the gateway will not pass on (a redirect, an oversized or malformed body).

    Always a 502 to the client; `reason` is the bounded label it is counted under.
    """

    def __init__(self, upstream: Upstream, reason: str, message: str) -> None:
        super().__init__(502, f"upstream {upstream.name} {message}")
        self.reason = reason


def unusable_status(upstream: Upstream, status: int) -> UnusableAnswer | None:
    """None for 200 and for real errors (4xx, 5xx); an UnusableAnswer for any other status."""
    if status == 200 or 400 <= status <= 599:
        return None
    if 300 <= status < 400:
        return UnusableAnswer(upstream, "redirect", f"answered a redirect (HTTP {status}), which is never followed")
    return UnusableAnswer(upstream, "unexpected_status", f"answered HTTP {status}, not 200 or an error")


async def read_body(response: aiohttp.ClientResponse, target: Target, limit: int) -> bytes:
    """The whole body of a 200 answer, at most `limit` bytes; a larger one is an UnusableAnswer."""
    length = response.content_length
    try:
        if length is None or length <= limit:
            body, whole = await _read_at_most(response, limit)
            if whole:
                return body
    except TimeoutError:
        raise upstream_timeout(target) from None
    except aiohttp.ClientError as exc:
        raise upstream_unreachable(target.upstream, exc) from None
    response.close()  # the rest is not read: the connection cannot be reused
    raise UnusableAnswer(target.upstream, "too_large", f"answered with a body over the {limit} bytes the gateway reads")


async def read_error_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The first `limit` bytes of an error answer: enough for its message; the rest is never read."""
    try:
        body, _ = await _read_at_most(response, limit)
    except (TimeoutError, aiohttp.ClientError):
        return b""  # the status still says what happened
    return body


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether that is all of it. Past `limit` nothing more is
    read and the connection is closed, since it cannot be reused with the rest unread."""
    length = response.content_length
    if length is not None and length <= limit:
        return await response.read(), True  # the common case: framed by its length, one read
    body = bytearray()
    async for chunk in response.content.iter_any():
        room = limit - len(body)
        if len(chunk) > room:
            # Past the bound: its first bytes kept, the rest neither kept nor read, nothing copied whole.
            body += chunk[:room]
            response.close()
            return bytes(body), False
        body += chunk
    return bytes(body), True


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
    # An upstream may echo what it was sent, the gateway's key or token included.
    return GatewayError(status, scrub.scrub(message), error_type=error_type, headers=dict(relayed_headers(headers)))
