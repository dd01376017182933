"""Anthropic stream events -> OpenAI chunks: table-driven, raw SSE in, whole chunks out.

Every case runs through both readers: `translate` (wire bytes, with its unparsed lane for
text deltas in Anthropic's own bytes) and `feed` (events parsed one by one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import StreamError
from gateway.sse import SSEDecoder
from gateway.translate.chat_stream import ChatStreamTranslator

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "dep",
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 1},
    },
}


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, d: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": d}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }


MESSAGE_STOP = {"type": "message_stop"}
PING = {"type": "ping"}


def in_reads(translator: Any, wire: bytes, step: int = 0) -> bytes:
    """The wire as the gateway reads it: in reads of `step` bytes (0: one read), through `translate`."""
    decoder = SSEDecoder()
    out: list[bytes] = []
    for i in range(0, len(wire), step or len(wire)):
        complete = decoder.complete(wire[i : i + (step or len(wire))])
        if complete is not None:
            translator.translate(complete, out)
    return b"".join(out)


def run(
    wire: bytes, *, include_usage: bool = False, json_tool: str | None = None, step: int = 0
) -> list[dict[str, Any]]:
    translator = ChatStreamTranslator(model="claude", created=1, include_usage=include_usage, json_tool=json_tool)
    return chunks_of(in_reads(translator, wire, step))


def run_parsed(wire: bytes, *, include_usage: bool = False, json_tool: str | None = None) -> list[dict[str, Any]]:
    """The same, each event parsed and fed to `feed`."""
    translator = ChatStreamTranslator(model="claude", created=1, include_usage=include_usage, json_tool=json_tool)
    decoder = SSEDecoder()
    out: list[dict[str, Any]] = []
    for name, data in decoder.feed(wire) + decoder.finish():
        out.extend(chunks_of(translator.feed(name, orjson.loads(data))))
    return out


READERS: dict[str, Callable[..., list[dict[str, Any]]]] = {"translate": run, "feed": run_parsed}


def chunks_of(encoded: bytes) -> list[dict[str, Any]]:
    """The translator writes SSE `data:` events; every one must be a whole event holding one JSON object."""
    assert encoded == b"" or encoded.endswith(b"\n\n")
    events = [e for e in encoded.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in events)
    return [orjson.loads(e[6:]) for e in events]


def chunk(delta: dict[str, Any], finish: str | None = None, *, usage_field: bool = False) -> dict[str, Any]:
    c: dict[str, Any] = {
        "id": "msg_1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "claude",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    if usage_field:
        c["usage"] = None
    return c


ROLE = {"role": "assistant", "content": ""}

CASES: list[tuple[str, bytes, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "text",
        sse(
            START,
            PING,
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "Hel"}),
            delta(0, {"type": "text_delta", "text": "lo"}),
            stop(0),
            message_delta("end_turn", 2),
            MESSAGE_STOP,
        ),
        {},
        [chunk(ROLE), chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop")],
    ),
    (
        "text with usage chunk",
        sse(
            START,
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "Hi"}),
            stop(0),
            message_delta("max_tokens", 7),
            MESSAGE_STOP,
        ),
        {"include_usage": True},
        [
            chunk(ROLE, usage_field=True),
            chunk({"content": "Hi"}, usage_field=True),
            chunk({}, "length", usage_field=True),
            {
                "id": "msg_1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "claude",
                "choices": [],
                "usage": {
                    "prompt_tokens": 14,
                    "completion_tokens": 7,
                    "total_tokens": 21,
                    "prompt_tokens_details": {"cached_tokens": 4},
                },
            },
        ],
    ),
    (
        "two tool calls: id and name first, then argument fragments; empty fragments skipped",
        sse(
            START,
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "Ok."}),
            stop(0),
            block_start(1, {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}),
            delta(1, {"type": "input_json_delta", "partial_json": ""}),
            delta(1, {"type": "input_json_delta", "partial_json": '{"x":'}),
            delta(1, {"type": "input_json_delta", "partial_json": "1}"}),
            stop(1),
            block_start(2, {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}),
            delta(2, {"type": "input_json_delta", "partial_json": "{}"}),
            stop(2),
            message_delta("tool_use", 9),
            MESSAGE_STOP,
        ),
        {},
        [
            chunk(ROLE),
            chunk({"content": "Ok."}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": ""}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "g", "arguments": ""}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
        ],
    ),
    (
        "thinking as reasoning_content; signatures dropped",
        sse(
            START,
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            delta(0, {"type": "thinking_delta", "thinking": "Hmm"}),
            delta(0, {"type": "signature_delta", "signature": "s"}),
            stop(0),
            block_start(1, {"type": "text", "text": ""}),
            delta(1, {"type": "text_delta", "text": "A"}),
            stop(1),
            message_delta("end_turn", 3),
            MESSAGE_STOP,
        ),
        {},
        [chunk(ROLE), chunk({"reasoning_content": "Hmm"}), chunk({"content": "A"}), chunk({}, "stop")],
    ),
    (
        "response_format tool streams as content and finishes with stop",
        sse(
            START,
            block_start(0, {"type": "tool_use", "id": "t", "name": "json_response", "input": {}}),
            delta(0, {"type": "input_json_delta", "partial_json": '{"a"'}),
            delta(0, {"type": "input_json_delta", "partial_json": ":1}"}),
            stop(0),
            message_delta("tool_use", 3),
            MESSAGE_STOP,
        ),
        {"json_tool": "json_response"},
        [chunk(ROLE), chunk({"content": '{"a"'}), chunk({"content": ":1}"}), chunk({}, "stop")],
    ),
    (
        "unknown events and deltas are ignored",
        sse(
            START,
            {"type": "some_new_event", "x": 1},
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "citations_delta", "citation": {}}),
            stop(0),
            message_delta("refusal", 0),
            MESSAGE_STOP,
        ),
        {},
        [chunk(ROLE), chunk({}, "content_filter")],
    ),
]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("name", "wire", "options", "expected"), CASES, ids=[c[0] for c in CASES])
def test_stream(reader: str, name: str, wire: bytes, options: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert READERS[reader](wire, **options) == expected


@pytest.mark.parametrize("step", [1, 7, 13, 64])
def test_split_reads_give_the_same_chunks(step: int) -> None:
    wire = CASES[2][1]
    assert run(wire, step=step) == run(wire)


def reframed(wire: bytes, how: str) -> bytes:
    """The same events, written in a way other than Anthropic's own bytes."""
    events = [orjson.loads(line[6:]) for line in wire.split(b"\n") if line.startswith(b"data: ")]
    encoders: dict[str, Callable[[dict[str, Any]], bytes]] = {
        "spaced JSON": lambda e: json.dumps(e).encode(),
        "keys reordered": lambda e: orjson.dumps(dict(reversed(e.items()))),
        "escaped non-ASCII": lambda e: json.dumps(e, separators=(",", ":")).encode(),
    }
    if how in encoders:
        return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + encoders[how](e) + b"\n\n" for e in events)
    if how == "CRLF":
        return wire.replace(b"\n", b"\r\n")
    if how == "comments":
        return wire.replace(b"\n\n", b"\n\n: keep-alive\n\n")
    if how == "no space after the colon":
        return wire.replace(b"data: ", b"data:")
    if how == "no event lines":
        return b"".join(line + b"\n" for line in wire.split(b"\n") if not line.startswith(b"event: "))
    raise AssertionError(how)


