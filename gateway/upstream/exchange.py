"""The exchange with Foundry, shared by every dialect: attempts across a route's targets, fallbacks,
cooldowns, and reading what comes back. Written once; a dialect hands it a body per target.

Retries happen only here, before anything has gone to the client. What to do after a failed
attempt is `retry.after_failure`, a pure function; this module does what it says and keeps each
target's health.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard

import aiohttp
import orjson

from gateway.config import GatewayConfig
from gateway.errors import GatewayError, too_deeply_nested
from gateway.quota.affinity import SessionEntry
from gateway.quota.book import Charge, QuotaBook
from gateway.quota.meter import Demand
from gateway.quota.scheduler import Ask, QuotaRefused
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
from gateway.upstream.routing import Routing, pool_paused
from gateway.upstream.targets import Route, Target, Upstream


@dataclass(slots=True, eq=False)  # eq=False: hashable, so one shared instance may be a field default
class Outcome:
    """What the exchange did, as far as it got: the target it tried last, the retries, and what
    Foundry said. The request's record reads it at the end, however the exchange ended."""

    target: Target | None = None
    retries: int = 0
    status: int | None = None  # Foundry's HTTP status for the last attempt
    request_id: str | None = None  # Foundry's request-id (or apim-request-id)
    auth_retried: bool = False
    betas_dropped: tuple[str, ...] = ()
    charge: Charge | None = None  # what the answered attempt was charged to its quota pool, settled at the end
    affinity: str | None = None  # strategy quota: kept, moved, new or none
    session: SessionEntry | None = None  # strategy quota: where placement sent the session
    waited: float = 0.0  # seconds waited for quota
    quota_refused: str | None = None  # strategy quota: why it got no quota (queue_full, wait_bound, waited)

    @property
    def upstream(self) -> str | None:
        return self.target.upstream.name if self.target is not None else None

    @property
    def deployment(self) -> str | None:
        return self.target.deployment if self.target is not None else None


NO_OUTCOME = Outcome()  # a request's before it has an exchange (a 404, a 400 before routing): never written


class ExchangeRecorder(Protocol):
    """What the exchange reports as it goes (gateway/observability/recorder.py)."""

    def upstream_answered(self, target: Target, status: str, seconds: float | None) -> None: ...

    def betas_dropped(self, upstream: str, betas: tuple[str, ...]) -> None: ...

    def retried(self, route: str, kind: str) -> None: ...

    def retry_denied(self, route: str) -> None: ...

    def cooled_down(self, target: Target) -> None: ...

    def quota_throttled(self, pool: str) -> None: ...

    def answer_refused(self, request_id: str, outcome: Outcome, reason: str) -> None: ...


class AttemptTrace(Protocol):
    """One attempt's span, with tracing on (gateway/observability/request_tracing.py)."""

    def inject(self, headers: dict[str, str]) -> None:
        """Its traceparent (and the caller's tracestate) into the request to Foundry."""
        ...

    def end(self, status: int | None, error: str | None) -> None: ...


class AttemptTracer(Protocol):
    def attempt(self, target: Target, reason: str) -> AttemptTrace: ...


def is_message(answer: Any) -> TypeGuard[dict[str, Any]]:
    """A Messages API message, as far as a relay must know: an object of type message with its content list."""
    return isinstance(answer, dict) and answer.get("type") == "message" and isinstance(answer.get("content"), list)


