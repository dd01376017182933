"""python -m gateway --config FILE"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from foundry_common.log_setup import configure_logging
from foundry_common.tracing import TracingConfigError
from gateway import __version__
from gateway.app import create_app
from gateway.app_keys import LOAD, RECORDER
from gateway.config import ConfigError, GatewayConfig, ServerConfig, load_config
from gateway.connections import ConnectionGuard
from gateway.handlers.admin import create_admin_app
from gateway.observability.request_tracing import RequestTracing

log = structlog.get_logger("gateway")

# Requests make few reference cycles (refcounting frees nearly everything), yet the default
# threshold of 700 runs a young collection every few requests. Measured under load: about 7%
# of the gateway's CPU in the collector, and 35 ms full collections in the p99 (docs/benchmarks.md).
GC_THRESHOLDS = (10_000, 50, 100)


def settle_heap() -> None:
    """After start-up: what exists now lives as long as the process, so the collector stops scanning it.

    The one exception is the start-up config, replaced at the first reload: reference counting frees
    it, and any cycles in it stay, once. Later configs are not frozen (tests/unit/test_reload_heap.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(config: GatewayConfig, config_path: Path, tracing: RequestTracing | None = None) -> int:
    server = config.server
    registry = CollectorRegistry()
    app = create_app(config, registry, config_path=config_path, tracing=tracing)
    runner = _api_runner(app, server)
    try:
        await runner.setup()  # the app's cleanup contexts start here, the span export process among them
    except TracingConfigError as exc:
        print(f"tracing: {exc}", file=sys.stderr)
        return 2
    listener = await _listen(runner, app, server)
    admin = web.AppRunner(create_admin_app(app, registry), access_log=None, handle_signals=False)
    await admin.setup()
    await web.TCPSite(admin, server.admin_host, server.admin_port).start()
    settle_heap()
    log.info(
        "listening",
        host=server.host,
        port=listener.sockets[0].getsockname()[1],
        admin_port=admin.addresses[0][1] if admin.addresses else server.admin_port,
        version=__version__,
        frozen_objects=gc.get_freeze_count(),
    )
    await _signalled()
    await _drain(app, server, listener, runner)
    await admin.cleanup()
    log.info("stopped")
    return 0


def _api_runner(app: web.Application, server: ServerConfig) -> web.AppRunner:
    # handler_cancellation: a client that goes away cancels its handler, and with it the upstream request.
    # auto_decompress off: request bodies are inflated by the handler, bounded, with errors in the caller's dialect.
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,
        shutdown_timeout=server.drain_timeout_seconds,
        keepalive_timeout=server.idle_timeout_seconds,
        auto_decompress=False,
    )


async def _listen(runner: web.AppRunner, app: web.Application, server: ServerConfig) -> asyncio.Server:
    """The API port, behind the connection guard (connection limit, header timeout)."""
    assert runner.server is not None
    guard = ConnectionGuard(
        runner.server,
        app[RECORDER],
        max_connections=server.max_connections,
        header_timeout=server.header_timeout_seconds,
    )
    loop = asyncio.get_running_loop()
    return await loop.create_server(guard, server.host, server.port, backlog=1024, reuse_address=True)


async def _signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _drain(app: web.Application, server: ServerConfig, listener: asyncio.Server, runner: web.AppRunner) -> None:
    """Unready at once, keep serving while endpoints propagate, then stop accepting and give in-flight
    requests and streams up to the drain timeout; the app's resources close after them."""
    app[LOAD].draining = True
    log.info("draining", delay_s=server.drain_delay_seconds, timeout_s=server.drain_timeout_seconds,
             in_flight=app[LOAD].active)  # fmt: skip
    await asyncio.sleep(server.drain_delay_seconds)
    listener.close()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description="foundry-gateway")
    parser.add_argument("--config", required=True, help="gateway config file (YAML)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(config.logging.level, config.logging.format)
    try:
        tracing = RequestTracing.from_environ("foundry-gateway", config.logging.level, config.logging.format)
    except TracingConfigError as exc:
        print(f"tracing: {exc}", file=sys.stderr)
        return 2
    log.info("tracing", enabled=tracing is not None)
    if not config.responses.reasoning_keys:
        log.warning(
            "reasoning_keys_per_process",
            reason="responses.reasoning_keys_file is not set: items open only on the replica that sealed them",
        )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every platform the images run on
        return asyncio.run(serve(config, Path(args.config), tracing))
    return uvloop.run(serve(config, Path(args.config), tracing))


if __name__ == "__main__":
    sys.exit(main())
