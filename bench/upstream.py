"""A fake Foundry for benchmarks: HTTP/1.1 keep-alive on a bare asyncio protocol, answers pre-rendered.

python bench/upstream.py PORT

The Foundry emulator in tests/ is faithful, and therefore slow: it validates, renders and
writes each event separately, so it saturates its core before a relay does. This one only
checks the API key and picks a pre-rendered Messages API answer by the request's `model`:

- `bench-json`: a non-streaming message;
- `bench-sN`: a stream of N events in all (message_start .. message_stop), as fast as the
  socket takes them, each event its own chunk and its own write as Foundry sends them (a
  relay then sees events separately or coalesced, depending on how fast it reads);
- `bench-pace-N-MS`: a stream of N events, one every MS milliseconds, each text delta
  carrying the time.monotonic() at which it was written (for time to first token and the
  latency added per relayed event; the clock is shared by processes on one machine).

Anything else is answered 404 in the Messages API's error shape; a missing or wrong key, 401.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time

import orjson
import uvloop

API_KEY = b"bench-key"
_MODEL = re.compile(rb'"model":\s*"([^"]+)"')
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_API_KEY = re.compile(rb"\r\nx-api-key:\s*([^\r]*)", re.IGNORECASE)
USAGE = {"input_tokens": 12, "output_tokens": 0}


def _event(name: str, payload: dict[str, object]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nrequest-id: req_bench\r\n"
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _stream_head() -> list[bytes]:
    message: dict[str, object] = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**USAGE, "output_tokens": 1},
    }
    return [
        _event("message_start", {"type": "message_start", "message": message}),
        _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        _event("ping", {"type": "ping"}),
    ]


def _delta(text: str) -> bytes:
    delta = {"type": "text_delta", "text": text}
    return _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})


def _stream_tail(deltas: int) -> list[bytes]:
    return [
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": deltas},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]


def stream_events(total: int) -> list[bytes]:
    deltas = total - 6
    return _stream_head() + [_delta(f" w{i}") for i in range(deltas)] + _stream_tail(deltas)


MESSAGE = orjson.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [{"type": "text", "text": "You said: w0 w1 w2"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {**USAGE, "output_tokens": 5},
    }
)
RENDERED = {
    b"bench-json": _response("200 OK", "application/json", MESSAGE),
}
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nrequest-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n"
)
STREAMS = {f"bench-s{n}".encode(): [_chunk(e) for e in stream_events(n)] for n in (20, 200)}
UNAUTHORIZED = _response(
    "401 Unauthorized",
    "application/json",
    b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}',
)
NOT_FOUND = _response(
    "404 Not Found",
    "application/json",
    b'{"type":"error","error":{"type":"not_found_error","message":"no such bench model"}}',
)
_PACE = re.compile(rb"bench-pace-(\d+)-(\d+)")


class FakeFoundry(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports don't subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length_match = _CONTENT_LENGTH.search(head)
            length = int(length_match.group(1)) if length_match else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.answer(head, body)

    def answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        key = _API_KEY.search(head)
        if key is None or key.group(1).strip() != API_KEY:
            self.transport.write(UNAUTHORIZED)
            return
        model = _MODEL.search(body)
        name = model.group(1) if model else b""
        rendered = RENDERED.get(name)
        if rendered is not None:
            self.transport.write(rendered)
            return
        events = STREAMS.get(name)
        if events is not None:
            self.transport.write(STREAM_HEAD)
            for event in events:
                self.transport.write(event)
            self.transport.write(b"0\r\n\r\n")
            return
        pace = _PACE.fullmatch(name)
        if pace is None:
            self.transport.write(NOT_FOUND)
            return
        asyncio.get_running_loop().create_task(self.paced(int(pace.group(1)), int(pace.group(2)) / 1000))

    async def paced(self, total: int, interval: float) -> None:
        # Nothing else writes to this connection meanwhile: a client sends its next request on it only
        # after this stream has ended (HTTP/1.1 does not interleave responses).
        transport = self.transport
        assert transport is not None
        deltas = total - 6
        transport.write(STREAM_HEAD)
        transport.write(_chunk(b"".join(_stream_head())))
        for _ in range(deltas):
            await asyncio.sleep(interval)
            if transport.is_closing():
                return
            transport.write(_chunk(_delta(f"t={time.monotonic():.6f}")))
        transport.write(_chunk(b"".join(_stream_tail(deltas))) + b"0\r\n\r\n")


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(FakeFoundry, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
