"""The SSE push decoder, one test per wire case."""

from __future__ import annotations

import pytest

from gateway.sse import SSEDecoder, SSEEvent, SSEWatcher, encode_data, encode_event


def decode_all(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events + decoder.finish()


WIRE = [
    ("one event", [b"event: ping\ndata: {}\n\n"], [("ping", b"{}")]),
    ("no space after colon", [b"event:ping\ndata:{}\n\n"], [("ping", b"{}")]),
    ("only the first space is stripped", [b"data:  x\n\n"], [(None, b" x")]),
    ("CRLF", [b"event: a\r\ndata: 1\r\n\r\n"], [("a", b"1")]),
    ("CR only", [b"event: a\rdata: 1\r\r"], [("a", b"1")]),
    ("CRLF split between reads", [b"data: 1\r", b"\n\r", b"\n"], [(None, b"1")]),
    ("event split across reads", [b"eve", b"nt: a\nda", b'ta: {"x"', b": 1}\n", b"\n"], [("a", b'{"x": 1}')]),
    ("UTF-8 split across reads", [b"data: \xc3", b"\xa9t\xc3\xa9\n\n"], [(None, b"\xc3\xa9t\xc3\xa9")]),
    ("multi-line data", [b"data: a\ndata: b\n\n"], [(None, b"a\nb")]),
    ("comments ignored", [b": keep-alive\n\n", b"data: x\n\n"], [(None, b"x")]),
    ("id and retry ignored", [b"id: 7\nretry: 10\ndata: x\n\n"], [(None, b"x")]),
    ("blank lines alone dispatch nothing", [b"\n\n\n"], []),
    ("data before event", [b"data: 1\nevent: a\n\n"], [("a", b"1")]),
    ("event line without a space, then data", [b"event:a\ndata: 1\n\n"], [("a", b"1")]),
    ("leading blank lines", [b"\n\n\nevent: a\ndata: 1\n\n"], [("a", b"1")]),
    ("blank line split between reads", [b"data: 1\n", b"\n", b"data: 2\n\n"], [(None, b"1"), (None, b"2")]),
    ("two events in one read", [b"data: 1\n\ndata: 2\n\n"], [(None, b"1"), (None, b"2")]),
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
    assert whole == [("a", b"\xe2\x82\xac1"), ("b", b"2\n3")]
    for i in range(len(wire)):
        for j in range(i, len(wire)):
            assert decode_all(wire[:i], wire[i:j], wire[j:]) == whole


def test_encoders_round_trip() -> None:
    assert decode_all(encode_event("message_stop", {"type": "message_stop"})) == [
        ("message_stop", b'{"type":"message_stop"}')
    ]
    assert encode_data({"a": "é"}) == b'data: {"a":"\xc3\xa9"}\n\n'


WATCHED = frozenset({"message_stop", "error"})


def watch(*chunks: bytes, once: frozenset[str] = frozenset()) -> list[SSEEvent]:
    watcher = SSEWatcher(WATCHED, once=once)
    return [event for chunk in chunks for event in watcher.feed(chunk)]


WATCH_WIRE = (
    b"event: ping\ndata: {}\n\n"
    b'event: content_block_delta\ndata: {"text": "message_stop is only text here"}\n\n'
    b'event: content_block_delta\ndata: {"text": "2"}\n\n'
    b'data: {"type": "error"}\nevent: error\n\n'
    b"event:message_stop\r\ndata: {}\r\n\r\n"
)


def test_watcher_returns_just_the_named_events_in_order_at_every_split() -> None:
    expected = [("error", b'{"type": "error"}'), ("message_stop", b"{}")]
    assert watch(WATCH_WIRE) == expected
    for i in range(len(WATCH_WIRE)):
        assert watch(WATCH_WIRE[:i], WATCH_WIRE[i:]) == expected


def test_watcher_returns_only_the_first_of_a_once_name_at_every_split() -> None:
    once = frozenset({"content_block_delta"})
    expected = [
        ("content_block_delta", b'{"text": "message_stop is only text here"}'),
        ("error", b'{"type": "error"}'),
        ("message_stop", b"{}"),
    ]
    assert watch(WATCH_WIRE, once=once) == expected
    for i in range(len(WATCH_WIRE)):
        for j in range(i, len(WATCH_WIRE), 7):
            assert watch(WATCH_WIRE[:i], WATCH_WIRE[i:j], WATCH_WIRE[j:], once=once) == expected


def test_watcher_agrees_with_the_decoder_on_a_real_stream() -> None:
    names = ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 30
    names += ["content_block_stop", "message_delta", "message_stop"]
    wire = b"".join(encode_event(n, {"type": n, "text": f"error {i}"}) for i, n in enumerate(names))
    watched = frozenset({"message_start", "message_delta", "message_stop", "error"})
    decoded = [e for e in decode_all(wire) if e[0] in watched]
    for size in (1, 7, 64, len(wire)):
        watcher = SSEWatcher(watched)
        assert [e for i in range(0, len(wire), size) for e in watcher.feed(wire[i : i + size])] == decoded


def test_pending_ignores_blank_lines_and_sees_partial_events() -> None:
    watcher = SSEWatcher(WATCHED)
    watcher.feed(b"event: ping\ndata: {}\n\n\n")
    assert not watcher.pending
    watcher.feed(b"event: content_block_delta\nda")
    assert watcher.pending
