"""make bench-quota: what the gateway makes of a Foundry subscription's quota, strategy weighted
against strategy quota, in one run.

Claude-Code-like sessions (a large system prompt and tools marked for caching, a conversation that
grows, think time, a session id) from four interactive clients, and one batch client, against three
deployments in two pools at the Foundry emulator, which enforces the pools (token buckets holding
15 s of refill, 429 with retry-after) and keeps a prompt cache per deployment. Each scenario warms
up, then is measured for --seconds. Loopback only, bounded in time; one process per part.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.run import quantile, table
from devtools.harness import Process, access_lines, emulator_control, start_foundry_emulator, start_gateway

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- make bench-quota: begin -->", "<!-- make bench-quota: end -->"
KEY = "bench-quota-key"
BURST = 15
# Per minute. OTPM binds: 27,000 output tokens a minute in all, 450 a second.
POOLS = {
    "sub-a": {"requests_per_minute": 1200, "input_tokens_per_minute": 600_000, "output_tokens_per_minute": 18_000},
    "sub-b": {"requests_per_minute": 600, "input_tokens_per_minute": 300_000, "output_tokens_per_minute": 9_000},
}
DEPLOYMENTS = {"east": "sub-a", "west": "sub-a", "north": "sub-b"}
OTPM = sum(p["output_tokens_per_minute"] for p in POOLS.values())
DEVELOPERS = [f"dev-{i}" for i in range(4)]
CLIENTS = {name: f"key-{name}" for name in [*DEVELOPERS, "batch"]}
BASE_SYSTEM = "You are Claude Code, a careful coding agent. Follow the repository's conventions. " * 120
TOOLS = [
    {"name": f"tool_{i}", "description": "Runs a step of the agent's work. " * 30,
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
    for i in range(12)
]  # fmt: skip
TOOLS[-1] = {**TOOLS[-1], "cache_control": {"type": "ephemeral"}}
TURN_WORDS, TURN_MAX_TOKENS = 80, 160  # an interactive answer: ~82 output tokens, charged at 160 first
BATCH_WORDS, BATCH_MAX_TOKENS = 380, 400


@dataclass(frozen=True)
class Load:
    name: str
    sessions_per_developer: int
    think_seconds: float
    batch_workers: int
    batch_think_seconds: float

    def offered(self) -> float:
        """Offered output tokens a second, as a share of the pools' OTPM."""
        interactive = len(DEVELOPERS) * self.sessions_per_developer * (TURN_WORDS + 2) / self.think_seconds
        batch = self.batch_workers * (BATCH_WORDS + 2) / self.batch_think_seconds if self.batch_workers else 0
        return (interactive + batch) / (OTPM / 60)


LOADS = {
    "70%": Load("70%", 3, 4.0, 1, 5.0),  # interactive ~55%, batch ~17%
    "200%": Load("200%", 4, 3.9, 4, 2.7),  # interactive ~75%, batch ~125%
}


@dataclass
class Turn:
    client: str
    status: int
    output: int = 0
    input: int = 0
    cache_read: int = 0
    cache_write: int = 0


@dataclass
class Run:
    turns: list[Turn] = field(default_factory=list)
    measuring: bool = False


def words(n: int, seed: str) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(("read", "edit", "test", "file", "diff", "plan", "fix", "run")) for _ in range(n))


def config(emulator: str, strategy: str, targets: list[str], metered: bool = True) -> dict[str, Any]:
    upstreams = [{"name": r, "base_url": f"{emulator}/{r}/anthropic", "auth": {"type": "api_key", "key_env": "K"}}
                 for r in DEPLOYMENTS]  # fmt: skip
    pools = [{"name": n, "burst_seconds": BURST, **(limits if metered else {})} for n, limits in POOLS.items()]
    keys = [{"client": c, "sha256": hashlib.sha256(k.encode()).hexdigest(),
             **({"priority": "batch"} if c == "batch" else {})} for c, k in CLIENTS.items()]  # fmt: skip
    return {
        "upstreams": upstreams,
        "quota_pools": pools,
        "routes": [{"model": "claude", "strategy": strategy, "targets": [
            {"upstream": r, "deployment": "claude", "quota_pool": DEPLOYMENTS[r]} for r in targets]}],
        "inbound": {"api_keys": keys},
        "server": {"max_concurrent_requests": 4096},
    }  # fmt: skip


async def ask(http: aiohttp.ClientSession, base: str, client: str, body: dict[str, Any],
              headers: dict[str, str]) -> tuple[int, dict[str, Any]]:  # fmt: skip
    async with http.post(base + "/v1/messages", json=body, headers={"x-api-key": CLIENTS[client], **headers}) as r:
        return r.status, await r.json(content_type=None)


