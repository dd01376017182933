"""make bench: what the gateway adds over a direct call and over a minimal relay, measured in one run.

Loopback only, bounded in time. The gateway and the relay run on core 0; the fake upstream
(bench/upstream.py, pre-rendered answers), wrk and the asyncio stream client on core 1. Each
wrk row is the median of --runs runs of --seconds each, after a warm-up. Ratios within one
run are what count on a noisy machine. Metrics, the access log and inbound API-key auth stay
on in the gateway throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import streams
from bench.streams import request_body
from devtools.harness import Process, child_pids, free_port, rss_mb, start_gateway, start_redis

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
UPSTREAM_KEY, CLIENT_KEY = "bench-key", "bench-client-key"
LIMITED_KEY = "bench-limited-client-key"  # a client with limits and a budget, counted in Redis
LITELLM_KEY = "sk-bench-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e"  # LiteLLM refuses to start without a master key
LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "{key}"
"""
SHAPES = {"non-streaming": "bench-json", "stream 20 events": "bench-s20", "stream 200 events": "bench-s200"}
PACED = "bench-pace-20-2"  # 14 text deltas, 2 ms apart: TTFT and per-event latency
SLOW = "bench-pace-20-250"  # 14 text deltas, 250 ms apart: the 1,000 concurrent slow streams
SLOW_STREAMS = 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    """CPU of a process's children: with tracing on, the gateway's span export process."""
    return sum(cpu_seconds(child) for child in child_pids(pid))


def tree_cpu_seconds(pid: int) -> float:
    return cpu_seconds(pid) + children_cpu_seconds(pid)


def settle(pid: int, timeout: float = 60.0) -> None:
    """Wait until a process's children are idle: a traced gateway's export process exports the spans
    of one run before the next target's run starts, instead of taking core 1 from it."""
    deadline = time.monotonic() + timeout
    last = -1.0
    while time.monotonic() < deadline:
        now = children_cpu_seconds(pid)
        if now == last:
            return
        last = now
        time.sleep(0.25)


def pin(pid: int, core: int) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True, capture_output=True)


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def wrk(url: str, body: dict[str, object], key: str, connections: int, seconds: int, work: Path) -> tuple[float, ...]:
    """(requests/s, p50 ms, p99 ms), wrk pinned to core 1."""
    script = work / "post.lua"
    script.write_text(LUA.format(body=orjson.dumps(body).decode(), key=key))
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"{url}: errors during the run:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return rps, pct("50"), pct("99")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def gateway_config(upstream_url: str) -> dict[str, Any]:
    """The gateway as deployed, in front of the fake upstream: inbound API-key auth, a route per shape."""
    models = [*SHAPES.values(), PACED, SLOW]
    return {
        "server": {"max_concurrent_requests": 4096},
        "logging": {"level": "info"},
        "inbound": {
            "api_keys": [
                {"client": "bench", "sha256": hashlib.sha256(CLIENT_KEY.encode()).hexdigest()},
                # Limits no run reaches: every request still makes its Redis round trip and charge.
                {
                    "client": "bench-limited",
                    "sha256": hashlib.sha256(LIMITED_KEY.encode()).hexdigest(),
                    "requests_per_minute": 10**9,
                    "tokens_per_minute": 10**12,
                    "budget": {"usd_per_day": 10**9, "tokens_per_month": 10**15},
                },
            ]
        },
        "upstreams": [
            {"name": "f", "base_url": upstream_url + "/anthropic", "auth": {"type": "api_key", "key_env": "BENCH_KEY"}}
        ],
        "routes": [{"model": m, "targets": [{"upstream": "f", "deployment": m}]} for m in models],
    }