REFRAMINGS = ["spaced JSON", "keys reordered", "escaped non-ASCII", "CRLF", "comments", "no space after the colon",
              "no event lines"]  # fmt: skip
TEXTS = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=150)
@given(
    st.lists(st.tuples(st.sampled_from(["text", "thinking"]), TEXTS), max_size=8),
    st.sampled_from(["anthropic", *REFRAMINGS]),
    st.integers(min_value=0, max_value=40),
)
def test_any_text_in_any_framing_and_reads_gives_what_parsing_gives(
    deltas: list[tuple[str, str]], framing: str, step: int
) -> None:
    """The unparsed lane and the parsing path agree on every text, framing and split of the reads."""
    wire = sse(
        START,
        block_start(0, {"type": "thinking", "thinking": ""}),
        *(delta(0, {"type": f"{kind}_delta", kind: text}) for kind, text in deltas),
        message_delta("end_turn", 3),
        MESSAGE_STOP,
    )
    if framing != "anthropic":
        wire = reframed(wire, framing)
    expected = run_parsed(wire)
    assert [c["choices"][0]["delta"] for c in expected[1:-1]] == [
        {"content" if kind == "text" else "reasoning_content": text} for kind, text in deltas
    ]
    assert run(wire, step=step) == expected


def test_anthropic_bytes_take_the_unparsed_lane() -> None:
    # The lane copies the upstream's string as it is, escapes and all; parsing would re-encode it.
    # This is how a test sees the lane is taken: if the pattern stopped matching, output would stay
    # right and only speed would be lost.
    wire = sse(START) + (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"caf\\u00e9 \\/ \\"q\\""}}\n\n'
    )
    translator = ChatStreamTranslator(model="claude", created=1, include_usage=False)
    out: list[bytes] = []
    translator.translate(wire[:-2], out)
    assert b'"content":"caf\\u00e9 \\/ \\"q\\""' in out[-1]
    assert chunks_of(out[-1])[0]["choices"][0]["delta"] == {"content": 'caf\u00e9 / "q"'}
    assert translator.delta_seen