async def session(http: aiohttp.ClientSession, base: str, client: str, name: str, load: Load, run: Run,
                  stop: float) -> None:  # fmt: skip
    rng = random.Random(name)
    # The environment block (cwd, git status, CLAUDE.md) makes each session's system prompt its own.
    system = [{"type": "text", "text": BASE_SYSTEM},
              {"type": "text", "text": f"Working directory /src/{name}. " + words(300, name),
               "cache_control": {"type": "ephemeral"}}]  # fmt: skip
    messages: list[dict[str, Any]] = []
    await asyncio.sleep(rng.uniform(0, load.think_seconds))
    n = 0
    while time.monotonic() < stop:
        n += 1
        earlier = [{**m, "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]]}
                   for m in messages]  # fmt: skip
        text = words(TURN_WORDS, f"{name}-{n}")
        messages = [*earlier, {"role": "user", "content": [{"type": "text", "text": text,
                                                            "cache_control": {"type": "ephemeral"}}]}]  # fmt: skip
        body = {"model": "claude", "max_tokens": TURN_MAX_TOKENS, "system": system, "tools": TOOLS,
                "messages": messages}  # fmt: skip
        status, answer = await ask(http, base, client, body, {"x-claude-code-session-id": name})
        record(run, client, status, answer)
        if status == 200:
            messages.append({"role": "assistant", "content": answer["content"]})
        else:
            messages.pop()
        await asyncio.sleep(rng.uniform(0.5, 1.5) * load.think_seconds)


async def batch(http: aiohttp.ClientSession, base: str, worker: int, load: Load, run: Run, stop: float) -> None:
    rng = random.Random(f"batch-{worker}")
    n = 0
    while time.monotonic() < stop:
        n += 1
        prompt = words(BATCH_WORDS, f"batch-{worker}-{n}")
        body = {"model": "claude", "max_tokens": BATCH_MAX_TOKENS, "messages": [{"role": "user", "content": prompt}]}
        status, answer = await ask(http, base, "batch", body, {})
        record(run, "batch", status, answer)
        await asyncio.sleep(rng.uniform(0.5, 1.5) * load.batch_think_seconds)


def record(run: Run, client: str, status: int, answer: dict[str, Any]) -> None:
    if not run.measuring:
        return
    usage = (answer.get("usage") or {}) if status == 200 else {}
    run.turns.append(
        Turn(client, status, usage.get("output_tokens", 0), usage.get("input_tokens", 0),
             usage.get("cache_read_input_tokens", 0), usage.get("cache_creation_input_tokens", 0))
    )  # fmt: skip


def metric_sum(admin: str, name: str, **labels: str) -> float:
    import urllib.request

    with urllib.request.urlopen(admin + "/metrics", timeout=5) as resp:  # noqa: S310 (our own loopback http)
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Scenario:
    name: str
    load: Load
    strategy: str
    targets: list[str]
    interactive_only: bool = False


async def drive(base: str, load: Load, warmup: float, seconds: float, interactive_only: bool,
                gateway: Process) -> tuple[Run, dict[str, float]]:  # fmt: skip
    run = Run()
    stop = time.monotonic() + warmup + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        workers = [session(http, base, dev, f"{dev}-s{i}", load, run, stop)
                   for dev in DEVELOPERS for i in range(load.sessions_per_developer)]  # fmt: skip
        if not interactive_only:
            workers += [batch(http, base, w, load, run, stop) for w in range(load.batch_workers)]
        tasks = [asyncio.create_task(w) for w in workers]
        await asyncio.sleep(warmup)
        run.measuring = True
        admin = gateway.admin
        before = {s: metric_sum(admin, "foundry_gateway_upstream_requests_total", status=s) for s in ("200", "429")}
        attempts = metric_sum(admin, "foundry_gateway_upstream_requests_total")
        window = (time.time(), time.time() + seconds)
        await asyncio.sleep(seconds)
        run.measuring = False
        after = {s: metric_sum(admin, "foundry_gateway_upstream_requests_total", status=s) for s in ("200", "429")}
        attempts = metric_sum(admin, "foundry_gateway_upstream_requests_total") - attempts
        await asyncio.gather(*tasks)
    return run, {"attempts": attempts, "upstream_429": after["429"] - before["429"], "start": window[0],
                 "end": window[1]}  # fmt: skip


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if any(values) else 0.0


def summarize(
    scenario: Scenario, run: Run, upstream: dict[str, float], gateway: Process, seconds: float
) -> dict[str, Any]:
    interactive = [t for t in run.turns if t.client != "batch"]
    done = [t for t in interactive if t.status == 200]
    prompt = sum(t.input + t.cache_read + t.cache_write for t in done)
    # Each developer's turns served as a share of the turns it asked for (Jain's normalised throughput).
    per_dev = [sum(1 for t in done if t.client == d) / max(1, sum(1 for t in interactive if t.client == d))
               for d in DEVELOPERS]  # fmt: skip
    waits = []
    for line in access_lines(gateway):
        at = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
        if line.get("client", "").startswith("dev-") and upstream["start"] <= at <= upstream["end"]:
            waits.append(line.get("quota_wait_ms", 0.0))
    batch_done = [t for t in run.turns if t.client == "batch" and t.status == 200]
    return {
        "scenario": scenario.name,
        "429s": sum(1 for t in run.turns if t.status == 429),
        "5xx": sum(1 for t in run.turns if t.status >= 500),
        "turns done": len(done) / len(interactive) if interactive else 0.0,
        "upstream 429": upstream["upstream_429"] / upstream["attempts"] if upstream["attempts"] else 0.0,
        "goodput": sum(t.output for t in run.turns if t.status == 200) / seconds * 60 / OTPM,
        "batch/s": len(batch_done) / seconds,
        "interactive/s": len(done) / seconds,
        "batch tokens": sum(t.output for t in batch_done) / seconds * 60 / OTPM,
        "cache share": sum(t.cache_read for t in done) / prompt if prompt else 0.0,
        "jain": jain(per_dev),
        "wait p50": quantile(waits, 0.5) if waits else 0.0,
        "wait p99": quantile(waits, 0.99) if waits else 0.0,
    }


def scenarios() -> Iterator[Scenario]:
    all_three = list(DEPLOYMENTS)
    for load in LOADS.values():
        for strategy in ("weighted", "quota"):
            yield Scenario(f"{load.name}, {strategy}", load, strategy, all_three)
    yield Scenario("70% interactive, one target (the cache ideal)", LOADS["70%"], "weighted", ["north"], True)
    yield Scenario("70% interactive, quota", LOADS["70%"], "quota", all_three, True)


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="fgw-bench-quota-"))
    emulator, anthropic_url = start_foundry_emulator("--api-key", KEY, "--no-request-log", log_dir=work)
    root = anthropic_url.removesuffix("/anthropic")
    results = []
    try:
        for n, scenario in enumerate(scenarios()):
            if args.only and not any(o in scenario.name for o in args.only):
                continue
            emulator_control(anthropic_url, "reset", {})
            emulator_control(anthropic_url, "quota", [
                {"name": name, "burst_seconds": BURST, **limits,
                 "deployments": [f"{d}/claude" for d, p in DEPLOYMENTS.items() if p == name]}
                for name, limits in POOLS.items()])  # fmt: skip
            metered = not scenario.name.endswith("(the cache ideal)")
            cfg = config(root, scenario.strategy, scenario.targets, metered)
            if not metered:
                emulator_control(anthropic_url, "quota", [])  # the ideal: the same traffic, no quota in the way
            gateway, base, _ = start_gateway(cfg, env={"K": KEY}, log_dir=work / f"s{n}")
            try:
                run, upstream = asyncio.run(
                    drive(base, scenario.load, args.warmup, args.seconds, scenario.interactive_only, gateway)
                )
                results.append(summarize(scenario, run, upstream, gateway, args.seconds))
                print(results[-1], flush=True)
            finally:
                gateway.stop()
    finally:
        emulator.stop()
    return results


