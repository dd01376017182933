"""The exchange with Foundry, shared by every dialect: attempts across a route's targets, fallbacks,
cooldowns, and reading what comes back. Written once; a dialect hands it a body per target.

Retries happen only here, before anything has gone to the client. What to do after a failed
attempt is `retry.after_failure`, a pure function; this module does what it says and keeps each
target's health.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

import aiohttp
import orjson

from gateway.context import RequestContext
from gateway.errors import GatewayError, too_deeply_nested
from gateway.observability.recorder import Recorder
from gateway.observability.request_tracing import AttemptSpan, RequestTracing
from gateway.runtime import Route, Runtime, Target, Upstream
from gateway.upstream.client import (
    UnusableAnswer,
    error_from_upstream,
    post,
    read_body,
    read_error_body,
    request_headers,
    unusable_status,
)
from gateway.upstream.retry import RETRYABLE_STATUSES, Step, after_failure, retry_after_seconds


def is_message(answer: Any) -> TypeGuard[dict[str, Any]]:
    """A Messages API message, as far as a relay must know: an object of type message with its content list."""
    return isinstance(answer, dict) and answer.get("type") == "message" and isinstance(answer.get("content"), list)


class Exchange:
    """What one request needs to reach Foundry: the connection pool, the recorder, the caller's headers."""

    __slots__ = ("client_headers", "ctx", "recorder", "session")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        recorder: Recorder,
        ctx: RequestContext,
        client_headers: Mapping[str, str],
    ) -> None:
        self.session = session
        self.recorder = recorder
        self.ctx = ctx
        self.client_headers = client_headers

    async def open(
        self,
        route: Route,
        body_for: Callable[[Target], bytes],
        *,
        count_tokens: bool = False,
        native: bool,
    ) -> aiohttp.ClientResponse:
        """Send the request to the route's targets in turn until one answers 200; the last failure
        becomes the client's error."""
        ctx, recorder = self.ctx, self.recorder
        runtime = ctx.runtime
        targets = runtime.plan(route)
        settings = runtime.config.retries
        runtime.budget.record_request()
        failure: GatewayError | None = None
        attempt = 0
        while attempt < settings.max_attempts:
            target = targets[attempt % len(targets)]
            reason = "first"
            if attempt > 0:
                if not runtime.health(target).available() or not runtime.budget.try_retry():
                    recorder.retry_denied(route.name)
                    break
                ctx.retries += 1
                previous = targets[(attempt - 1) % len(targets)]
                reason = "fallback" if previous is not target else "retry"
                recorder.retried(route.name, reason)
            attempt += 1
            status: int | None = None
            retry_after: float | None = None
            span = None
            if ctx.tracing is not None and ctx.span is not None:
                span = ctx.tracing.attempt_span(ctx.span, target, reason)
            try:
                response = await self._attempt(target, body_for, count_tokens=count_tokens, native=native, span=span)
            except GatewayError as exc:
                if span is not None:
                    span.end(None, "timeout" if exc.status == 504 else "connection_error")
                if exc.status not in (502, 504):
                    raise  # not the upstream's doing (no usable credential, a body that cannot be sent)
                failure = exc
                self._failed(runtime, target, None, None)
            else:
                if span is not None:
                    span.end(response.status, None if response.status == 200 else str(response.status))
                if response.status == 200:
                    runtime.health(target).succeeded()
                    return response
                unusable = unusable_status(target.upstream, response.status)
                if unusable is not None:
                    response.close()
                    recorder.answer_refused(ctx, unusable.reason)
                    failure = unusable
                    self._failed(runtime, target, None, None)
                else:
                    status = response.status
                    failure, retry_after = await self._failure(response, target, runtime)
                    if status in RETRYABLE_STATUSES:  # a request Foundry refused says nothing of the target
                        self._failed(runtime, target, status, retry_after if settings.retry_after_cooldown else None)
            step = after_failure(
                status,
                retry_after,
                attempt=attempt,
                max_attempts=settings.max_attempts,
                lone_target=len(targets) == 1,
                wait_cap=settings.retry_after_cap_seconds,
            )
            if step is Step.FAIL:
                break
            if step is Step.WAIT:
                assert retry_after is not None
                await asyncio.sleep(retry_after)
                runtime.health(target).cooling_until = 0.0
        assert failure is not None
        raise failure

    async def _failure(
        self, response: aiohttp.ClientResponse, target: Target, runtime: Runtime
    ) -> tuple[GatewayError, float | None]:
        """An upstream error answer: the client's error, and the upstream's retry hint."""
        try:
            body = await read_error_body(response, runtime.config.server.max_upstream_error_bytes)
        finally:
            response.release()
        failure = error_from_upstream(response.status, body, target.upstream, response.headers)
        return failure, retry_after_seconds(response.headers, runtime.config.retries.cooldown_max_seconds)

    def _failed(self, runtime: Runtime, target: Target, status: int | None, retry_after: float | None) -> None:
        if runtime.health(target).failed(status, retry_after):
            self.recorder.cooled_down(target)

    async def _attempt(
        self,
        target: Target,
        body_for: Callable[[Target], bytes],
        *,
        count_tokens: bool,
        native: bool,
        span: AttemptSpan | None = None,
    ) -> aiohttp.ClientResponse:
        """One target: its body, its credentials, one retry after a 401 if the token file changed.
        `span`, with tracing on, is the attempt's: its traceparent goes to Foundry."""
        ctx = self.ctx
        upstream = target.upstream
        ctx.target = target
        ctx.upstream, ctx.deployment = upstream.name, target.deployment
        try:
            body = body_for(target)
        except orjson.JSONEncodeError:
            raise too_deeply_nested() from None  # parsed (orjson reads 1024 levels), but not re-encoded
        headers, dropped = request_headers(upstream, self.client_headers, ctx.request_id, native=native)
        if span is not None and ctx.span is not None:
            RequestTracing.inject(headers, ctx.span, span)
        if dropped:
            ctx.betas_dropped = dropped
            self.recorder.betas_dropped(upstream.name, dropped)
        url = upstream.count_tokens_url if count_tokens else upstream.messages_url
        response = await self._send(target, url, body, headers)
        if response.status == 401 and _credential_changed(upstream, headers):
            # The sidecar wrote a token the recheck interval had not noticed yet: retry once with it.
            response.release()
            ctx.auth_retried = True
            headers, _ = request_headers(upstream, self.client_headers, ctx.request_id, native=native)
            if span is not None and ctx.span is not None:
                RequestTracing.inject(headers, ctx.span, span)
            response = await self._send(target, url, body, headers)
        ctx.upstream_status = response.status
        ctx.upstream_request_id = response.headers.get("request-id") or response.headers.get("apim-request-id")
        return response

    async def _send(self, target: Target, url: str, body: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        sent = time.perf_counter()
        try:
            response = await post(self.session, target, url, body, headers)
        except GatewayError as exc:
            self.recorder.upstream_answered(target, "timeout" if exc.status == 504 else "error", None)
            raise
        self.recorder.upstream_answered(target, str(response.status), time.perf_counter() - sent)
        return response

    async def read_answer(self, response: aiohttp.ClientResponse) -> bytes:
        """The body of a 200 answer, bounded by server.max_upstream_body_bytes."""
        ctx = self.ctx
        assert ctx.target is not None
        try:
            return await read_body(response, ctx.target, ctx.runtime.config.server.max_upstream_body_bytes)
        except UnusableAnswer as exc:
            self.recorder.answer_refused(ctx, exc.reason)
            raise

    async def answer(
        self,
        response: aiohttp.ClientResponse,
        is_answer: Callable[[Any], bool] = is_message,
        what: str = "a Messages API message",
    ) -> tuple[bytes, dict[str, Any]]:
        """A 200's body, bytes and parsed, once it is known to be what the client asked for: an HTML page,
        an array or `{}` with a 200 would otherwise reach an SDK as a broken success."""
        try:
            raw = await self.read_answer(response)
        finally:
            response.release()
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if not is_answer(parsed):
            raise self.not_an_answer(what)
        return raw, parsed

    def not_an_answer(self, what: str) -> UnusableAnswer:
        """A 200 whose body is not `what` the client asked for: counted, logged, and a 502 to raise."""
        assert self.ctx.target is not None
        exc = UnusableAnswer(self.ctx.target.upstream, "not_a_message", f"answered 200 with a body that is not {what}")
        self.recorder.answer_refused(self.ctx, exc.reason)
        return exc


def _credential_changed(upstream: Upstream, sent: dict[str, str]) -> bool:
    """Re-read the credential now; True when it differs from the one just refused."""
    upstream.credential.invalidate()
    if not upstream.credential.status().usable:
        return False
    return any(sent.get(name) != value for name, value in upstream.credential.headers().items())
