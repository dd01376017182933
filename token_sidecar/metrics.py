"""Every metric the sidecar emits, in one place."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Info, ProcessCollector

from token_sidecar import __version__


class SidecarMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refresh_attempts = Counter(
            "token_sidecar_refresh_attempts",
            "Token requests to Entra ID, by token and result (success or failure).",
            ["token", "result"],
            registry=registry,
        )
        self.expiry = Gauge(
            "token_sidecar_token_expiry_timestamp_seconds",
            "When the token in the file expires (unix seconds).",
            ["token"],
            registry=registry,
        )
        self.last_success = Gauge(
            "token_sidecar_last_success_timestamp_seconds",
            "When a token was last written (unix seconds).",
            ["token"],
            registry=registry,
        )
        self.consecutive_failures = Gauge(
            "token_sidecar_consecutive_failures",
            "Failed refreshes since the last success.",
            ["token"],
            registry=registry,
        )
        Info("token_sidecar_build", "Sidecar version.", registry=registry).info({"version": __version__})
        # Memory, CPU, open files and the garbage collector of this process, under their standard names.
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)

    def init_token(self, name: str) -> None:
        # Series exist from the start, so alerts see a 0 rather than nothing.
        for result in ("success", "failure"):
            self.refresh_attempts.labels(name, result)
        self.consecutive_failures.labels(name).set(0)