def render(results: list[dict[str, Any]]) -> str:
    header = ["scenario", "client 429s", "5xx", "interactive turns done", "upstream 429s / attempts",
              "goodput (of OTPM)", "batch done / s", "cache-read share", "Jain (interactive)", "added wait p50 ms",
              "added wait p99 ms"]  # fmt: skip
    rows = [[r["scenario"], str(r["429s"]), str(r["5xx"]), f"{r['turns done']:.1%}", f"{r['upstream 429']:.2%}",
             f"{r['goodput']:.0%}", f"{r['batch/s']:.2f}", f"{r['cache share']:.3f}", f"{r['jain']:.3f}",
             f"{r['wait p50']:.0f}", f"{r['wait p99']:.0f}"] for r in results]  # fmt: skip
    return table(header, rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=30, help="measured seconds per scenario")
    p.add_argument("--warmup", type=float, default=15, help="seconds before measuring: the buckets drain")
    p.add_argument("--only", action="append", help="only scenarios whose name contains this")
    p.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = p.parse_args()
    results = run_all(args)
    text = render(results)
    loads = "; ".join(f"{load.name}: {load.offered():.0%} of OTPM offered" for load in LOADS.values())
    print(text)
    if args.write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        command = "python bench/quota.py " + " ".join(sys.argv[1:])
        stamp = time.strftime("%Y-%m-%d %H:%M")
        generated = f"{BEGIN}\n`{command}` on {machine}, {stamp} UTC ({loads}).\n\n{text}\n{END}"
        doc = DOC.read_text()
        if BEGIN in doc:
            start, end = doc.index(BEGIN), doc.index(END) + len(END)
            DOC.write_text(doc[:start] + generated + doc[end:])
        else:
            DOC.write_text(doc.rstrip() + "\n\n## Quota: `make bench-quota`\n\n" + generated + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
