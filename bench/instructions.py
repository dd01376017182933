"""make bench-instructions: CPU instructions per request under callgrind, which the machine's noise does not move.

Each target runs under `valgrind --tool=callgrind` twice, serving A and then B sequential
requests over one keep-alive connection; (instructions of B - instructions of A) / (B - A) is
the cost of one request, start-up and shut-down cancelled out. Targets: the minimal relay,
the gateway as deployed (metrics, access log, inbound auth on), and the gateway with its
per-request telemetry (`Recorder.finish`: the request metrics and the access-log line) removed, which
shows what the request handling alone costs; each dialect; and the gateway with limits shared
through Redis and with tracing on at full sampling, which show what those cost the gateway's core;
and tracing on counted with its span export process, which shows what tracing costs in all.
"""

from __future__ import annotations

import argparse
import http.client
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import yaml

from bench.run import CLIENT_KEY, LIMITED_KEY, ROOT, SHAPES, UPSTREAM_KEY, gateway_config, wait_port, with_quota
from bench.streams import prepared
from devtools.harness import Process, free_port, start_redis

# The gateway's module entry point, with the per-request metrics and access log taken out.
WITHOUT_TELEMETRY = (
    "import runpy, gateway.observability.recorder as r; r.Recorder.finish = lambda *a, **k: None; "
    "runpy.run_module('gateway', run_name='__main__', alter_sys=True)"
)


def instructions(
    command: list[str],
    port: int,
    path: str,
    request: tuple[bytes, dict[str, str]],
    count: int,
    work: Path,
    env: dict[str, str] | None = None,
    children: bool = False,
) -> int:
    """Instructions of the target process (and, with `children`, of the processes it starts)."""
    out = work / f"callgrind.{port}"
    counted = ["--trace-children=yes", f"--callgrind-out-file={out}.%p"] if children else [
        f"--callgrind-out-file={out}"]  # fmt: skip
    proc = Process(
        "target",
        [],
        env={"BENCH_KEY": UPSTREAM_KEY, **(env or {})},
        log_dir=work,
        executable=["valgrind", "--tool=callgrind", *counted, *command],
    )
    try:
        wait_port(port, timeout=180)
        time.sleep(1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        body, headers = request
        for _ in range(count):
            conn.request("POST", path, body=body, headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit(f"{path}: HTTP {answer.status}\n{proc.log()}")
        conn.close()
    finally:
        proc.stop(180)
    total = 0
    for output in [out] if not children else sorted(work.glob(f"{out.name}.*")):
        summary = re.search(r"summary: (\d+)", output.read_text())
        if summary is None:
            raise SystemExit(f"no callgrind summary in {output}:\n{proc.log()}")
        total += int(summary.group(1))
    return total


# What Claude Code sends besides its prompt: its betas, and a tool list (the profile check reads both).
CLAUDE_CODE_BETAS = ("claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
                     "effort-2025-11-24,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20")  # fmt: skip


def claude_code_request(request: tuple[bytes, dict[str, str]]) -> tuple[bytes, dict[str, str]]:
    body = orjson.loads(request[0])
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    body["tools"] = [{"name": f"Tool{i}", "description": "A tool.", "input_schema": schema} for i in range(20)]
    return orjson.dumps(body), {**request[1], "anthropic-beta": CLAUDE_CODE_BETAS}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shape", choices=list(SHAPES.values()), default="bench-json")
    p.add_argument("--requests", default="100,400", help="the two request counts, A,B")
    p.add_argument(
        "--only",
        action="append",
        help="only the targets whose name holds this, or is it with a leading = (the relay always runs)",
    )
    args = p.parse_args()
    low, high = (int(n) for n in args.requests.split(","))
    work = Path(tempfile.mkdtemp(prefix="fgw-instructions-"))
    upstream_port = free_port()
    upstream = Process("fake-foundry", [str(ROOT / "bench" / "upstream.py"), str(upstream_port)], log_dir=work)
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    wait_port(upstream_port)
    # Redis and an OTLP sink for the rows with shared limits and tracing on; callgrind counts the
    # gateway's side of both (the tracing export thread included), not the other process's.
    redis, redis_port = start_redis(work)
    sink_port = free_port()
    sink = Process("otlp-sink", [str(ROOT / "bench" / "otlp_sink.py"), str(sink_port)], log_dir=work)
    wait_port(sink_port)
    tracing = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
               "OTEL_TRACES_SAMPLER": "always_on"}  # fmt: skip
    try:
        rows = []
        for name in ("minimal relay", "gateway /v1/messages", "gateway /v1/messages, telemetry removed",
                     "gateway /v1/chat/completions", "gateway /v1/responses", "gateway /v1/messages, Redis limits",
                     "gateway /v1/messages, tracing on",
                     "gateway /v1/messages, tracing on, with its export process",
                     "gateway /v1/messages, quota strategy", "gateway /v1/messages, quota strategy, Redis-shared pools",
                     "gateway /v1/messages, Claude Code's request, Anthropic-hosted",
                     "gateway /v1/messages, Claude Code's request, Azure-hosted",
                     ):  # fmt: skip
            wanted = any(name == o[1:] if o.startswith("=") else o in name for o in args.only or ())
            if args.only and name != "minimal relay" and not wanted:
                continue
            path = name.split(",")[0].removeprefix("gateway ") if name.startswith("gateway") else "/v1/messages"
            counts = []
            for count in (low, high):
                port = free_port()
                if name == "minimal relay":
                    command = [sys.executable, str(ROOT / "bench" / "relay.py"), str(port), upstream_url]
                    key = UPSTREAM_KEY
                else:
                    config = gateway_config(upstream_url)
                    config["server"].update(host="127.0.0.1", port=port, admin_port=0, drain_delay_seconds=0)
                    if "Redis" in name:
                        config["state"] = {"redis": {"url": f"redis://127.0.0.1:{redis_port}/0", "timeout_ms": 1000}}
                    if "quota" in name:
                        with_quota(config)
                    if "Anthropic-hosted" in name:  # a profile that lacks nothing: no request is fitted
                        config["upstreams"][0]["hosting"] = "anthropic"
                    config_path = work / "gateway.yaml"
                    config_path.write_text(yaml.safe_dump(config))
                    entry = ["-c", WITHOUT_TELEMETRY] if "removed" in name else ["-m", "gateway"]
                    command = [sys.executable, *entry, "--config", str(config_path)]
                    key = LIMITED_KEY if "Redis limits" in name else CLIENT_KEY
                request = prepared(path, args.shape, key)
                if name != "minimal relay":  # a session id, as Claude Code sends on every request
                    request = (request[0], {**request[1], "x-claude-code-session-id": "bench-session-1"})
                if "Claude Code's request" in name:
                    request = claude_code_request(request)
                env = tracing if "tracing" in name else None
                children = "export process" in name
                counts.append(instructions(command, port, path, request, count, work, env, children))
            per_request = (counts[1] - counts[0]) / (high - low)
            rows.append((name, per_request))
            print(f"{name:42} {per_request / 1000:7.0f} k instructions/request", flush=True)
        relay = rows[0][1]
        print(f"\n| target ({args.shape}) | instructions per request | relay / target |\n| --- | --- | --- |")
        for name, per_request in rows:
            print(f"| {name} | {per_request / 1000:.0f} k | {relay / per_request:.0%} |")
    finally:
        upstream.stop()
        redis.stop()
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
