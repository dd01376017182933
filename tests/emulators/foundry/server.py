"""The emulator's HTTP side: auth checks, the Messages endpoints, fault injection and a request log."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from tests.emulators.foundry.hosting import Hosting
from tests.emulators.foundry.quota import PromptCaches, QuotaPools, pools_from
from tests.emulators.foundry.respond import build_message, count_input_tokens, stream_events
from tests.emulators.foundry.validate import InvalidRequest, validate_request

# Returns None when the bearer token is good, else the reason it is refused.
BearerCheck = Callable[[str], str | None]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@dataclass
class Fault:
    """What to do to the next `count` requests instead of (or while) answering them."""

    status: int | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    azure_shape: bool = False
    delay: float = 0.0  # before the response headers: a slow first byte
    reset: bool = False  # close the connection before answering
    error_after: int | None = None  # stream: an `event: error` after N events
    error_type: str = "overloaded_error"
    cut_after: int | None = None  # stream: drop the connection after N events
    stall_after: int | None = None  # stream: go silent after N events
    stall: float = 3600.0
    malformed_after: int | None = None  # stream: a broken event after N events
    body: str | None = None  # answer 200 with this raw body instead
    # Hostile upstreams: what a broken proxy, a compromised endpoint or a bug in front of Foundry may do.
    redirect: int | None = None  # answer this 3xx, Location: the emulator's own /_emulator/canary
    bare_status: int | None = None  # answer this status (201, 204, 418, ...) with `body` (or nothing)
    huge_body: int | None = None  # answer 200 with this many bytes, chunked (no content-length)
    huge_error: int | None = None  # answer 500 with this many bytes of error text
    echo_credential: bool = False  # a 400 whose message quotes the credential the emulator received
    error_type_value: str | None = None  # a 400 whose error.type is this (an upstream-chosen label)
    raw_after: int | None = None  # stream: after N events, write `raw` instead of the rest
    raw: str = ""
    drip_after: int | None = None  # stream: after N events, send the next one a byte at a time
    drip_interval: float = 0.05
    hold_after: int | None = None  # stream: after N events, wait until the state's `release` is set (in-process)
    count: int = 1


@dataclass
class EmulatorState:
    api_keys: set[str] = field(default_factory=set)
    bearer_check: BearerCheck | None = None
    deployments: set[str] | None = None  # None: every model name is a deployment
    event_delay: float = 0.0
    record: bool = True  # keep each request (headers, body, usage) for /_emulator/requests; off for load runs
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends a hold_after fault's wait
    faults: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    prompt_caches: PromptCaches = field(default_factory=PromptCaches)
    quota: QuotaPools = field(default_factory=QuotaPools)
    canary_hits: list[dict[str, Any]] = field(default_factory=list)
    # By resource ("" for the bare /anthropic path); a resource not named is hosted as `default_hosting`.
    hosting: dict[str, Hosting] = field(default_factory=dict)
    default_hosting: str = "azure"

    def hosting_of(self, resource: str) -> Hosting:
        return self.hosting.get(resource) or Hosting(self.default_hosting)

    def next_fault(self) -> Fault | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.count -= 1
        if fault.count <= 0:
            self.faults.pop(0)
        return fault


STATE: web.AppKey[EmulatorState] = web.AppKey("state")

FOUNDRY_AUDIENCES = ("https://ai.azure.com", "https://cognitiveservices.azure.com")


def jwt_bearer_check(public_key_pem: bytes, audiences: Sequence[str] = FOUNDRY_AUDIENCES) -> BearerCheck:
    """Checks Entra access tokens as Foundry does: signature, audience, expiry."""
    key = serialization.load_pem_public_key(public_key_pem)

    def check(token: str) -> str | None:
        try:
            jwt.decode(token, key, algorithms=["RS256"], audience=list(audiences), options={"require": ["exp", "aud"]})  # type: ignore[arg-type]
        except jwt.ExpiredSignatureError:
            return "the token has expired"
        except jwt.InvalidAudienceError:
            return f"audience is incorrect (expected one of {', '.join(audiences)})"
        except jwt.InvalidTokenError as exc:
            return f"the token is invalid ({type(exc).__name__})"
        return None

    return check


def _ids() -> dict[str, str]:
    return {"request-id": "req_" + secrets.token_hex(12), "apim-request-id": str(uuid.uuid4())}


def anthropic_error(
    status: int, message: str, error_type: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    ids = _ids()
    body = {
        "type": "error",
        "error": {"type": error_type or _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": ids["request-id"],
    }
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers={**ids, **(headers or {})}
    )


def azure_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
        headers=_ids(),
    )


def _check_auth(request: web.Request, state: EmulatorState) -> web.Response | None:
    """Azure's front layer answers auth failures in its own shape, before the Anthropic API sees them."""
    key = request.headers.get("api-key") or request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if key is not None:
        if key in state.api_keys:
            return None
        return azure_error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
            "for an active subscription and use a correct regional API endpoint for your resource.",
        )
    if auth.lower().startswith("bearer "):
        problem = state.bearer_check(auth[7:].strip()) if state.bearer_check else "bearer tokens are not accepted here"
        if problem is None:
            return None
        return azure_error(401, "PermissionDenied", f"Access token is invalid: {problem}")
    return azure_error(401, "401", "Access denied due to missing subscription key or Authorization header.")


