"""Native structured outputs emulated with a tool: the answer's tool call back as the JSON text
block the client asked for, whole or streamed, in any reads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.sse import parse_events
from gateway.translate.json_answer import JsonAnswerStream, JsonAnswerStreamTranslator, json_answer_message
from tests.emulators.foundry.respond import stream_events

ANSWER = {"city": "Paris", "celsius": 21, "note": 'naïve "quoted" text'}
USAGE = {"input_tokens": 10, "output_tokens": 7}


def message(*content: dict[str, Any], stop: str = "tool_use") -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "deployment", "content": list(content),
            "stop_reason": stop, "stop_sequence": None, "usage": USAGE}  # fmt: skip


JSON_CALL = {"type": "tool_use", "id": "toolu_1", "name": "json_response", "input": ANSWER}
OTHER_CALL = {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {}}


def wire(msg: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + n.encode() + b"\ndata: " + orjson.dumps(p) + b"\n\n" for n, p in stream_events(msg))


def streamed(msg: dict[str, Any], step: int) -> list[tuple[str | None, dict[str, Any]]]:
    stream = JsonAnswerStream(JsonAnswerStreamTranslator("claude-sonnet-4-5"), 1 << 20, "req_1")
    raw, data = b"", wire(msg)
    for i in range(0, len(data), step or len(data)):
        raw += stream.feed(data[i : i + (step or len(data))])
    assert stream.done and stream.usage == USAGE
    return [(name, orjson.loads(payload)) for name, payload in parse_events(raw)]


def test_the_json_tools_call_is_the_answers_text() -> None:
    answered = json_answer_message(message({"type": "thinking", "thinking": "", "signature": "s"}, JSON_CALL))
    assert answered["content"][1] == {"type": "text", "text": orjson.dumps(ANSWER).decode()}
    assert answered["stop_reason"] == "end_turn"


def test_a_call_of_the_clients_own_tool_stays_one() -> None:
    answered = json_answer_message(message(OTHER_CALL))
    assert answered["content"] == [OTHER_CALL] and answered["stop_reason"] == "tool_use"


@pytest.mark.parametrize("step", [0, 1, 7, 64], ids=["one-read", "bytewise", "7-bytes", "64-bytes"])
def test_streamed_the_json_comes_as_text_deltas(step: int) -> None:
    events = streamed(message({"type": "text", "text": "Here it is"}, JSON_CALL), step)
    starts = [e["content_block"] for n, e in events if n == "content_block_start"]
    assert starts == [{"type": "text", "text": ""}, {"type": "text", "text": ""}]
    deltas = [e for n, e in events if n == "content_block_delta"]
    assert {d["delta"]["type"] for d in deltas} == {"text_delta"}
    texts = ["".join(d["delta"]["text"] for d in deltas if d["index"] == i) for i in (0, 1)]
    assert texts[0] == "Here it is" and orjson.loads(texts[1]) == ANSWER
    assert events[0][1]["message"]["model"] == "claude-sonnet-4-5"
    stop = next(e for n, e in events if n == "message_delta")
    assert stop["delta"]["stop_reason"] == "end_turn" and events[-1][0] == "message_stop"


def test_streamed_a_call_of_the_clients_own_tool_goes_as_it_came() -> None:
    events = streamed(message(OTHER_CALL), 0)
    assert [e["content_block"]["type"] for n, e in events if n == "content_block_start"] == ["tool_use"]
    assert next(e for n, e in events if n == "message_delta")["delta"]["stop_reason"] == "tool_use"
