"""Anthropic Messages stream -> OpenAI Responses stream: event order for every stream shape.

The upstream events are the Foundry emulator's own stream for a message (tests/emulators), so
the order fed in is the one the real API sends."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError, StreamError
from gateway.reasoning_seal import ReasoningSeal
from gateway.sse import parse_events
from gateway.translate.responses_response import ResponseFrame, message_to_response
from gateway.translate.responses_stream import ResponsesStream, ResponsesStreamTranslator
from tests.emulators.foundry.respond import stream_events
from tests.emulators.foundry.validate import thinking_signature
from tests.unit.test_chat_stream import (
    MESSAGE_STOP,
    REFRAMINGS,
    START,
    TEXTS,
    block_start,
    delta,
    in_reads,
    message_delta,
    reframed,
    sse,
    stop,
)

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
    translator = ResponsesStreamTranslator(ResponseFrame("resp_1", "claude", 1, {"tools": []}, SEAL.seal, json_tool))
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
    translator = ResponsesStreamTranslator(ResponseFrame("resp_1", "c", 1, {}, SEAL.seal))
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
    translator = ResponsesStreamTranslator(ResponseFrame("resp_1", "c", 1, {}, SEAL.seal))
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
    translator = ResponsesStreamTranslator(ResponseFrame("resp_1", "c", 1, {}, SEAL.seal))
    with pytest.raises(StreamError):
        for event in events:
            translator.feed(None, event)


# Text and thinking deltas in Anthropic's own bytes are spliced, not parsed; any other framing is
# parsed. Both give the client the same events, for any text, split into reads anywhere.


def run_wire(wire: bytes, step: int = 0) -> list[dict[str, Any]]:
    """The wire in reads of `step` bytes (0: one read), through `translate`, as events."""
    translator = ResponsesStreamTranslator(ResponseFrame("resp_1", "claude", 1, {"tools": []}, SEAL.seal))
    events = [orjson.loads(data) for _, data in parse_events(in_reads(translator, wire, step))]
    # Sealing draws a fresh nonce each time: compare what a sealed item holds, not its bytes.
    for event in events:
        for item in [event.get("item"), *event.get("response", {}).get("output", [])]:
            if isinstance(item, dict) and "encrypted_content" in item:
                item["encrypted_content"] = SEAL.open(item["encrypted_content"])
    return events


def thought_and_answer(deltas: list[tuple[str, str]]) -> bytes:
    """A thinking block, then a text block, with the deltas each kind gets, in Anthropic's bytes."""
    thinking = [d for d in deltas if d[0] == "thinking"]
    text = [d for d in deltas if d[0] == "text"]
    return sse(
        START,
        block_start(0, {"type": "thinking", "thinking": ""}),
        *(delta(0, {"type": "thinking_delta", "thinking": t}) for _, t in thinking),
        delta(0, {"type": "signature_delta", "signature": thinking_signature("".join(t for _, t in thinking))}),
        stop(0),
        block_start(1, {"type": "text", "text": ""}),
        *(delta(1, {"type": "text_delta", "text": t}) for _, t in text),
        # A delta for the other kind of block: no item takes it, spliced or parsed.
        *(delta(0 if kind == "text" else 1, {"type": f"{kind}_delta", kind: t}) for kind, t in deltas[:1]),
        stop(1),
        message_delta("end_turn", 3),
        MESSAGE_STOP,
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["text", "thinking"]), TEXTS), max_size=8),
    st.sampled_from(REFRAMINGS),
    st.integers(min_value=0, max_value=40),
)
def test_spliced_deltas_give_what_parsing_gives(deltas: list[tuple[str, str]], framing: str, step: int) -> None:
    wire = thought_and_answer(deltas)
    spliced = run_wire(wire, step)
    assert spliced == run_wire(reframed(wire, framing))
    assert [e["sequence_number"] for e in spliced] == list(range(len(spliced)))
    final = spliced[-1]["response"]
    answer = "".join(t for kind, t in deltas if kind == "text")
    assert final["output"][-1]["content"][0]["text"] == answer
    assert [e["delta"] for e in spliced if e["type"] == "response.output_text.delta"] == [
        t for kind, t in deltas if kind == "text" and t
    ]