async def _fault_response(request: web.Request, fault: Fault) -> web.StreamResponse | None:
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.reset:
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError
    if fault.redirect is not None:
        location = f"http://{request.host}/_emulator/canary"
        return web.Response(status=fault.redirect, headers={"Location": location, **_ids()})
    if fault.bare_status is not None:
        raw = fault.body.encode() if fault.body is not None and fault.bare_status != 204 else None
        return web.Response(status=fault.bare_status, body=raw, content_type="application/json", headers=_ids())
    if fault.body is not None:
        return web.Response(status=200, body=fault.body.encode(), content_type="application/json", headers=_ids())
    if fault.huge_body is not None or fault.huge_error is not None:
        size = fault.huge_body if fault.huge_body is not None else fault.huge_error
        assert size is not None
        response = web.StreamResponse(status=200 if fault.huge_body is not None else 500, headers=_ids())
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(request)
        piece = b"x" * 65536
        sent = 0
        try:
            while sent < size:
                await response.write(piece[: size - sent])
                sent += len(piece)
            await response.write_eof()
        except ConnectionError:
            pass  # the gateway stopped reading, as it should
        return response
    if fault.echo_credential:
        sent_credential = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        return anthropic_error(400, f"invalid request; you sent {sent_credential}, which we log")
    if fault.error_type_value is not None:
        return anthropic_error(400, "an error with an upstream-chosen type", fault.error_type_value)
    if fault.status is not None:
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = fault.retry_after_ms
        if fault.azure_shape:
            return azure_error(fault.status, str(fault.status), f"Emulated Azure error {fault.status}")
        messages = {429: "Rate limit exceeded. Please retry later.", 529: "Overloaded", 500: "Internal server error"}
        return anthropic_error(
            fault.status, messages.get(fault.status, f"Emulated error {fault.status}"), headers=headers
        )
    return None


async def messages(request: web.Request) -> web.StreamResponse:
    return await _handle(request, count_tokens=False)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    return await _handle(request, count_tokens=True)


async def _handle(request: web.Request, *, count_tokens: bool) -> web.StreamResponse:
    state = request.app[STATE]
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    headers = {str(k).lower(): v for k, v in request.headers.items()}
    record: dict[str, Any] = {"path": request.path, "headers": headers, "body": body}
    if state.record:
        state.requests.append(record)
    denied = _check_auth(request, state)
    if denied is not None:
        return denied
    fault = state.next_fault()
    if fault is not None:
        early = await _fault_response(request, fault)
        if early is not None:
            return early
    if body is None:
        return anthropic_error(400, "There was an error parsing the body of your request: invalid JSON")
    if request.headers.get("anthropic-version") is None:
        return anthropic_error(400, "anthropic-version: header is required")
    try:
        betas = frozenset(b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip())
        validate_request(body, count_tokens=count_tokens, betas=betas)
        state.hosting_of(request.match_info.get("resource", "")).check(body, betas)
    except InvalidRequest as exc:
        return anthropic_error(exc.status, exc.message, exc.error_type)
    if state.deployments is not None and body["model"] not in state.deployments:
        return azure_error(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment "
            "within the last 5 minutes, please wait a moment and try again.",
        )
    if count_tokens:
        return web.Response(
            body=orjson.dumps({"input_tokens": count_input_tokens(body)}),
            content_type="application/json",
            headers=_ids(),
        )
    # A deployment is a model at a resource (a region): /<resource>/anthropic/... names one, as hosts do at Foundry.
    deployment = f"{request.match_info.get('resource', '')}/{body['model']}"
    cache = _PendingCache(state.prompt_caches, deployment)
    message = build_message(body, cache)
    usage = message["usage"]
    uncached = usage["input_tokens"] + usage["cache_creation_input_tokens"]
    refused = state.quota.admit(deployment, (1, uncached, body["max_tokens"]))
    if refused is not None:
        text, wait = refused
        return anthropic_error(429, text, "rate_limit_error", {"retry-after": str(max(1, math.ceil(wait)))})
    cache.commit()
    state.quota.correct(deployment, body["max_tokens"], usage["output_tokens"])
    record["usage"] = usage  # what it answered, for tests that check what was charged
    record["deployment"] = deployment
    if not body.get("stream"):
        return web.Response(body=orjson.dumps(message), content_type="application/json", headers=_ids())
    return await _stream(request, state, message, fault)


