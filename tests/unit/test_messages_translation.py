"""The native dialect's stream: the first bytes are held until message_start names the client's model."""

from __future__ import annotations

import orjson
import pytest

from gateway.translate.messages import NativeStream

MESSAGE = {"id": "m", "model": "deployment-x", "usage": {"input_tokens": 3}}
START_JSON = orjson.dumps({"type": "message_start", "message": MESSAGE})
RENAMED = orjson.dumps({"type": "message_start", "message": {**MESSAGE, "model": "claude-sonnet-4-5-20250929"}})
PING = b"event: ping\ndata: {}\n\n"

FRAMINGS = [
    ("as Foundry frames it", b"event: message_start\ndata: " + START_JSON + b"\n\n" + PING),
    ("CRLF", b"event: message_start\r\ndata: " + START_JSON + b"\r\n\r\n" + PING),
    ("a comment first", b": hello\n\nevent: message_start\ndata: " + START_JSON + b"\n\n" + PING),
    ("no space after the colon", b"event:message_start\ndata:" + START_JSON + b"\n\n" + PING),
]


@pytest.mark.parametrize(("name", "wire"), FRAMINGS, ids=[f[0] for f in FRAMINGS])
def test_message_start_names_the_model_the_client_sent_whatever_the_framing(name: str, wire: bytes) -> None:
    for split in range(1, len(wire)):
        stream = NativeStream(1 << 20, "claude-sonnet-4-5-20250929")
        out = stream.feed(wire[:split]) + stream.feed(wire[split:])
        assert out == b"event: message_start\ndata: " + RENAMED + b"\n\n" + PING, split
        assert stream.usage == {"input_tokens": 3}


def test_nothing_goes_out_before_message_start_is_whole() -> None:
    stream = NativeStream(1 << 20, "m")
    assert stream.feed(b'event: message_start\ndata: {"type":"message_st') == b""
    assert not stream.pending, "the client has none of the held head: a heartbeat may go before it"
    assert b'"model":"m"' in stream.feed(b'art","message":{"model":"d"}}\n\n')
    assert stream.feed(PING) == PING, "after it, bytes pass as they come"
    assert stream.feed(b"event: ping\ndata: {") == b"event: ping\ndata: {"
    assert stream.pending, "the client holds part of an event: no heartbeat inside it"


def test_a_message_start_that_is_not_an_object_passes_unchanged() -> None:
    wire = b'event: message_start\ndata: {"type":"message_start","message":"a string"}\n\n'
    assert NativeStream(1 << 20, "m").feed(wire) == wire


def test_an_error_before_any_message_start_is_passed_on() -> None:
    wire = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Busy"}}\n\n'
    stream = NativeStream(1 << 20, "m")
    assert stream.feed(wire) == wire and stream.done and stream.upstream_error
