"""The refresh loop for one token: get it, write it, wait, and on failure back off and keep the old one."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

import structlog
from azure.core.credentials_async import AsyncSupportsTokenInfo

from foundry_common.token_file import Token
from token_sidecar.config import SidecarConfig, TokenSpec
from token_sidecar.credential import build_credential
from token_sidecar.metrics import SidecarMetrics
from token_sidecar.schedule import backoff_delay, refresh_delay
from token_sidecar.sink import read_token, write_token
from token_sidecar.tracing import ProcessTracing

log = structlog.get_logger("token_sidecar")

CredentialFactory = Callable[[TokenSpec, str | None], AsyncSupportsTokenInfo]


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for logs. azure-identity's messages carry AADSTS codes, never the secret."""
    if isinstance(exc, TimeoutError):
        return "TimeoutError: Entra ID did not answer within the attempt timeout"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message.splitlines()[0][:500]}"


class TokenRefresher:
    def __init__(
        self,
        spec: TokenSpec,
        config: SidecarConfig,
        metrics: SidecarMetrics,
        *,
        credential_factory: CredentialFactory = build_credential,
        rng: random.Random | None = None,
        tracing: ProcessTracing | None = None,
    ) -> None:
        self.spec = spec
        self._tracing = tracing
        self._config = config
        self._metrics = metrics
        self._factory = credential_factory
        self._rng = rng or random.Random()  # jitter, not security
        self.failures = 0
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None  # the running refresh loop, once started
        self.current: Token | None = read_token(spec.output)
        metrics.init_token(spec.name)
        if self.current is not None:
            metrics.expiry.labels(spec.name).set(self.current.expires_on)

    def remaining(self, now: float | None = None) -> float:
        if self.current is None:
            return float("-inf")
        return self.current.expires_on - (time.time() if now is None else now)

    async def refresh_once(self) -> Token:
        """One real request to Entra ID; the token is written before this returns. Raises on failure."""
        name = self.spec.name
        span = None
        if self._tracing is not None:
            attributes = {"token_sidecar.token": name, "token_sidecar.scope": self.spec.scope}
            span = self._tracing.start("token_sidecar refresh", attributes)
        try:
            credential = self._factory(self.spec, str(self._config.ca_file) if self._config.ca_file else None)
            async with credential:
                # A hung Entra must not hang the loop: a timeout is a failure like any other.
                info = await asyncio.wait_for(
                    credential.get_token_info(self.spec.scope), self._config.attempt_timeout_seconds
                )
            token = Token(info.token, float(info.expires_on), info.token_type or "Bearer", info.refresh_on)
            await asyncio.to_thread(write_token, self.spec.output, token, self.spec.mode)
        except Exception as exc:
            self.failures += 1
            self.last_error = describe_failure(exc)
            if span is not None:
                ProcessTracing.end(span, type(exc).__name__)
            self._metrics.refresh_attempts.labels(name, "failure").inc()
            self._metrics.consecutive_failures.labels(name).set(self.failures)
            log.warning(
                "token_refresh_failed",
                token_name=name,
                consecutive_failures=self.failures,
                reason=self.last_error,
                current_token_remaining_s=None if self.current is None else round(self.remaining()),
            )
            raise
        if span is not None:
            span.set_attribute("token_sidecar.expires_in_s", round(token.expires_on - time.time()))
            ProcessTracing.end(span)
        self.current = token
        self.failures = 0
        self.last_error = None
        self._metrics.refresh_attempts.labels(name, "success").inc()
        self._metrics.consecutive_failures.labels(name).set(0)
        self._metrics.expiry.labels(name).set(token.expires_on)
        self._metrics.last_success.labels(name).set(time.time())
        log.info("token_written", token_name=name, path=str(self.spec.output), expires_in_s=round(self.remaining()))
        return token

    def next_delay(self, succeeded: bool) -> float:
        config = self._config
        if succeeded and self.current is not None:
            now = time.time()
            return refresh_delay(
                now,
                self.current.expires_on,
                self.current.refresh_on,
                fraction=config.refresh_fraction,
                jitter=config.jitter_fraction,
                draw=self._rng.random(),
            )
        return backoff_delay(
            self.failures,
            initial=config.retry_initial_seconds,
            maximum=config.retry_max_seconds,
            draw=self._rng.random(),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until `stop` is set; failures only lengthen the wait, they never end the loop.

        Whatever goes wrong in an iteration, the token's own failure or a bug in scheduling it, is
        logged and waited out: a loop that ended would leave the last token to expire unrefreshed.
        (If it ends all the same, /healthz fails and the kubelet restarts the container.)
        """
        while not stop.is_set():
            try:
                await self.refresh_once()
                succeeded = True
            except Exception:
                succeeded = False  # refresh_once has counted and logged it
            try:
                delay = self.next_delay(succeeded)
            except Exception:
                log.exception("token_refresh_schedule_failed", token_name=self.spec.name)
                delay = self._config.retry_max_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