def test_anthropic_bytes_take_the_spliced_lane() -> None:
    # The lane copies the upstream's string as it is, escapes and all; parsing would re-encode it.
    # This is how a test sees the lane is taken: if the pattern stopped matching, output would stay
    # right and only speed would be lost.
    wire = (
        sse(START, block_start(0, {"type": "text", "text": ""}))
        + (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":"caf\\u00e9 \\/ \\"q\\""}}\n\n'
        )
        + sse(stop(0))
    )
    translator = ResponsesStreamTranslator(ResponseFrame("resp_1", "claude", 1, {"tools": []}, SEAL.seal))
    out: list[bytes] = []
    translator.translate(wire[:-2], out)
    assert b'"delta":"caf\\u00e9 \\/ \\"q\\""' in out[2]
    events = [orjson.loads(data) for _, data in parse_events(b"".join(out))]
    assert events[4]["delta"] == 'caf\u00e9 / "q"' and events[4]["sequence_number"] == 4
    assert events[5] == {**events[5], "type": "response.output_text.done", "text": 'caf\u00e9 / "q"'}
    assert translator.delta_seen


@pytest.mark.parametrize(
    "text",
    [b'"caf\xe9"', b'"\xff\xfe"', b'"a\x01b"', b'"\\ud800"', b'"bad \\x escape"', b'"open'],
    ids=["latin-1", "not UTF-8", "raw control", "lone surrogate", "bad escape", "unclosed"],
)
def test_a_malformed_delta_ends_the_stream_as_parsing_would(text: bytes) -> None:
    wire = sse(START, block_start(0, {"type": "text", "text": ""})) + (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":' + text + b"}}\n\n"
    )
    translator = ResponsesStreamTranslator(ResponseFrame("resp_1", "claude", 1, {"tools": []}, SEAL.seal))
    out: list[bytes] = []
    with pytest.raises(StreamError) as info:
        translator.translate(wire[:-2], out)
    assert info.value.message == "upstream sent an event that is not a JSON object"
    assert len(list(parse_events(b"".join(out)))) == 4  # created, in_progress, item and part added: kept


# Claude's web search, as the emulator (and Claude) gives it: the search, its results, a cited answer.
SEARCH = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "tallest tower"}}
RESULTS = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
           "content": [{"type": "web_search_result", "url": "https://a.example/t", "title": "T",
                        "encrypted_content": "enc", "page_age": None}]}  # fmt: skip
CITED = {"type": "text", "text": "It is tall.",
         "citations": [{"type": "web_search_result_location", "url": "https://a.example/t", "title": "T",
                        "encrypted_index": "e", "cited_text": "tall"}]}  # fmt: skip
WEB_SEARCH_CALL = {"id": "ws_1_0", "type": "web_search_call", "status": "completed",
                   "action": {"type": "search", "query": "tallest tower",
                              "sources": [{"type": "url", "url": "https://a.example/t"}]}}  # fmt: skip
ANNOTATION = {"type": "url_citation", "url": "https://a.example/t", "title": "T", "start_index": 0, "end_index": 11}


def test_a_web_search_is_a_web_search_call_item_and_its_citations_annotations() -> None:
    events = translate(message(SEARCH, RESULTS, CITED))
    assert shape(events) == [
        *OPEN,
        "output_item.added", "web_search_call.in_progress", "web_search_call.searching", "web_search_call.completed",
        "output_item.done",
        "output_item.added", "content_part.added", "output_text.delta*", "output_text.annotation.added",
        "output_text.done", "content_part.done", "output_item.done",
        "completed",
    ]  # fmt: skip
    search, answer = events[-1]["response"]["output"]
    assert search == WEB_SEARCH_CALL
    assert answer["content"][0]["annotations"] == [ANNOTATION]
    frame = ResponseFrame("resp_1", "claude", 1, {"tools": []}, SEAL.seal)
    assert message_to_response(message(SEARCH, RESULTS, CITED), frame)["output"] == [search, answer]


def test_a_failed_web_search_says_so() -> None:
    failed = {**RESULTS, "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"}}
    search = translate(message(SEARCH, failed, TEXT))[-1]["response"]["output"][0]
    assert search["status"] == "failed" and search["action"] == {"type": "search", "query": "tallest tower"}


def test_a_namespaced_functions_call_comes_back_under_the_names_the_client_declared() -> None:
    call = {**CALL, "name": "multi_agent_v1__spawn_agent"}
    flat = {"multi_agent_v1__spawn_agent": ("multi_agent_v1", "spawn_agent")}
    frame = ResponseFrame("resp_1", "c", 1, {}, SEAL.seal, None, flat)
    translator = ResponsesStreamTranslator(frame)
    out = b"".join(translator.feed(name, payload) for name, payload in stream_events(message(call, stop="tool_use")))
    events = [orjson.loads(data) for _, data in parse_events(out)]
    added = next(e["item"] for e in events if e["type"] == "response.output_item.added")
    done = events[-1]["response"]["output"][0]
    for item in (added, done):
        assert (item["namespace"], item["name"]) == ("multi_agent_v1", "spawn_agent")
    assert message_to_response(message(call, stop="tool_use"), frame)["output"] == [done]
