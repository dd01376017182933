"""Anthropic stream events -> OpenAI chunks: table-driven, raw SSE in, whole chunks out."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.sse import SSEDecoder
from gateway.translate.openai_stream import ChatStreamTranslator, StreamError

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


def run(wire: bytes, *, include_usage: bool = False, json_tool: str | None = None) -> list[dict[str, Any]]:
    translator = ChatStreamTranslator(model="claude", created=1, include_usage=include_usage, json_tool=json_tool)
    decoder = SSEDecoder()
    out: list[dict[str, Any]] = []
    for name, data in decoder.feed(wire) + decoder.finish():
        out.extend(chunks_of(translator.feed(name, orjson.loads(data))))
    return out


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


@pytest.mark.parametrize(("name", "wire", "options", "expected"), CASES, ids=[c[0] for c in CASES])
def test_stream(name: str, wire: bytes, options: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert run(wire, **options) == expected


def test_split_reads_give_the_same_chunks() -> None:
    wire = CASES[2][1]
    whole = run(wire)
    translator = ChatStreamTranslator(model="claude", created=1, include_usage=False)
    decoder = SSEDecoder()
    out = []
    for i in range(0, len(wire), 13):
        for name, data in decoder.feed(wire[i : i + 13]):
            out.extend(chunks_of(translator.feed(name, orjson.loads(data))))
    assert out == whole


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
def test_failures_raise(name: str, wire: bytes, error_type: str, fragment: str) -> None:
    with pytest.raises(StreamError) as info:
        run(wire)
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
