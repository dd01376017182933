"""python -m token_sidecar: keep Entra ID access tokens fresh in files for the gateway."""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from foundry_common.log_setup import configure_logging
from foundry_common.tracing import TracingConfigError
from token_sidecar import __version__
from token_sidecar.config import SidecarConfig, SidecarConfigError, load
from token_sidecar.health import create_health_app
from token_sidecar.metrics import SidecarMetrics
from token_sidecar.refresher import TokenRefresher
from token_sidecar.tracing import ProcessTracing

log = structlog.get_logger("token_sidecar")


async def run_once(config: SidecarConfig) -> int:
    """Write every token once; non-zero, with the reason, if any cannot be had."""
    metrics = SidecarMetrics(CollectorRegistry())
    failed = 0
    for spec in config.tokens:
        refresher = TokenRefresher(spec, config, metrics)
        try:
            await refresher.refresh_once()
        except Exception:
            failed += 1
            print(f"token_sidecar: no token for {spec.name!r}: {refresher.last_error}", file=sys.stderr)
    return 1 if failed else 0


async def serve(config: SidecarConfig, tracing: ProcessTracing | None = None) -> int:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    refreshers = [TokenRefresher(spec, config, metrics, tracing=tracing) for spec in config.tokens]
    runner = web.AppRunner(create_health_app(refreshers, config.ready_margin_seconds, registry), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.health_host, config.health_port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else config.health_port
    log.info("listening", port=port, version=__version__, token_names=[s.name for s in config.tokens])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = []
    for r in refreshers:
        r.task = asyncio.create_task(r.run(stop))
        tasks.append(r.task)
    await stop.wait()
    # The token file stays: the gateway may still be draining its streams.
    log.info("stopping", token_files_kept=[str(s.output) for s in config.tokens])
    await asyncio.gather(*tasks, return_exceptions=True)
    await runner.cleanup()
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        config, once = load(argv)
    except SidecarConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    try:
        tracing = ProcessTracing.from_environ("foundry-gateway-token-sidecar")
    except TracingConfigError as exc:
        print(f"tracing: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_once(config) if once else serve(config, tracing))


if __name__ == "__main__":
    sys.exit(main())
