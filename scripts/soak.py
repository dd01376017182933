"""make soak: many concurrent streaming clients for a bounded time, with random upstream faults.

Loopback only; stops by itself. The faults include a hostile upstream's: redirects, odd statuses,
bodies that are not answers, oversized bodies and events, echoed keys. Every request must end
complete ([DONE] / message_stop, or a whole JSON answer) or with a clear error (an error status,
an error event); anything else is lost, and lost must be 0, as must answers or log lines that
carry the upstream key. Prints the gateway's memory at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson

from tests.harness import emulator_control, rss_mb, start_foundry_emulator, start_gateway, stopping

KEY = "soak-key-5d0c8e2f"

FAULTS = [
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


async def client_loop(base: str, deadline: float, counts: dict[str, int], rng: random.Random) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        while time.monotonic() < deadline:
            outcome = await one(session, base, native=rng.random() < 0.3, stream=rng.random() < 0.8)
            counts[outcome] += 1


async def fault_loop(foundry: str, deadline: float, rng: random.Random) -> None:
    while time.monotonic() < deadline:
        await asyncio.to_thread(emulator_control, foundry, "faults", [rng.choice(FAULTS)])
        await asyncio.sleep(rng.uniform(0.02, 0.2))


async def soak(base: str, foundry: str, seconds: float, clients: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"complete": 0, "error": 0, "lost": 0, "leaked": 0}
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        fault_loop(foundry, deadline, rng),
        *(client_loop(base, deadline, counts, random.Random(rng.random())) for _ in range(clients)),
    )
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    emulator, foundry = start_foundry_emulator("--api-key", KEY, "--event-delay", "0.005")
    config = {
        "logging": {"level": "warning"},
        "server": {"max_upstream_body_bytes": 1024 * 1024, "max_upstream_event_bytes": 64 * 1024},
        "upstreams": [{"name": "f", "base_url": foundry, "auth": {"type": "api_key", "key_env": "SOAK_KEY"}}],
        "routes": [{"model": "claude", "targets": [{"upstream": "f", "deployment": "d"}]}],
        "retries": {"cooldown_failures": 1000, "retry_after_cooldown": False},
    }
    gateway, base, _ = start_gateway(config, env={"SOAK_KEY": KEY})
    with stopping(gateway, emulator):
        start_rss = rss_mb(gateway.popen.pid)
        started = time.monotonic()
        counts = asyncio.run(soak(base, foundry, args.seconds, args.clients, args.seed))
        elapsed = time.monotonic() - started
        end_rss = rss_mb(gateway.popen.pid)
    total = sum(counts.values())
    print(f"soak: {total} requests in {elapsed:.0f} s with {args.clients} clients and random faults")
    print(
        f"  completed {counts['complete']}, failed with a clear error {counts['error']}, lost {counts['lost']}, "
        f"leaked the upstream key {counts['leaked']}"
    )
    print(f"  gateway RSS: {start_rss:.1f} MB at start, {end_rss:.1f} MB at end ({end_rss - start_rss:+.1f} MB)")
    leaked_to_log = KEY in gateway.log()
    print(f"  upstream key in the gateway's log: {'yes' if leaked_to_log else 'no'}")
    return 1 if counts["lost"] or counts["leaked"] or leaked_to_log else 0


if __name__ == "__main__":
    sys.exit(main())
