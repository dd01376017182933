"""make soak: many concurrent streaming clients for a bounded time, with random upstream faults.

Loopback only; stops by itself. The faults include a hostile upstream's: redirects, odd statuses,
bodies that are not answers, oversized bodies and events, echoed keys. Every request must end
complete ([DONE] / message_stop, or a whole JSON answer) or with a clear error (an error status,
an error event); anything else is lost, and lost must be 0, as must answers or log lines that
carry the upstream key. Prints the gateway's memory at the start and the end.

`--hostile-state` adds shared state under attack: a Redis with budgets and stored responses,
an upstream that now and then reports absurd usage (2**63 output tokens), and clients that fork
one large stored conversation over and over. Redis must stay bounded as well (forks are stored
by reference) and nothing may be lost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
import redis

from devtools.harness import emulator_control, rss_mb, start_foundry_emulator, start_gateway, start_redis, stopping

KEY = "soak-key-5d0c8e2f"

FAULTS: list[dict[str, Any]] = [
    {"status": 529},
    {"status": 429, "retry_after": "1"},
    {"status": 500},
    {"error_after": 5},
    {"cut_after": 5},
    {"malformed_after": 4},
    {"stall_after": 3, "stall": 0.5},
    {"delay": 0.3},
    {"reset": True},
    # A hostile or broken upstream (tests/integration/test_hostile_upstream.py has one test each).
    {"redirect": 302},
    {"bare_status": 204},
    {"body": "<html><body>504 Gateway Time-out</body></html>"},
    {"body": "{}"},
    {"huge_body": 3 * 1024 * 1024},
    {"huge_error": 8 * 1024 * 1024},
    {"echo_credential": True},
    {"error_type_value": "hostile_type"},
    {"status": 429, "retry_after": "inf"},
    {"raw_after": 3, "raw": "event: content_block_delta\ndata: " + "x" * 100_000},
    {"raw_after": 0, "raw": 'event: message_start\ndata: {"type":"message_start","message":"str"}\n\n'},
    {"drip_after": 2, "drip_interval": 0.002},
]


async def one(session: aiohttp.ClientSession, base: str, native: bool, stream: bool) -> str:
    """'complete', 'error' or 'lost'."""
    path = "/v1/messages" if native else "/v1/chat/completions"
    body = {
        "model": "claude",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "soak " * 30}],
        "stream": stream,
    }
    try:
        async with session.post(base + path, json=body) as resp:
            raw = await resp.read()
    except aiohttp.ClientError:
        return "lost"
    if KEY.encode() in raw:
        return "leaked"
    if resp.status != 200:
        return "error" if b'"error"' in raw else "lost"
    text = raw.decode("utf-8", "replace").rstrip()
    if not stream:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return "lost"  # a 200 whose body is not even JSON
        if not isinstance(data, dict):
            return "lost"
        return "complete" if data.get("choices") or data.get("content") is not None else "lost"
    if text.endswith("data: [DONE]") or text.endswith('data: {"type":"message_stop"}'):
        return "complete"
    last = text.rsplit("\n\n", 1)[-1]
    return "error" if ("event: error" in last or last.startswith('data: {"error"')) else "lost"


ABSURD: dict[str, Any] = {
    "body": orjson.dumps(
        {
            "id": "msg_absurd",
            "type": "message",
            "role": "assistant",
            "model": "d",
            "content": [{"type": "text", "text": "absurd"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 2**63},
        }
    ).decode()
}
CLIENT_KEY = "soak-client-key-7c2e"


async def fork_loop(base: str, deadline: float, counts: dict[str, int]) -> None:
    """One 1 MB stored response, then forks of it with a few bytes each, until the deadline."""
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), headers=headers) as session:
        root = None
        while time.monotonic() < deadline:
            body: dict[str, object] = {"model": "claude", "input": "fork " + str(counts["complete"])}
            if root is None:
                body["input"] = "x" * (1 << 20)
            else:
                body["previous_response_id"] = root
            try:
                async with session.post(base + "/v1/responses", json=body) as resp:
                    raw = await resp.read()
            except aiohttp.ClientError:
                counts["lost"] += 1
                continue
            if resp.status == 200:
                counts["complete"] += 1
                root = root or orjson.loads(raw)["id"]
            else:
                counts["error" if b'"error"' in raw else "lost"] += 1


async def client_loop(
    base: str, deadline: float, counts: dict[str, int], rng: random.Random, authenticated: bool
) -> None:
    headers = {"authorization": f"Bearer {CLIENT_KEY}"} if authenticated else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), headers=headers) as session:
        while time.monotonic() < deadline:
            outcome = await one(session, base, native=rng.random() < 0.3, stream=rng.random() < 0.8)
            counts[outcome] += 1


async def fault_loop(foundry: str, deadline: float, rng: random.Random, faults: list[dict[str, Any]]) -> None:
    while time.monotonic() < deadline:
        await asyncio.to_thread(emulator_control, foundry, "faults", [rng.choice(faults)])
        await asyncio.sleep(rng.uniform(0.02, 0.2))


async def soak(base: str, foundry: str, seconds: float, clients: int, seed: int, hostile: bool) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"complete": 0, "error": 0, "lost": 0, "leaked": 0}
    deadline = time.monotonic() + seconds
    forks = [fork_loop(base, deadline, counts) for _ in range(4)] if hostile else []
    await asyncio.gather(
        fault_loop(foundry, deadline, rng, [*FAULTS, ABSURD] if hostile else FAULTS),
        *(client_loop(base, deadline, counts, random.Random(rng.random()), hostile) for _ in range(clients)),
        *forks,
    )
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--hostile-state", action="store_true", help="Redis, budgets, stored responses under attack")
    args = p.parse_args()
    emulator, foundry = start_foundry_emulator("--api-key", KEY, "--event-delay", "0.005")
    config: dict[str, Any] = {
        "logging": {"level": "warning"},
        "server": {"max_upstream_body_bytes": 1024 * 1024, "max_upstream_event_bytes": 64 * 1024},
        "upstreams": [{"name": "f", "base_url": foundry, "auth": {"type": "api_key", "key_env": "SOAK_KEY"}}],
        "routes": [{"model": "claude", "targets": [{"upstream": "f", "deployment": "d"}]}],
        "retries": {"cooldown_failures": 1000, "retry_after_cooldown": False},
    }
    processes = [emulator]
    redis_port = None
    if args.hostile_state:
        redis, redis_port = start_redis()
        processes.append(redis)
        config["server"] = {**config["server"], "max_upstream_body_bytes": 4 * 1024 * 1024}  # the 1 MB echo
        config["state"] = {"redis": {"url": f"redis://127.0.0.1:{redis_port}/0"}}
        config["responses"] = {"store_ttl_seconds": 600}
        config["inbound"] = {"api_keys": [{"client": "soak", "sha256": hashlib.sha256(CLIENT_KEY.encode()).hexdigest(),
                                           "budget": {"tokens_per_day": 10**12}}]}  # fmt: skip
    gateway, base, _ = start_gateway(config, env={"SOAK_KEY": KEY})
    with stopping(gateway, *processes):
        start_rss = rss_mb(gateway.popen.pid)
        start_redis_mb = redis_mb(redis_port)
        started = time.monotonic()
        counts = asyncio.run(soak(base, foundry, args.seconds, args.clients, args.seed, args.hostile_state))
        elapsed = time.monotonic() - started
        end_rss = rss_mb(gateway.popen.pid)
        end_redis_mb = redis_mb(redis_port)
    total = sum(counts.values())
    print(f"soak: {total} requests in {elapsed:.0f} s with {args.clients} clients and random faults")
    print(
        f"  completed {counts['complete']}, failed with a clear error {counts['error']}, lost {counts['lost']}, "
        f"leaked the upstream key {counts['leaked']}"
    )
    print(f"  gateway RSS: {start_rss:.1f} MB at start, {end_rss:.1f} MB at end ({end_rss - start_rss:+.1f} MB)")
    redis_grew = end_redis_mb - start_redis_mb
    if redis_port is not None:
        print(f"  Redis: {start_redis_mb:.1f} MB at start, {end_redis_mb:.1f} MB at end ({redis_grew:+.1f} MB)")
    leaked_to_log = KEY in gateway.log()
    print(f"  upstream key in the gateway's log: {'yes' if leaked_to_log else 'no'}")
    # Forks of the 1 MB conversations are stored by reference: Redis holds a few MB, not one copy a fork.
    return 1 if counts["lost"] or counts["leaked"] or leaked_to_log or redis_grew > 64 else 0


def redis_mb(port: int | None) -> float:
    if port is None:
        return 0.0
    return int(redis.Redis(port=port).info("memory")["used_memory"]) / 1e6


if __name__ == "__main__":
    sys.exit(main())
