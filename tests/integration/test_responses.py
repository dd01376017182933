"""The OpenAI Responses API (/v1/responses) through the gateway, with the official `openai` SDK
(sync and async, create and stream) against the Foundry emulator, which refuses what Claude
refuses: a tool turn without the signed thinking it gave, thinking it did not sign."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from devtools.harness import emulator_control, start_gateway
from tests.emulators.foundry.validate import thinking_signature
from tests.integration.conftest import API_KEY, CLIENT_KEY, Stack, api_key_upstream, route

MODEL = "claude-sonnet-4-5"
# Any: the SDK types its parameters as TypedDicts, which a shared literal does not narrow to.
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
LOW: Any = {"effort": "low"}
TIME: Any = {**WEATHER, "name": "get_time", "description": "The local time in a city."}


def event_types(stream: Any) -> list[str]:
    events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events))), "numbered in order from 0"
    return [e.type for e in events]


def test_a_reply(stack: Stack) -> None:
    response = stack.openai().responses.create(model=MODEL, input="Hello from Responses", instructions="Be brief.")
    assert response.output_text == "You said: Hello from Responses"
    assert response.status == "completed" and response.model == MODEL and response.id.startswith("resp_")
    assert response.usage and response.usage.input_tokens > 0 and response.usage.output_tokens == 5, "a word a token"
    sent = stack.last_request()["body"]
    assert sent["model"] == "sonnet-deployment" and sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert stack.last_access_line()["dialect"] == "responses"


@pytest.mark.asyncio
async def test_async_create_and_stream(stack: Stack) -> None:
    client = stack.async_openai()
    response = await client.responses.create(model=MODEL, input="Hello async")
    assert response.output_text == "You said: Hello async"
    async with client.responses.stream(model=MODEL, input="Hello async stream") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert len(deltas) > 2 and "".join(deltas) == final.output_text == "You said: Hello async stream"


TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 5,  # a word a delta, as the emulator streams
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def test_stream_event_order_text(stack: Stack) -> None:
    with stack.openai().responses.stream(model=MODEL, input="Hello stream now") as stream:
        kinds = event_types(stream)
        final = stream.get_final_response()
    assert kinds == [*TEXT_EVENTS, "response.completed"]
    assert final.output_text == "You said: Hello stream now" and final.status == "completed"


def test_stream_event_order_reasoning_and_tools(stack: Stack) -> None:
    stream = stack.openai().responses.create(
        model=MODEL, input="Use get_weather for Paris", tools=[WEATHER], reasoning=LOW, stream=True
    )
    kinds = event_types(stream)
    reasoning = [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        *["response.reasoning_summary_text.delta"] * 3,
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    text = TEXT_EVENTS[2:4] + ["response.output_text.delta"] * 5 + TEXT_EVENTS[-3:]
    call_deltas = kinds.count("response.function_call_arguments.delta")
    call = [
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * call_deltas,
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    assert call_deltas > 1
    assert kinds == ["response.created", "response.in_progress", *reasoning, *text, *call, "response.completed"]


@pytest.mark.parametrize("stream", [False, True])
def test_max_output_tokens_ends_incomplete(stack: Stack, stream: bool) -> None:
    client = stack.openai()
    if stream:
        # Not responses.stream(): its final-response helper knows only response.completed.
        events = list(client.responses.create(model=MODEL, input="one two three four five six",
                                              max_output_tokens=3, stream=True))  # fmt: skip
        assert events[-1].type == "response.incomplete" and "response.completed" not in [e.type for e in events]
        response = events[-1].response
    else:
        response = client.responses.create(model=MODEL, input="one two three four five six", max_output_tokens=3)
    assert response.status == "incomplete" and response.incomplete_details
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "You said: one"


@pytest.mark.parametrize(
    "fault",
    [{"error_after": 5, "error_type": "overloaded_error"}, {"cut_after": 5}],
    ids=["error-event", "connection-cut"],
)
def test_an_upstream_failure_mid_stream_ends_with_response_failed(stack: Stack, fault: dict[str, Any]) -> None:
    stack.fault(**fault)
    stream = stack.openai().responses.create(model=MODEL, input="one two three four five six", stream=True)
    events = list(stream)
    assert events[-1].type == "response.failed", [e.type for e in events]
    assert "response.completed" not in [e.type for e in events]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error and "upstream stream" in failed.error.message
    assert [e.sequence_number for e in events] == list(range(len(events)))


def tool_loop(client: OpenAI, question: str, tool: Any, history: list[Any]) -> tuple[Any, list[Any]]:
    """One question with its tool call answered, as a stateless client runs it: every output item
    goes back as input. Returns the final response and the conversation so far."""
    items = [*history, {"role": "user", "content": question}]
    asked = client.responses.create(model=MODEL, input=items, tools=[tool], reasoning=LOW, store=False)
    items += [item.model_dump(exclude_none=True) for item in asked.output]
    call = next(item for item in asked.output if item.type == "function_call")
    assert call.name == tool["name"] and orjson.loads(call.arguments) == {"city": "example"}
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": f"{tool['name']} done"})
    answered = client.responses.create(model=MODEL, input=items, tools=[tool], reasoning=LOW, store=False)
    items += [item.model_dump(exclude_none=True) for item in answered.output]
    return answered, items


def test_reasoning_survives_several_tool_turns(stack: Stack) -> None:
    client = stack.openai()
    first, history = tool_loop(client, "Use get_weather for Paris", WEATHER, [])
    second, history = tool_loop(client, "Use get_time for Paris", TIME, history)
    assert (first.output_text, second.output_text) == ("Tool results: get_weather done", "Tool results: get_time done")
    assert stack.thinking_per_turn() == [True] * 4, "thinking on for every turn: each tool turn had its thinking"
    # The last request carried the thinking of both tool turns, restored block for block.
    turns = stack.last_request()["body"]["messages"]
    restored = [m["content"][0] for m in turns if m["role"] == "assistant" and m["content"][0]["type"] == "thinking"]
    assert len(restored) == 3 and all(b["signature"] == thinking_signature(b["thinking"]) for b in restored)
    assert "adjusted" not in stack.last_access_line()


def test_reasoning_items_reveal_nothing(stack: Stack) -> None:
    response = stack.openai().responses.create(model=MODEL, input="Use get_weather", tools=[WEATHER],
                                               reasoning=LOW)  # fmt: skip
    item = next(item for item in response.output if item.type == "reasoning")
    thought = item.summary[0].text
    sealed = item.encrypted_content or ""
    raw = base64.urlsafe_b64decode(sealed.removeprefix("fgw1."))
    for secret in (thought, thinking_signature(thought)):
        assert secret not in sealed and secret.encode() not in raw


def flip(sealed: str) -> str:
    at = len(sealed) // 2
    return sealed[:at] + ("A" if sealed[at] != "A" else "B") + sealed[at + 1 :]


@pytest.mark.parametrize(
    "change",
    [lambda s: flip(s), lambda s: None, lambda s: "fgw1." + base64.urlsafe_b64encode(os.urandom(80)).decode()],
    ids=["tampered", "no-content", "another-gateways-key"],
)
def test_a_reasoning_item_that_does_not_open_is_a_turn_without_thinking(stack: Stack, change: Any) -> None:
    client = stack.openai()
    items: list[Any] = [{"role": "user", "content": "Use get_weather for Paris"}]
    asked = client.responses.create(model=MODEL, input=items, tools=[WEATHER], reasoning=LOW)
    items += [item.model_dump(exclude_none=True) for item in asked.output]
    reasoning = next(item for item in items if item.get("type") == "reasoning")
    reasoning["encrypted_content"] = change(reasoning["encrypted_content"])
    if reasoning["encrypted_content"] is None:
        del reasoning["encrypted_content"]
    call = next(item for item in asked.output if item.type == "function_call")
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    answered = client.responses.create(model=MODEL, input=items, tools=[WEATHER], reasoning=LOW)
    assert answered.output_text == "Tool results: sunny"
    assert "thinking" not in stack.last_request()["body"]
    assert stack.last_access_line()["adjusted"] == ["thinking_off_for_tool_results"]


@pytest.mark.parametrize(
    ("extra", "param", "says"),
    [
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type", "built-in tool"),
        ({"tools": [WEATHER, {"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[1].type",
         "'code_interpreter'"),
        ({"previous_response_id": "resp_123"}, "previous_response_id", "keeps none"),
        ({"conversation": "conv_123"}, "conversation", "not served"),
        ({"background": True}, "background", "not served"),
        ({"truncation": "auto"}, "truncation", "must be 'disabled'"),
        ({"include": ["file_search_call.results"]}, "include[0]", "not served"),
        ({"max_tool_calls": 3}, "max_tool_calls", "not supported"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "keeps none"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "must be one of"),
    ],
)  # fmt: skip
def test_what_claude_cannot_serve_is_a_400_naming_it(
    stack: Stack, extra: dict[str, Any], param: str, says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        stack.openai().responses.create(**{"model": MODEL, "input": "hi", **extra})
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param and says in error["message"], error
    assert stack.recorded() == [], "refused before Foundry"


def test_stored_responses_are_not_there(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError, match="keeps no responses"):
        stack.openai().responses.retrieve("resp_abc")
    with pytest.raises(openai.NotFoundError, match="keeps no responses"):
        stack.openai().responses.delete("resp_abc")


SCHEMA: Any = {
    "type": "json_schema",
    "name": "city",
    "strict": True,
    "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
               "additionalProperties": False},
}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "upstream", "adjusted"),
    [
        (MODEL, "forced tool", ["json_schema_as_forced_tool"]),
        ("claude-structured", "output_config", None),
    ],
)
def test_text_format_json_schema(stack: Stack, model: str, upstream: str, adjusted: list[str] | None) -> None:
    response = stack.openai().responses.create(model=model, input="Which city?", text={"format": SCHEMA})
    assert orjson.loads(response.output_text) == {"city": "example"}
    sent = stack.last_request()["body"]
    assert ("output_config" in sent) == (upstream == "output_config")
    assert stack.last_access_line().get("adjusted") == adjusted


def test_images_and_pdfs(stack: Stack) -> None:
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    pdf = base64.b64encode(b"%PDF-1.4 fake").decode()
    content: Any = [
        {"type": "input_text", "text": "What is in these"},
        {"type": "input_image", "image_url": png},
        {"type": "input_image", "image_url": "https://example.com/cat.png"},
        {"type": "input_file", "filename": "report.pdf", "file_data": f"data:application/pdf;base64,{pdf}"},
    ]
    response = stack.openai().responses.create(model=MODEL, input=[{"role": "user", "content": content}])
    assert response.output_text == "You said: What is in these (with 2 images)"
    blocks = stack.last_request()["body"]["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["text", "image", "image", "document"]
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/cat.png"}, "passed on, never fetched"
    assert blocks[3]["source"]["media_type"] == "application/pdf" and blocks[3]["title"] == "report.pdf"


def test_cached_tokens_are_reported(stack: Stack) -> None:
    client = stack.openai()
    ask: Any = {"model": "claude-cached", "input": "Hello", "instructions": "A long, stable system prompt."}
    client.responses.create(**ask)
    again = client.responses.create(**ask)
    assert again.usage and again.usage.input_tokens_details.cached_tokens > 0


def test_errors_are_spelled_as_openai(stack: Stack) -> None:
    response = httpx.post(stack.base + "/v1/responses", json={"model": "gpt-4o", "input": "hi"})
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def replicas(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two more gateways sharing one key file, and one with no key file (a key of its own)."""
    work = tmp_path_factory.mktemp("replicas")
    keys = work / "reasoning-keys"
    keys.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    keys.chmod(0o600)
    config: dict[str, Any] = {
        "upstreams": [api_key_upstream("foundry", stack.foundry)],
        "routes": [route(MODEL, "foundry", "sonnet-deployment")],
    }
    shared = {**config, "responses": {"reasoning_keys_file": str(keys)}}
    started = [
        start_gateway(c, env={"FOUNDRY_TEST_KEY": API_KEY}, log_dir=work / name)
        for name, c in (("a", shared), ("b", shared), ("own", config))
    ]
    try:
        yield {name: base for name, (_, base, _) in zip(("a", "b", "own"), started, strict=True)}
    finally:
        for proc, _, _ in started:
            proc.stop()


@pytest.mark.parametrize(("second", "thinking"), [("b", True), ("own", False)])
def test_the_next_turn_on_another_replica(stack: Stack, replicas: dict[str, str], second: str, thinking: bool) -> None:
    first = OpenAI(base_url=replicas["a"] + "/v1", api_key=CLIENT_KEY, max_retries=0)
    items: list[Any] = [{"role": "user", "content": "Use get_weather for Paris"}]
    asked = first.responses.create(model=MODEL, input=items, tools=[WEATHER], reasoning=LOW)
    items += [item.model_dump(exclude_none=True) for item in asked.output]
    call = next(item for item in asked.output if item.type == "function_call")
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    client = OpenAI(base_url=replicas[second] + "/v1", api_key=CLIENT_KEY, max_retries=0)
    answered = client.responses.create(model=MODEL, input=items, tools=[WEATHER], reasoning=LOW)
    assert answered.output_text == "Tool results: sunny"
    assert ("thinking" in emulator_control(stack.foundry, "requests")[-1]["body"]) is thinking