class _PendingCache:
    """A deployment's prompt cache as a request sees it: its writes land only if the request is admitted."""

    def __init__(self, caches: PromptCaches, deployment: str) -> None:
        self._caches, self._deployment = caches, deployment
        self._writes: list[tuple[str, float]] = []

    def has(self, prefix: str) -> bool:
        return self._caches.has(self._deployment, prefix)

    def write(self, prefix: str, ttl: float) -> None:
        self._writes.append((prefix, ttl))

    def commit(self) -> None:
        for prefix, ttl in self._writes:
            self._caches.write(self._deployment, prefix, ttl)


async def _stream(
    request: web.Request, state: EmulatorState, message: dict[str, Any], fault: Fault | None
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", **_ids()}
    )
    await response.prepare(request)
    for sent, (name, data) in enumerate(stream_events(message)):
        if fault is not None:
            if fault.error_after == sent:
                error = {
                    "type": "error",
                    "error": {
                        "type": fault.error_type,
                        "message": "Overloaded" if fault.error_type == "overloaded_error" else "Emulated stream error",
                    },
                }
                await response.write(b"event: error\ndata: " + orjson.dumps(error) + b"\n\n")
                await response.write_eof()
                return response
            if fault.cut_after == sent:
                assert request.transport is not None
                request.transport.abort()
                return response
            if fault.stall_after == sent:
                await asyncio.sleep(fault.stall)
            if fault.hold_after == sent:
                await state.release.wait()
            if fault.malformed_after == sent:
                await response.write(b"event: content_block_delta\ndata: {not json\n\n")
            if fault.raw_after == sent:
                with contextlib.suppress(ConnectionError):
                    await response.write(fault.raw.encode())
                    await response.write_eof()
                return response
            if fault.drip_after == sent:
                event = b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                for i in range(len(event)):
                    await response.write(event[i : i + 1])
                    await asyncio.sleep(fault.drip_interval)
                continue
        if state.event_delay:
            await asyncio.sleep(state.event_delay)
        await response.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
    await response.write_eof()
    return response


async def canary(request: web.Request) -> web.Response:
    """Where a redirect points: records what arrived and answers like a real Messages endpoint would,
    so a gateway that follows redirects would hand this answer to its client as a success."""
    state = request.app[STATE]
    state.canary_hits.append({"headers": {str(k).lower(): v for k, v in request.headers.items()}})
    message = {
        "id": "msg_canary",
        "type": "message",
        "role": "assistant",
        "model": "canary",
        "content": [{"type": "text", "text": "answered by the redirect target"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    return web.json_response(message)


async def canary_hits(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[STATE].canary_hits), content_type="application/json")


async def add_faults(request: web.Request) -> web.Response:
    specs = await request.json()
    for spec in specs if isinstance(specs, list) else [specs]:
        request.app[STATE].faults.append(Fault(**spec))
    return web.json_response({"queued": len(request.app[STATE].faults)})


async def set_quota(request: web.Request) -> web.Response:
    """[{name, requests_per_minute, input_tokens_per_minute, output_tokens_per_minute, burst_seconds, deployments}]"""
    state = request.app[STATE]
    state.quota = pools_from(await request.json(), state.quota.clock)
    return web.json_response({"pools": len(state.quota.pools)})


async def quota_report(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[STATE].quota.report()), content_type="application/json")


async def set_hosting(request: web.Request) -> web.Response:
    """{"resource": name ("" for /anthropic), "mode": azure|anthropic, "lacks_betas": [family, ...]}."""
    spec = await request.json()
    hosting = Hosting(spec.get("mode", "azure"), frozenset(spec.get("lacks_betas", ())))
    request.app[STATE].hosting[spec.get("resource", "")] = hosting
    return web.json_response({"resource": spec.get("resource", ""), "mode": hosting.mode})


async def recorded(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[STATE].requests), content_type="application/json")


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.requests.clear()
    state.faults.clear()
    state.prompt_caches.clear()
    state.quota = QuotaPools(clock=state.quota.clock)
    state.canary_hits.clear()
    return web.json_response({"reset": True})


@web.middleware
async def _compress_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # As HTTP lets any server (and Foundry's front end is free to): a JSON answer is compressed when
    # the client's Accept-Encoding allows it. A relay that passes bytes through must ask for none.
    response = await handler(request)
    if not response.prepared and response.content_type == "application/json" and "/_emulator/" not in request.path:
        response.enable_compression()
    return response


def create_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_compress_json])
    app[STATE] = state
    for prefix in ("/anthropic", "", "/{resource}/anthropic"):
        app.router.add_post(f"{prefix}/v1/messages", messages)
        app.router.add_post(f"{prefix}/v1/messages/count_tokens", count_tokens)
    app.router.add_post("/_emulator/quota", set_quota)
    app.router.add_get("/_emulator/quota", quota_report)
    app.router.add_post("/_emulator/faults", add_faults)
    app.router.add_post("/_emulator/hosting", set_hosting)
    app.router.add_route("*", "/_emulator/canary", canary)
    app.router.add_get("/_emulator/canary_hits", canary_hits)
    app.router.add_get("/_emulator/requests", recorded)
    app.router.add_post("/_emulator/reset", reset)
    return app
