"""Anthropic Messages stream -> OpenAI Responses stream: event order for every stream shape.

The upstream events are the Foundry emulator's own stream for a message (tests/emulators), so
the order fed in is the one the real API sends."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.errors import GatewayError, StreamError
from gateway.reasoning_seal import ReasoningSeal
from gateway.sse import parse_events
from gateway.translate.responses_stream import ResponsesStream, ResponsesStreamTranslator
from tests.emulators.foundry.respond import stream_events
from tests.emulators.foundry.validate import thinking_signature

SEAL = ReasoningSeal()
THOUGHT = "I should check the weather."
USAGE = {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4, "output_tokens": 7}


def message(*content: dict[str, Any], stop: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "dep", "content": list(content),
            "stop_reason": stop, "stop_sequence": None, "usage": USAGE}  # fmt: skip


TEXT = {"type": "text", "text": "Hello there friend"}
THINKING = {"type": "thinking", "thinking": THOUGHT, "signature": thinking_signature(THOUGHT)}
CALL = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}


def translate(msg: dict[str, Any], json_tool: str | None = None) -> list[dict[str, Any]]:
    translator = ResponsesStreamTranslator(model="claude", created=1, echo={"tools": []}, seal=SEAL.seal,
                                           json_tool=json_tool)  # fmt: skip
    out = b"".join(translator.feed(name, payload) for name, payload in stream_events(msg))
    return [orjson.loads(data) for _, data in parse_events(out)]


def shape(events: list[dict[str, Any]]) -> list[str]:
    """Event types, a run of one delta type written once with a star."""
    kinds: list[str] = []
    for event in events:
        kind = event["type"].removeprefix("response.")
        if kind.endswith(".delta") and kinds and kinds[-1] in (kind, kind + "*"):
            kinds[-1] = kind + "*"
        else:
            kinds.append(kind)
    return kinds


OPEN = ["created", "in_progress"]
MESSAGE = ["output_item.added", "content_part.added", "output_text.delta*", "output_text.done",
           "content_part.done", "output_item.done"]  # fmt: skip
REASONING = ["output_item.added", "reasoning_summary_part.added", "reasoning_summary_text.delta*",
             "reasoning_summary_text.done", "reasoning_summary_part.done", "output_item.done"]  # fmt: skip
FUNCTION = ["output_item.added", "function_call_arguments.delta*", "function_call_arguments.done", "output_item.done"]

SHAPES = [
    ("text", message(TEXT), None, [*OPEN, *MESSAGE, "completed"]),
    ("reasoning, text, tool", message(THINKING, TEXT, CALL, stop="tool_use"), None,
     [*OPEN, *REASONING, *MESSAGE, *FUNCTION, "completed"]),
    ("signature-only thinking", message({**THINKING, "thinking": ""}, TEXT), None,
     [*OPEN, "output_item.added", "output_item.done", *MESSAGE, "completed"]),
    ("max tokens", message(TEXT, stop="max_tokens"), None, [*OPEN, *MESSAGE, "incomplete"]),
    ("the JSON-answer tool is the message", message({**CALL, "name": "json_response"}, stop="tool_use"),
     "json_response", [*OPEN, *MESSAGE, "completed"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "msg", "json_tool", "expected"), SHAPES, ids=[s[0] for s in SHAPES])
def test_event_order(name: str, msg: dict[str, Any], json_tool: str | None, expected: list[str]) -> None:
    events = translate(msg, json_tool)
    assert shape(events) == expected
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    # The final response holds every item exactly as its output_item.done event gave it.
    assert final["output"] == [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert final["usage"]["input_tokens"] == 14 and final["usage"]["input_tokens_details"]["cached_tokens"] == 4


def test_the_items_say_what_claude_said() -> None:
    events = translate(message(THINKING, TEXT, CALL, stop="tool_use"))
    reasoning, text, call = events[-1]["response"]["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": THOUGHT}]
    assert SEAL.open(reasoning["encrypted_content"]) == THINKING, "the block, signature and all, sealed"
    assert text["content"][0]["text"] == "Hello there friend" and text["status"] == "completed"
    assert (call["call_id"], call["name"], orjson.loads(call["arguments"])) == ("toolu_1", "get_weather",
                                                                              {"city": "Paris"})  # fmt: skip
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert orjson.loads(deltas) == {"city": "Paris"}


def test_redacted_thinking_is_sealed_whole() -> None:
    redacted = {"type": "redacted_thinking", "data": "opaque-bytes"}
    translator = ResponsesStreamTranslator(model="c", created=1, echo={}, seal=SEAL.seal)
    events = b"".join(
        translator.feed(None, e)
        for e in (
            {"type": "message_start", "message": {"id": "msg_2", "usage": {}}},
            {"type": "content_block_start", "index": 0, "content_block": redacted},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
            {"type": "message_stop"},
        )
    )
    final = orjson.loads(parse_events(events)[-1][1])["response"]
    assert final["output"][0]["summary"] == [] and SEAL.open(final["output"][0]["encrypted_content"]) == redacted


def wire(msg: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + n.encode() + b"\ndata: " + orjson.dumps(p) + b"\n\n" for n, p in stream_events(msg))


def test_an_upstream_error_event_ends_with_response_failed_and_keeps_what_came_before() -> None:
    translator = ResponsesStreamTranslator(model="c", created=1, echo={}, seal=SEAL.seal)
    stream = ResponsesStream(translator, 1 << 20)
    upstream = wire(message(TEXT)).split(b"event: content_block_stop")[0]
    upstream += b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    with pytest.raises(StreamError) as caught:
        stream.feed(upstream)
    before = [orjson.loads(d)["type"] for _, d in parse_events(caught.value.before)]
    assert before[:2] == ["response.created", "response.in_progress"] and "response.output_text.delta" in before
    failed = orjson.loads(parse_events(stream.error(GatewayError(502, "upstream stream failed: Overloaded",
                                                                 error_type="overloaded_error")))[0][1])  # fmt: skip
    assert failed["type"] == "response.failed" and failed["sequence_number"] == len(before)
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {
        "code": "rate_limit_exceeded",
        "message": "upstream stream failed: Overloaded",
    }
    assert stream.ending() == b"", "no [DONE]: the Responses stream ends with its last event"


@pytest.mark.parametrize(
    "events",
    [
        [{"type": "content_block_start", "index": 0, "content_block": TEXT}],
        [{"type": "message_start", "message": {"id": "m"}}, {"type": "message_stop"}],
        [{"type": "message_start", "message": {"id": "m"}}, {"type": "content_block_start", "content_block": TEXT}],
    ],
    ids=["before-message-start", "stop-without-stop-reason", "block-without-index"],
)
def test_events_out_of_order_are_a_stream_error(events: list[dict[str, Any]]) -> None:
    translator = ResponsesStreamTranslator(model="c", created=1, echo={}, seal=SEAL.seal)
    with pytest.raises(StreamError):
        for event in events:
            translator.feed(None, event)