@dataclass(slots=True)
class Exchange:
    """One request's way to Foundry: the connection pool, the route's targets and their health, the
    caller's headers; what happened is its `outcome`."""

    session: aiohttp.ClientSession
    recorder: ExchangeRecorder
    routing: Routing
    config: GatewayConfig
    request_id: str
    client_headers: Mapping[str, str]
    tracer: AttemptTracer | None = None
    outcome: Outcome = field(default_factory=Outcome)
    quota: QuotaBook | None = None
    ask: Ask | None = None  # what the request draws on quota; None: nothing (count_tokens, or no pools)
    betas: str | None = None  # a native request's anthropic-beta, fitted to the route's deployments
    betas_dropped: tuple[str, ...] = ()  # what the fitting dropped from it

    def open(
        self,
        route: Route,
        body_for: Callable[[Target], bytes],
        *,
        count_tokens: bool = False,
        native: bool,
    ) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """Send the request to the route's targets until one answers 200; the last failure becomes the
        client's error. (The attempts' coroutine itself is returned, not awaited in one more.)"""
        targets = self.routing.plan(route)
        self.routing.budget.record_request()
        if route.quota is not None and self.ask is not None:
            return self._open_placed(route, targets, body_for, count_tokens, native)
        return self._open_in_turn(route, targets, body_for, count_tokens, native)

    async def _open_in_turn(
        self,
        route: Route,
        targets: list[Target],
        body_for: Callable[[Target], bytes],
        count_tokens: bool,
        native: bool,
    ) -> aiohttp.ClientResponse:
        """Strategies weighted and priority: the targets in the order planned, a retry or a fallback
        after a failure as `retry.after_failure` says."""
        settings = self.config.retries
        failure: GatewayError | None = None
        attempt = 0
        while attempt < settings.max_attempts:
            target = targets[attempt % len(targets)]
            reason = self._reason(route, targets, attempt)
            if reason is None:
                break
            attempt += 1
            charge = self._charge(target) if target.pool is not None else None
            try:
                response, failure, status, retry_after = await self._try(target, reason, body_for, count_tokens, native)
            except BaseException as exc:
                self._charge_aborted(charge, exc)
                raise
            self._charge_answered(charge, response is not None, status, retry_after)
            if response is not None:
                return response
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
                self.routing.health(target).cooling_until = 0.0
        assert failure is not None
        raise failure

    async def _open_placed(
        self,
        route: Route,
        targets: list[Target],
        body_for: Callable[[Target], bytes],
        count_tokens: bool,
        native: bool,
    ) -> aiohttp.ClientResponse:
        """strategy quota: each attempt goes where placement puts it (the session's target, else the
        pool with most room), waiting its turn for quota within the route's bound. A 429 from Foundry
        makes its pool cautious and the next attempt is placed again: another pool, or a wait."""
        assert route.quota is not None and self.ask is not None
        deadline: float | None = None  # the first placement's bound is its own; retries share it
        failure: GatewayError | None = None
        previous: Target | None = None
        for attempt in range(self.config.retries.max_attempts):
            if attempt and not self.routing.budget.try_retry():
                self.recorder.retry_denied(route.name)
                break
            if attempt and deadline is None:
                deadline = time.monotonic() + route.max_wait - self.outcome.waited
            # plan() gave the healthy ones; after a failed attempt, those still healthy.
            ready = targets if not attempt else [t for t in targets if self.routing.health(t).available()] or targets
            # Nearly always a pool has room now: no wait, no coroutine of its own.
            placement = route.quota.now(self.ask, ready)
            if placement is None:
                try:
                    placement = await route.quota.place(self.ask, ready, deadline)
                except QuotaRefused as exc:
                    self.outcome.quota_refused = exc.reason
                    raise
            target = placement.target
            outcome = self.outcome
            outcome.affinity, outcome.waited = placement.affinity, outcome.waited + placement.waited
            outcome.session = placement.session
            reason = "first" if previous is None else ("retry" if previous is target else "fallback")
            if previous is not None:
                outcome.retries += 1
                self.recorder.retried(route.name, reason)
            previous = target
            try:
                response, failure, status, retry_after = await self._try(target, reason, body_for, count_tokens, native)
            except BaseException as exc:
                self._charge_aborted(placement.charge, exc)
                raise
            self._charge_answered(placement.charge, response is not None, status, retry_after)
            if response is not None:
                return response
            if status is not None and status not in RETRYABLE_STATUSES:
                break  # Foundry refused the request itself: another target would too
        assert failure is not None
        raise failure

    def _charge_answered(self, charge: Charge | None, ok: bool, status: int | None, retry_after: float | None) -> None:
        """An attempt's quota charge once it is answered: kept when Foundry answered (settled at the
        request's end), refunded when it refused."""
        if charge is not None:
            if ok:
                self.outcome.charge = charge
            else:
                self._refund(charge, status, retry_after)

    def _charge_aborted(self, charge: Charge | None, exc: BaseException) -> None:
        """An attempt that ended in an exception: nothing was sent, and the charge comes back; or its
        client left mid-way, and Foundry may have counted it: kept, settled on the request's estimate."""
        if charge is not None:
            if isinstance(exc, asyncio.CancelledError):
                self.outcome.charge = charge
            else:
                self._refund(charge, None, None)

    def _charge(self, target: Target) -> Charge | None:
        """Metering alone (strategies weighted and priority): the attempt is charged to its pool."""
        if target.pool is None or self.ask is None or self.quota is None:
            return None
        return self.quota.charge(target.pool, Demand(1, self.ask.input_tokens, self.ask.output_tokens))

    def _refund(self, charge: Charge | None, status: int | None, retry_after: float | None) -> None:
        """An attempt Foundry did not answer: its charge comes back. A 429 says the pool is empty,
        whatever the gateway thought: the pool is paused for its retry-after and trusted less."""
        if charge is None or self.quota is None:
            return
        self.quota.refund(charge, counted=status is not None and status != 429)
        if status == 429:
            charge.meter.throttled(retry_after)
            self.recorder.quota_throttled(charge.meter.name)

    def _reason(self, route: Route, targets: list[Target], attempt: int) -> str | None:
        """Why this attempt is made (first, retry of the same target, fallback to another); None
        when a retry may not go (the target is paused, its quota pool is, or the retry budget is spent)."""
        if attempt == 0:
            return "first"
        target = targets[attempt % len(targets)]
        if (
            pool_paused(target, time.monotonic())
            or not self.routing.health(target).available()
            or not self.routing.budget.try_retry()
        ):
            self.recorder.retry_denied(route.name)
            return None
        self.outcome.retries += 1
        reason = "fallback" if targets[(attempt - 1) % len(targets)] is not target else "retry"
        self.recorder.retried(route.name, reason)
        return reason

    async def _try(
        self, target: Target, reason: str, body_for: Callable[[Target], bytes], count_tokens: bool, native: bool
    ) -> tuple[aiohttp.ClientResponse | None, GatewayError | None, int | None, float | None]:
        """One attempt: the 200 response; or the client's error, Foundry's status and its retry hint."""
        span = self.tracer.attempt(target, reason) if self.tracer is not None else None
        try:
            response = await self._attempt(target, body_for, count_tokens=count_tokens, native=native, span=span)
        except GatewayError as exc:
            if span is not None:
                span.end(None, "timeout" if exc.status == 504 else "connection_error")
            if exc.status not in (502, 504):
                raise  # not the upstream's doing (no usable credential, a body that cannot be sent)
            self._failed(target, None, None)
            return None, exc, None, None
        if span is not None:
            span.end(response.status, None if response.status == 200 else str(response.status))
        if response.status == 200:
            self.routing.health(target).succeeded()
            return response, None, None, None
        unusable = unusable_status(target.upstream, response.status)
        if unusable is not None:
            response.close()
            self.recorder.answer_refused(self.request_id, self.outcome, unusable.reason)
            self._failed(target, None, None)
            return None, unusable, None, None
        failure, retry_after = await self._failure(response, target)
        # A request Foundry refused says nothing of the target; a 429 from a metered pool pauses the pool instead.
        if response.status in RETRYABLE_STATUSES and not (response.status == 429 and target.pool is not None):
            self._failed(target, response.status, retry_after if self.config.retries.retry_after_cooldown else None)
        return None, failure, response.status, retry_after

    async def _failure(self, response: aiohttp.ClientResponse, target: Target) -> tuple[GatewayError, float | None]:
        """An upstream error answer: the client's error, and the upstream's retry hint."""
        try:
            body = await read_error_body(response, self.config.server.max_upstream_error_bytes)
        finally:
            response.release()
        failure = error_from_upstream(response.status, body, target.upstream, response.headers)
        return failure, retry_after_seconds(response.headers, self.config.retries.cooldown_max_seconds)

    def _failed(self, target: Target, status: int | None, retry_after: float | None) -> None:
        if self.routing.health(target).failed(status, retry_after):
            self.recorder.cooled_down(target)

    async def _attempt(
        self,
        target: Target,
        body_for: Callable[[Target], bytes],
        *,
        count_tokens: bool,
        native: bool,
        span: AttemptTrace | None = None,
    ) -> aiohttp.ClientResponse:
        """One target: its body, its credentials, one retry after a 401 if the token file changed.
        `span`, with tracing on, is the attempt's: its traceparent goes to Foundry."""
        outcome = self.outcome
        upstream = target.upstream
        outcome.target = target
        try:
            body = body_for(target)
        except orjson.JSONEncodeError:
            raise too_deeply_nested() from None  # parsed (orjson reads 1024 levels), but not re-encoded
        headers = request_headers(upstream, self.client_headers, self.request_id, native=native, betas=self.betas)
        if span is not None:
            span.inject(headers)
        if self.betas_dropped:
            outcome.betas_dropped = self.betas_dropped
            self.recorder.betas_dropped(upstream.name, self.betas_dropped)
        url = upstream.count_tokens_url if count_tokens else upstream.messages_url
        response = await self._send(target, url, body, headers)
        if response.status == 401 and _credential_changed(upstream, headers):
            # The sidecar wrote a token the recheck interval had not noticed yet: retry once with it.
            response.release()
            outcome.auth_retried = True
            headers = request_headers(upstream, self.client_headers, self.request_id, native=native, betas=self.betas)
            if span is not None:
                span.inject(headers)
            response = await self._send(target, url, body, headers)
        outcome.status = response.status
        outcome.request_id = response.headers.get("request-id") or response.headers.get("apim-request-id")
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
        target = self.outcome.target
        assert target is not None
        try:
            return await read_body(response, target, self.config.server.max_upstream_body_bytes)
        except UnusableAnswer as exc:
            self.recorder.answer_refused(self.request_id, self.outcome, exc.reason)
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
        target = self.outcome.target
        assert target is not None
        exc = UnusableAnswer(target.upstream, "not_a_message", f"answered 200 with a body that is not {what}")
        self.recorder.answer_refused(self.request_id, self.outcome, exc.reason)
        return exc


def _credential_changed(upstream: Upstream, sent: dict[str, str]) -> bool:
    """Re-read the credential now; True when it differs from the one just refused."""
    upstream.credential.invalidate()
    if not upstream.credential.status().usable:
        return False
    return any(sent.get(name) != value for name, value in upstream.credential.headers().items())
