"""The SSE push decoder, one test per wire case."""

from __future__ import annotations

import pytest

from gateway.sse import SSEDecoder, SSEEvent, encode_data, encode_event


def decode_all(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events + decoder.finish()


WIRE = [
    ("one event", [b"event: ping\ndata: {}\n\n"], [SSEEvent("ping", "{}")]),
    ("no space after colon", [b"event:ping\ndata:{}\n\n"], [SSEEvent("ping", "{}")]),
    ("only the first space is stripped", [b"data:  x\n\n"], [SSEEvent(None, " x")]),
    ("CRLF", [b"event: a\r\ndata: 1\r\n\r\n"], [SSEEvent("a", "1")]),
    ("CR only", [b"event: a\rdata: 1\r\r"], [SSEEvent("a", "1")]),
    ("CRLF split between reads", [b"data: 1\r", b"\n\r", b"\n"], [SSEEvent(None, "1")]),
    ("event split across reads", [b"eve", b"nt: a\nda", b'ta: {"x"', b": 1}\n", b"\n"], [SSEEvent("a", '{"x": 1}')]),
    ("UTF-8 split across reads", [b"data: \xc3", b"\xa9t\xc3\xa9\n\n"], [SSEEvent(None, "été")]),
    ("multi-line data", [b"data: a\ndata: b\n\n"], [SSEEvent(None, "a\nb")]),
    ("comments ignored", [b": keep-alive\n\n", b"data: x\n\n"], [SSEEvent(None, "x")]),
    ("id and retry ignored", [b"id: 7\nretry: 10\ndata: x\n\n"], [SSEEvent(None, "x")]),
    ("blank lines alone dispatch nothing", [b"\n\n\n"], []),
    ("two events in one read", [b"data: 1\n\ndata: 2\n\n"], [SSEEvent(None, "1"), SSEEvent(None, "2")]),
    ("unterminated event is not dispatched", [b"data: 1\n"], []),
]


@pytest.mark.parametrize(("name", "chunks", "expected"), WIRE, ids=[w[0] for w in WIRE])
def test_decoder(name: str, chunks: list[bytes], expected: list[SSEEvent]) -> None:
    assert decode_all(*chunks) == expected


def test_pending_reports_a_partial_event() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"event: message_start\ndata: {")
    assert decoder.pending
    decoder.feed(b"}\n\n")
    assert not decoder.pending


def test_every_split_of_a_stream_decodes_the_same() -> None:
    wire = b"event: a\r\ndata: \xe2\x82\xac1\r\n\r\n: c\n\nevent: b\ndata: 2\ndata: 3\n\n"
    whole = decode_all(wire)
    assert whole == [SSEEvent("a", "€1"), SSEEvent("b", "2\n3")]
    for i in range(len(wire)):
        for j in range(i, len(wire)):
            assert decode_all(wire[:i], wire[i:j], wire[j:]) == whole


def test_encoders_round_trip() -> None:
    assert decode_all(encode_event("message_stop", {"type": "message_stop"})) == [
        SSEEvent("message_stop", '{"type":"message_stop"}')
    ]
    assert encode_data({"a": "é"}) == b'data: {"a":"\xc3\xa9"}\n\n'