@pytest.mark.parametrize(
    "text",
    [b'"caf\xe9"', b'"\xff\xfe"', b'"a\x01b"', b'"\\ud800"', b'"\\udc00"', b'"bad \\x escape"', b'"open'],
    ids=["latin-1", "not UTF-8", "raw control", "lone high surrogate", "lone low surrogate", "bad escape", "unclosed"],
)
def test_a_malformed_delta_ends_the_stream_as_parsing_would(text: bytes) -> None:
    wire = sse(START) + (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":' + text + b"}}\n\n"
    )
    translator = ChatStreamTranslator(model="claude", created=1, include_usage=False)
    out: list[bytes] = []
    with pytest.raises(StreamError) as info:
        translator.translate(wire[:-2], out)
    assert info.value.message == "upstream sent an event that is not a JSON object"
    assert chunks_of(b"".join(out)) == [chunk(ROLE)]  # the role chunk before it is kept


FAILURES = [
    (
        "error event",
        sse(START, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        "overloaded_error",
        "Overloaded",
    ),
    (
        "delta before message_start",
        sse(delta(0, {"type": "text_delta", "text": "x"})),
        "api_error",
        "before message_start",
    ),
    ("stop without stop reason", sse(START, MESSAGE_STOP), "api_error", "without a stop reason"),
    (
        "tool input for an unknown block",
        sse(START, delta(3, {"type": "input_json_delta", "partial_json": "{"})),
        "api_error",
        "unknown content block",
    ),
]


@pytest.mark.parametrize(("name", "wire", "error_type", "fragment"), FAILURES, ids=[f[0] for f in FAILURES])
@pytest.mark.parametrize("reader", READERS)
def test_failures_raise(reader: str, name: str, wire: bytes, error_type: str, fragment: str) -> None:
    with pytest.raises(StreamError) as info:
        READERS[reader](wire)
    assert info.value.error_type == error_type
    assert fragment in info.value.message


def test_state_flags() -> None:
    translator = ChatStreamTranslator(model="m", created=0, include_usage=False)
    assert not translator.started
    translator.feed("message_start", START)
    assert translator.started and not translator.stopped
    translator.feed("message_delta", message_delta("end_turn", 5))
    translator.feed("message_stop", MESSAGE_STOP)
    assert translator.stopped and translator.finish_reason == "stop"
    assert translator.usage["output_tokens"] == 5 and translator.usage["input_tokens"] == 10


@pytest.mark.parametrize("model", ["claude", "\u2063slot\u2063", '"\u2063slot\u2063"'])
def test_text_deltas_hold_their_text_whatever_the_model_is_called(model: str) -> None:
    translator = ChatStreamTranslator(model=model, created=1, include_usage=True)
    translator.feed("message_start", START)
    text = 'he said "hi"\n\u2063slot\u2063 ✓'
    [chunk] = chunks_of(translator.feed("content_block_delta", delta(0, {"type": "text_delta", "text": text})))
    assert chunk["model"] == model
    assert chunk["choices"][0]["delta"] == {"content": text}
    assert chunk["usage"] is None
