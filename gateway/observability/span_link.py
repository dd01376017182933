"""The gateway's end of its span export process: started with the gateway, fed the finished
requests' rows (request_tracing.REQUEST_FIELDS) in batches, restarted if it dies, and never waited for.

Records go down the process's stdin as JSON lines, one line per batch: every 50 ms, or at 256
records. Nothing on the request path blocks on the process. If it falls behind (a collector that
is down or slow) and more than `backlog_bytes` wait in the pipe, or if it is down, batches are
dropped and counted (foundry_gateway_spans_dropped_total): tracing loses spans, requests lose
nothing. At exit the gateway sends what it holds and closes the pipe; the process exports its
last spans and ends.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from foundry_common.tracing import TracingConfigError

# A request's row: its fields in the order request_tracing.REQUEST_FIELDS names them.
Row = tuple[Any, ...]

log = structlog.get_logger("gateway.tracing")

FLUSH_SECONDS = 0.05
FLUSH_RECORDS = 256
BACKLOG_BYTES = 8 << 20  # about 10,000 requests' records waiting: seconds of a busy pod's traffic
READY_SECONDS = 60.0  # about half a second, unless the machine is starved (or under valgrind)
# At exit: the process's last export, bounded by the exporter's own timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s).
EXIT_SECONDS = 15.0
STEADY_SECONDS = 60.0  # a process that ran this long before dying is restarted at once
_LINE = orjson.OPT_APPEND_NEWLINE

Dropped = Callable[[int, str], None]  # (spans, reason)


def _spans(records: list[Row]) -> int:
    return sum(1 + len(r[-1]) for r in records)  # the request's span and its attempts


class SpanLink:
    __slots__ = ("_argv", "_backlog", "_closing", "_loop", "_process", "_records", "_supervisor", "_timer", "dropped")

    def __init__(self, service: str, log_level: str, log_format: str, backlog_bytes: int = BACKLOG_BYTES) -> None:
        self._argv = [sys.executable, "-m", "gateway.observability.span_export", service, log_level, log_format]
        self._backlog = backlog_bytes
        self._records: list[Row] = []
        self._timer: asyncio.TimerHandle | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped: Dropped = lambda spans, reason: None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self, dropped: Dropped) -> None:
        """Start the process and wait until it is ready; TracingConfigError if it cannot start."""
        self.dropped = dropped
        self._loop = asyncio.get_running_loop()
        self._process = await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _spawn(self) -> asyncio.subprocess.Process:
        # Readiness comes on a pipe of its own: the process's stdout and stderr are the gateway's,
        # so its log lines (the SDK's export failures) land where the gateway's do.
        ready_r, ready_w = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv, str(ready_w), stdin=asyncio.subprocess.PIPE, pass_fds=(ready_w,)
            )
        finally:
            os.close(ready_w)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(ready_r, "rb", 0)
        )
        try:
            line = await asyncio.wait_for(reader.readline(), READY_SECONDS)
        except TimeoutError:
            line = b""
        finally:
            transport.close()
        if line != b"ready\n":
            if process.returncode is None:
                process.kill()
            code = await process.wait()
            raise TracingConfigError(f"the span export process ended (exit code {code}) before it was ready")
        return process

    async def _supervise(self) -> None:
        failures = 0
        while True:  # until close() cancels it
            process = self._process
            started = time.monotonic()
            if process is not None:
                code = await process.wait()
                if self._closing:
                    return
                self._process = None
                failures = 0 if time.monotonic() - started >= STEADY_SECONDS else failures + 1
                log.error("span_exporter_exited", exit_code=code, restart_in_s=min(30, 2**failures - 1))
            await asyncio.sleep(min(30, 2**failures - 1))
            try:
                self._process = await self._spawn()
            except (TracingConfigError, OSError) as exc:
                failures += 1
                log.error("span_exporter_not_restarted", error=str(exc))
            else:
                log.info("span_exporter_restarted")

    def send(self, record: Row) -> None:
        records = self._records
        records.append(record)
        if len(records) >= FLUSH_RECORDS:
            self.flush()
        elif self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        records = self._records
        if not records:
            return
        self._records = []
        process = self._process
        stdin = process.stdin if process is not None else None
        if stdin is None or stdin.is_closing():
            self.dropped(_spans(records), "exporter_down")
            return
        if stdin.transport.get_write_buffer_size() > self._backlog:
            self.dropped(_spans(records), "backlog")
            return
        try:
            stdin.write(orjson.dumps(records, option=_LINE))
        except orjson.JSONEncodeError:  # a value no request should carry; the spans go, the gateway goes on
            log.exception("span_records_unencodable")
            self.dropped(_spans(records), "unencodable")

    async def close(self) -> None:
        """Send what is held, close the pipe, and give the process its last export."""
        self._closing = True
        self.flush()
        if self._supervisor is not None:
            self._supervisor.cancel()
        process = self._process
        if process is None or process.returncode is not None or process.stdin is None:
            return
        try:
            async with asyncio.timeout(EXIT_SECONDS):
                await process.stdin.drain()
                process.stdin.close()
                await process.wait()
        except (TimeoutError, ConnectionError):
            if process.returncode is None:
                process.kill()
                log.warning("span_exporter_killed", reason=f"still exporting {EXIT_SECONDS:.0f} s after the last span")
            await process.wait()
