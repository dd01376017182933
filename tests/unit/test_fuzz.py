"""Property-based: arbitrary input to the translators and the SSE decoder raises only their own errors."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError, StreamError
from gateway.sse import SSEDecoder
from gateway.translate.chat_request import chat_to_messages
from gateway.translate.chat_stream import ChatStreamTranslator

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "x"])
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES},
    optional={"content": JSON, "tool_calls": JSON, "tool_call_id": JSON, "name": JSON},
)
KEYS = st.sampled_from(
    ["messages", "tools", "tool_choice", "stop", "max_tokens", "max_completion_tokens", "temperature", "top_p",
     "response_format", "reasoning_effort", "thinking", "stream", "stream_options", "n", "user", "parallel_tool_calls"]
)  # fmt: skip
BODY = st.dictionaries(KEYS, JSON, max_size=6).flatmap(
    lambda base: st.lists(MESSAGE, max_size=5).map(lambda m: {**base, "messages": m})
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(BODY)
def test_request_translation_accepts_or_refuses_with_a_400(body: dict[str, Any]) -> None:
    try:
        translated = chat_to_messages(body, max_tokens_default=4096)
    except GatewayError as exc:
        assert exc.status == 400 and exc.message
        return
    assert translated.body["messages"] and translated.body["max_tokens"] >= 1


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_sse_decoder_takes_any_bytes(chunks: list[bytes]) -> None:
    decoder = SSEDecoder()
    for chunk in chunks:
        for name, data in decoder.feed(chunk):
            assert isinstance(data, bytes) and (name is None or isinstance(name, str))
    decoder.finish()


EVENT_TYPES = st.sampled_from(
    ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
     "message_stop", "ping", "error", "unknown"]
)  # fmt: skip


EVENT_DATA = st.dictionaries(
    st.sampled_from(["type", "index", "delta", "content_block", "message", "usage", "error"]), JSON, max_size=4
)


@settings(max_examples=200)
@given(st.lists(st.tuples(EVENT_TYPES, EVENT_DATA), max_size=12))
def test_stream_translation_raises_only_stream_errors(events: list[tuple[str, dict[str, Any]]]) -> None:
    translator = ChatStreamTranslator(model="m", created=0, include_usage=True)
    try:
        for kind, data in events:
            for event in translator.feed(kind, {**data, "type": kind}).split(b"\n\n"):
                if event:
                    assert orjson.loads(event.removeprefix(b"data: "))["object"] == "chat.completion.chunk"
    except StreamError as exc:
        assert exc.message


WIRE_PIECES = st.sampled_from(
    [b"event: message_start\ndata: ", b"event: content_block_delta\ndata: ", b'{"type":"content_block_delta",',
     b'"index":0,"delta":{"type":"text_delta","text":"', b'"thinking_delta","thinking":"', b'\\u00e9', b'\\ud800',
     b'"}}', b"\n\n", b"\n", b"\r\n", b": c\n", b"\xff", b'"']
) | st.binary(max_size=16)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(WIRE_PIECES, max_size=30), st.integers(min_value=1, max_value=64))
def test_wire_translation_raises_only_stream_errors(pieces: list[bytes], step: int) -> None:
    """Any bytes through `translate`, which reads text deltas without parsing them: every chunk it
    writes is a JSON chunk, and anything it cannot read is a StreamError."""
    translator = ChatStreamTranslator(model="m", created=0, include_usage=True)
    translator.feed("message_start", {"type": "message_start", "message": {"id": "x"}})
    decoder = SSEDecoder()
    wire = b"".join(pieces)
    out: list[bytes] = []
    try:
        for i in range(0, len(wire), step):
            complete = decoder.complete(wire[i : i + step])
            if complete is not None:
                translator.translate(complete, out)
    except StreamError as exc:
        assert exc.message
    for event in b"".join(out).split(b"\n\n"):
        if event:
            assert orjson.loads(event.removeprefix(b"data: "))["object"] == "chat.completion.chunk"
