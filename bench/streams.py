"""The bench's asyncio client: what wrk cannot see inside a stream.

- time to first token: from sending the request to reading the first text delta;
- latency per relayed event: from the fake upstream writing a delta (it stamps each one
  with time.monotonic(), a clock all processes on the machine share) to reading it;
- many concurrent slow streams: every one must end complete.

Streams are read line by line as the client would; nothing here batches.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

_STAMP = re.compile(rb"t=(\d+\.\d+)")


@dataclass
class StreamTimes:
    ttft: list[float] = field(default_factory=list)
    event_latency: list[float] = field(default_factory=list)
    complete: int = 0
    failed: list[str] = field(default_factory=list)


def request_body(model: str, url: str) -> dict[str, object]:
    """One bench request in the dialect of `url`'s path; every model but bench-json answers with a stream."""
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": "w0 w1 w2"}]}
    if url.endswith("/responses"):
        body = {"model": model, "input": "w0 w1 w2"}
    elif not url.endswith("/chat/completions"):
        body["max_tokens"] = 1000
    if model != "bench-json":
        body["stream"] = True
    return body


def prepared(url: str, model: str, key: str) -> tuple[bytes, dict[str, str]]:
    """The encoded body and the headers of a bench request to `url`."""
    data = orjson.dumps(request_body(model, url))
    return data, {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": key}


# What ends a complete stream, and what ends a failed one, by the path's dialect.
_END = {"/chat/completions": b"data: [DONE]", "/responses": b"event: response.completed"}
_FAILED = (b"event: error", b"event: response.failed", b'data: {"error"')


async def one_stream(
    session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str], times: StreamTimes
) -> None:
    end_marker = next((end for path, end in _END.items() if url.endswith(path)), b"event: message_stop")
    sent = time.monotonic()
    first = True
    try:
        async with session.post(url, data=data, headers=headers) as response:
            if response.status != 200:
                times.failed.append(f"HTTP {response.status}: {(await response.read())[:200]!r}")
                return
            async for line in response.content:
                now = time.monotonic()
                stamp = _STAMP.search(line)
                if stamp is not None:
                    if first:
                        times.ttft.append(now - sent)
                        first = False
                    times.event_latency.append(now - float(stamp.group(1)))
                elif line.startswith(end_marker):
                    times.complete += 1
                    return
                elif line.startswith(_FAILED):
                    times.failed.append(line[:200].decode(errors="replace"))
                    return
            times.failed.append("stream ended without its end marker")
    except (aiohttp.ClientError, TimeoutError) as exc:
        times.failed.append(f"{type(exc).__name__}: {exc}")


async def sequential(url: str, model: str, key: str, count: int) -> StreamTimes:
    """`count` streams one after another on one kept-alive connection."""
    times = StreamTimes()
    data, headers = prepared(url, model, key)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(count):
            await one_stream(session, url, data, headers, times)
    return times


async def concurrent(url: str, model: str, key: str, count: int, deadline: float) -> StreamTimes:
    """`count` streams open at once, each on its own connection."""
    times = StreamTimes()
    data, headers = prepared(url, model, key)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=deadline)) as session:
        await asyncio.gather(*(one_stream(session, url, data, headers, times) for _ in range(count)))
    return times