def with_quota(config: dict[str, Any]) -> None:
    """Every route on strategy quota, its target in a pool no run empties: placement and metering, never a wait."""
    limits = {"requests_per_minute": 10**9, "input_tokens_per_minute": 10**12, "output_tokens_per_minute": 10**12}
    config["quota_pools"] = [{"name": "bench", **limits}]
    for route in config["routes"]:
        route["strategy"] = "quota"
        for target in route["targets"]:
            target["quota_pool"] = "bench"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="fgw-bench-"))
        self.upstream_port = free_port()
        self.upstream = Process(
            "fake-foundry", [str(ROOT / "bench" / "upstream.py"), str(self.upstream_port)], log_dir=self.work
        )
        wait_port(self.upstream_port)
        pin(self.upstream.popen.pid, 1)
        self.upstream_url = f"http://127.0.0.1:{self.upstream_port}"
        self.gateway, self.gateway_url = self.start_gateway()
        # The same gateway with state.redis, on the same core, against Debian's redis-server on core 1.
        self.redis, redis_port = start_redis(self.work)
        pin(self.redis.popen.pid, 1)
        self.limited, self.limited_url = self.start_gateway(
            {"redis": {"url": f"redis://127.0.0.1:{redis_port}/0", "timeout_ms": 100}}
        )
        # The same gateway with every route on strategy quota, its pool local, then shared through Redis.
        self.quota, self.quota_url = self.start_gateway(quota=True)
        redis_state = {"redis": {"url": f"redis://127.0.0.1:{redis_port}/0", "timeout_ms": 100}}
        self.quota_shared, self.quota_shared_url = self.start_gateway(redis_state, quota=True)
        # The same gateway with tracing on at full sampling, exporting to a sink on core 1.
        sink_port = free_port()
        self.sink = Process("otlp-sink", [str(ROOT / "bench" / "otlp_sink.py"), str(sink_port)], log_dir=self.work)
        wait_port(sink_port)
        pin(self.sink.popen.pid, 1)
        otel = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"}
        self.traced, self.traced_url = self.start_gateway(env={**otel, "OTEL_TRACES_SAMPLER": "always_on"})
        # And at the sampling a busy production gateway would run: one trace in ten.
        self.sampled, self.sampled_url = self.start_gateway(
            env={**otel, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
        )
        relay_port = free_port()
        self.relay = Process(
            "relay", [str(ROOT / "bench" / "relay.py"), str(relay_port), self.upstream_url], log_dir=self.work
        )
        wait_port(relay_port)
        pin(self.relay.popen.pid, 0)
        self.targets: dict[str, tuple[str, str, Process | None]] = {
            "direct": (self.upstream_url + "/v1/messages", UPSTREAM_KEY, None),
            "minimal relay": (f"http://127.0.0.1:{relay_port}/v1/messages", UPSTREAM_KEY, self.relay),
            "gateway /v1/messages": (self.gateway_url + "/v1/messages", CLIENT_KEY, self.gateway),
            "gateway /v1/chat/completions": (self.gateway_url + "/v1/chat/completions", CLIENT_KEY, self.gateway),
            "gateway /v1/responses": (self.gateway_url + "/v1/responses", CLIENT_KEY, self.gateway),
            "gateway /v1/messages, Redis limits": (self.limited_url + "/v1/messages", LIMITED_KEY, self.limited),
            "gateway /v1/messages, quota strategy": (self.quota_url + "/v1/messages", CLIENT_KEY, self.quota),
            "gateway /v1/messages, quota, Redis-shared pools": (
                self.quota_shared_url + "/v1/messages",
                CLIENT_KEY,
                self.quota_shared,
            ),
            "gateway /v1/messages, tracing on": (self.traced_url + "/v1/messages", CLIENT_KEY, self.traced),
            "gateway /v1/messages, tracing 10%": (self.sampled_url + "/v1/messages", CLIENT_KEY, self.sampled),
        }
        # Throughput rows only: the same OpenAI requests through LiteLLM's proxy, on the same upstream and core.
        self.litellm: dict[str, tuple[str, str, Process | None]] = {}
        if args.litellm:
            self.litellm = {"LiteLLM proxy /v1/chat/completions": self.start_litellm(args.litellm)}

    def start_litellm(self, executable: str) -> tuple[str, str, Process]:
        upstream = {"api_base": self.upstream_url, "api_key": UPSTREAM_KEY}
        models = [{"model_name": m, "litellm_params": {"model": f"anthropic/{m}", **upstream}} for m in SHAPES.values()]
        config = {"model_list": models, "general_settings": {"master_key": LITELLM_KEY}}
        path = self.work / "litellm.yaml"
        path.write_text(orjson.dumps(config).decode())
        port = free_port()
        proc = Process(
            "litellm",
            [],
            env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"},  # no fetch of the price list from GitHub
            log_dir=self.work,
            executable=[executable, "--config", str(path), "--port", str(port), "--num_workers", "1"],
        )
        wait_port(port, timeout=120)
        pin(proc.popen.pid, 0)
        return f"http://127.0.0.1:{port}/v1/chat/completions", LITELLM_KEY, proc

    def start_gateway(
        self, state: dict[str, Any] | None = None, env: dict[str, str] | None = None, quota: bool = False
    ) -> tuple[Process, str]:
        config = gateway_config(self.upstream_url)
        if state is not None:
            config["state"] = state
        if quota:
            with_quota(config)
        name = "limited" if state else f"traced-{len(env)}" if env else "gateway"
        log_dir = self.work / (f"quota-{name}" if quota else name)
        proc, url, _ = start_gateway(config, env={"BENCH_KEY": UPSTREAM_KEY, **(env or {})}, log_dir=log_dir)
        pin(proc.popen.pid, 0)
        # The span export process, with tracing on, gets the pod's second core (with the sink, the
        # collector's stand-in): a gateway's event loop is one core, and the export is work beside it.
        for child in child_pids(proc.popen.pid):
            pin(child, 1)
        return proc, url

    def stop(self) -> None:
        for started in (self.gateway, self.limited, self.quota, self.quota_shared, self.redis, self.traced,
                        self.sampled, self.sink, self.relay, self.upstream,
                        *(t[2] for t in self.litellm.values())):  # fmt: skip
            if started is not None:
                started.stop()

    def throughput(self) -> list[list[str]]:
        """wrk against every target in turn, --runs rounds: a machine that slows down mid-run slows all alike."""
        rows = []
        for shape, model in SHAPES.items():
            if self.args.shape and model not in self.args.shape:
                continue
            for connections in self.args.clients or (1, 32):
                plan = {
                    name: (url, key, proc, request_body(model, url))
                    for name, (url, key, proc) in {**self.targets, **self.litellm}.items()
                }
                for url, key, proc, body in plan.values():
                    wrk(url, body, key, connections, 1, self.work)  # warm-up
                    if proc is not None:
                        settle(proc.popen.pid)
                results: dict[str, list[tuple[float, ...]]] = {name: [] for name in plan}
                cpu = dict.fromkeys(plan, 0.0)
                for _ in range(self.args.runs):
                    for name, (url, key, proc, body) in plan.items():
                        before = tree_cpu_seconds(proc.popen.pid) if proc else 0.0
                        results[name].append(wrk(url, body, key, connections, self.args.seconds, self.work))
                        if proc is not None:
                            settle(proc.popen.pid)  # its CPU counts what the run left to export
                        cpu[name] += tree_cpu_seconds(proc.popen.pid) - before if proc else 0.0
                median = {
                    name: tuple(statistics.median(r[i] for r in runs) for i in range(3))
                    for name, runs in results.items()
                }
                relay_rps = median["minimal relay"][0]
                litellm_rps = next((median[name][0] for name in self.litellm), 0.0)
                _, base_p50, base_p99 = median["direct"]
                for name, (rps, p50, p99) in median.items():
                    proc = plan[name][2]
                    total = sum(r[0] for r in results[name]) * self.args.seconds
                    rows.append([
                        shape, str(connections), name, f"{rps:.0f}",
                        f"{rps / relay_rps:.0%}" if proc is not None and proc is not self.relay else "",
                        f"{rps / litellm_rps:.0f}x" if litellm_rps and proc is self.gateway else "",
                        f"{p50:.2f}", f"{p99:.2f}", f"{p50 - base_p50:+.2f}", f"{p99 - base_p99:+.2f}",
                        f"{cpu[name] / total * 1000:.2f}" if proc and total else "",
                    ])  # fmt: skip
                    print(f"{shape:18} c={connections:<3} {name:30} {rps:8.0f} req/s  p50 {p50:7.2f} ms", flush=True)
        return rows

    def stream_timing(self) -> list[list[str]]:
        """One client, paced upstream: time to first token and latency per event, over direct."""
        rows = []
        base: tuple[float, ...] = ()
        for name, (url, key, _) in self.targets.items():
            asyncio.run(streams.sequential(url, PACED, key, 20))  # warm-up
            times = asyncio.run(streams.sequential(url, PACED, key, self.args.streams))
            if times.failed:
                raise SystemExit(f"{name}: {times.failed[:3]}")
            ms = [1000 * quantile(v, q) for v in (times.ttft, times.event_latency) for q in (0.5, 0.99)]
            base = base or tuple(ms)
            rows.append([name, *(f"{v:.2f}" for v in ms), *(f"{v - b:+.2f}" for v, b in zip(ms, base, strict=True))])
            print(f"paced stream       c=1   {name:30} ttft p50 {ms[0]:.2f} ms  event p50 {ms[2]:.2f} ms", flush=True)
        return rows

    def slow_streams(self) -> list[list[str]]:
        """SLOW_STREAMS streams open at once through each dialect: memory added, every one complete.

        Each gateway row gets a fresh gateway process, so one row's memory is not the next one's start."""
        rows = []
        for name, (url, key, proc) in self.targets.items():
            if proc is None:
                continue
            fresh = None
            if proc is self.gateway:
                fresh, base = self.start_gateway()
                proc, url = fresh, base + url.removeprefix(self.gateway_url)
                time.sleep(1)
            try:
                before = rss_mb(proc.popen.pid)
                work = streams.concurrent(url, SLOW, key, SLOW_STREAMS, 60)
                times, peak = asyncio.run(self._sample_while(proc.popen.pid, work))
            finally:
                if fresh is not None:
                    fresh.stop()
            rows.append([
                name, str(SLOW_STREAMS), str(times.complete), str(len(times.failed)),
                f"{before:.1f}", f"{peak:.1f}", f"{peak - before:+.1f}",
            ])  # fmt: skip
            print(f"{SLOW_STREAMS} slow streams   {name:30} complete {times.complete} failed {len(times.failed)} "
                  f"RSS {before:.1f} -> {peak:.1f} MB", flush=True)  # fmt: skip
            if times.failed:
                print("  first failures:", times.failed[:3])
        return rows

    @staticmethod
    async def _sample_while(pid: int, work: Any) -> tuple[streams.StreamTimes, float]:
        task = asyncio.ensure_future(work)
        peak = 0.0
        while not task.done():
            peak = max(peak, rss_mb(pid))
            await asyncio.wait((task,), timeout=0.05)
        return task.result(), peak

    def cold_start(self) -> list[list[str]]:
        """Process start to the first 200 of a translated request, and the idle RSS after it."""
        body = orjson.dumps(request_body("bench-json", "/v1/chat/completions"))
        results = []
        for _ in range(self.args.cold_starts):
            port = free_port()
            server = {"host": "127.0.0.1", "port": port, "admin_host": "127.0.0.1", "admin_port": 0,
                      "drain_delay_seconds": 0}  # fmt: skip
            config = {**gateway_config(self.upstream_url), "server": server}
            path = self.work / "cold.yaml"
            path.write_text(orjson.dumps(config).decode())
            started = time.monotonic()
            proc = Process(
                "cold-gateway",
                ["-m", "gateway", "--config", str(path)],
                env={"BENCH_KEY": UPSTREAM_KEY},
                log_dir=self.work,
            )
            try:
                first_ok = _first_success(f"http://127.0.0.1:{port}/v1/chat/completions", body, started, proc)
                time.sleep(1)
                results.append((first_ok, rss_mb(proc.popen.pid)))
            finally:
                proc.stop()
        seconds = statistics.median(r[0] for r in results)
        idle = statistics.median(r[1] for r in results)
        print(f"cold start {seconds:.2f} s, idle RSS {idle:.1f} MB", flush=True)
        return [[f"{seconds:.2f}", f"{max(r[0] for r in results):.2f}", f"{idle:.1f}"]]


def _first_success(url: str, body: bytes, started: float, proc: Process) -> float:
    headers = {"content-type": "application/json", "authorization": f"Bearer {CLIENT_KEY}"}
    while time.monotonic() - started < 30:
        try:
            request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 (http://127.0.0.1 only)
            with urllib.request.urlopen(request, timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return time.monotonic() - started
        except OSError:
            if proc.popen.poll() is not None:
                raise SystemExit(f"gateway exited:\n{proc.log()}") from None
            time.sleep(0.005)
    raise SystemExit("the gateway did not answer within 30 s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--streams", type=int, default=300, help="paced streams per target for the timing rows")
    p.add_argument("--cold-starts", type=int, default=5)
    p.add_argument("--only", choices=["throughput", "timing", "slow", "cold"], action="append")
    p.add_argument("--shape", choices=list(SHAPES.values()), action="append", help="only these throughput shapes")
    p.add_argument("--clients", type=int, action="append", help="only these client counts (default 1 and 32)")
    p.add_argument("--litellm", metavar="EXECUTABLE", help="add LiteLLM's proxy (make bench-litellm installs it)")
    p.add_argument("--write", action="store_true", help="write the tables into docs/benchmarks.md")
    args = p.parse_args()
    os.sched_setaffinity(0, {1})  # the asyncio client shares core 1 with wrk and the upstream
    bench = Bench(args)
    sections: list[tuple[str, Callable[[], list[list[str]]], list[str]]] = [
        ("throughput", bench.throughput, ["shape", "clients", "target", "req/s", "of relay", "of LiteLLM", "p50 ms",
                                          "p99 ms", "p50 added", "p99 added", "CPU s / 1,000 req"]),
        ("timing", bench.stream_timing, ["target", "TTFT p50 ms", "TTFT p99 ms", "event p50 ms", "event p99 ms",
                                         "TTFT p50 added", "TTFT p99 added", "event p50 added", "event p99 added"]),
        ("slow", bench.slow_streams, ["target", "streams", "complete", "failed", "RSS before MB", "RSS peak MB",
                                      "added MB"]),
        ("cold", bench.cold_start, ["cold start p50 s", "cold start max s", "idle RSS MB"]),
    ]  # fmt: skip
    out = []
    try:
        for name, run, header in sections:
            if args.only and name not in args.only:
                continue
            out.append(f"### {name}\n\n" + table(header, run()))
    finally:
        bench.stop()
    text = "\n\n".join(out)
    print(text)
    if args.write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        command = "python bench/run.py " + " ".join(sys.argv[1:])
        generated = f"{BEGIN}\n`{command}` on {machine}, {time.strftime('%Y-%m-%d %H:%M')} UTC.\n\n{text}\n{END}"
        doc = DOC.read_text()
        start, end = doc.index(BEGIN), doc.index(END) + len(END)
        DOC.write_text(doc[:start] + generated + doc[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
