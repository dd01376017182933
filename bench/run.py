"""make bench: what the gateway adds over a direct call and over a minimal relay, measured in one run.

Loopback only, bounded in time. The gateway and the relay run on core 0; the fake upstream
(the Foundry emulator, latency off) and wrk on core 1. Each row is the median of --runs runs
of --seconds each, after a warm-up. Ratios within one run are what count on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from tests.harness import Process, free_port, start_foundry_emulator, start_gateway

ROOT = Path(__file__).resolve().parent.parent
LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "bench-key"
"""


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def bodies() -> dict[str, tuple[dict[str, object], dict[str, object]]]:
    """(native body, OpenAI body) per shape; the emulator answers 'You said: <prompt>' word by word."""
    shapes = {"non-streaming": (3, False), "stream 20 events": (12, True), "stream 200 events": (192, True)}
    out = {}
    for name, (n, stream) in shapes.items():
        prompt = [{"role": "user", "content": words(n)}]
        out[name] = (
            {"model": "bench", "max_tokens": 1000, "messages": prompt, "stream": stream},
            {"model": "bench", "messages": prompt, "stream": stream},
        )
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wrk(url: str, body: dict[str, object], connections: int, seconds: int, work: Path) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms), wrk pinned to core 1."""
    script = work / "post.lua"
    script.write_text(LUA.format(body=orjson.dumps(body).decode()))
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise SystemExit(f"{url}: errors during the run:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return rps, pct("50"), pct("99")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fgw-bench-"))
    emulator, foundry = start_foundry_emulator("--api-key", "bench-key", log_dir=work)
    subprocess.run(["taskset", "-p", "-c", "1", str(emulator.popen.pid)], check=True, capture_output=True)
    config = {
        "logging": {"level": "info"},
        "upstreams": [{"name": "f", "base_url": foundry, "auth": {"type": "api_key", "key_env": "BENCH_KEY"}}],
        "routes": [{"model": "bench", "targets": [{"upstream": "f", "deployment": "bench"}]}],
    }
    gateway, gateway_url, _ = start_gateway(config, env={"BENCH_KEY": "bench-key"}, log_dir=work)
    relay_port = free_port()
    relay = Process("relay", [str(ROOT / "bench" / "relay.py"), str(relay_port), foundry], log_dir=work)
    wait_port(relay_port)
    for pinned in (gateway, relay):
        subprocess.run(["taskset", "-p", "-c", "0", str(pinned.popen.pid)], check=True, capture_output=True)
    targets: dict[str, tuple[str, Process | None]] = {
        "direct": (foundry + "/v1/messages", None),
        "minimal relay": (f"http://127.0.0.1:{relay_port}/v1/messages", relay),
        "gateway /v1/messages": (gateway_url + "/v1/messages", gateway),
        "gateway /v1/chat/completions": (gateway_url + "/v1/chat/completions", gateway),
    }
    rows = []
    try:
        for shape, (native, openai_body) in bodies().items():
            for connections in (1, 32):
                base_p50 = None
                for name, (url, proc) in targets.items():
                    body = openai_body if name.endswith("completions") else native
                    wrk(url, body, connections, 1, work)  # warm-up
                    cpu_before = cpu_seconds(proc.popen.pid) if proc else 0.0
                    results = [wrk(url, body, connections, args.seconds, work) for _ in range(args.runs)]
                    cpu = cpu_seconds(proc.popen.pid) - cpu_before if proc else 0.0
                    rps = statistics.median(r[0] for r in results)
                    p50 = statistics.median(r[1] for r in results)
                    p99 = statistics.median(r[2] for r in results)
                    total = sum(r[0] for r in results) * args.seconds
                    base_p50 = p50 if name == "direct" else base_p50
                    rows.append(
                        (shape, connections, name, rps, p50, p99, p50 - (base_p50 or p50),
                         cpu / total * 1000 if proc else None, peak_rss_mb(proc.popen.pid) if proc else None)
                    )  # fmt: skip
                    print(f"{shape:18} c={connections:<3} {name:30} {rps:9.0f} req/s  p50 {p50:7.2f} ms", flush=True)
    finally:
        for started in (gateway, relay, emulator):
            started.stop()
    table = [
        "| shape | clients | target | req/s | p50 ms | p99 ms | p50 added, ms | CPU s / 1,000 req | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for shape, c, name, rps, p50, p99, added, cpu_k, rss in rows:
        cpu_text = "" if cpu_k is None else f"{cpu_k:.2f}"
        rss_text = "" if rss is None else f"{rss:.0f}"
        table.append(
            f"| {shape} | {c} | {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {added:+.2f} | {cpu_text} | {rss_text} |"
        )
    text = "\n".join(table)
    print(text)
    if args.write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        doc = ROOT / "docs" / "benchmarks.md"
        doc.write_text(
            "# Benchmarks\n\n"
            f"`make bench` (`python bench/run.py --seconds {args.seconds:g} --runs {args.runs} --write`) on {machine}, "
            f"{time.strftime('%Y-%m-%d')}. Gateway and relay on core 0, the fake upstream (the Foundry emulator, "
            "latency off) and wrk on core 1; median of the runs. The upstream is Python too, so `direct` is "
            "itself only a few thousand requests per second: read the ratios, not the absolute numbers.\n\n"
            + text
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
