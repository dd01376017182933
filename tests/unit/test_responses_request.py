"""OpenAI Responses request -> Anthropic Messages request: table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import GatewayError
from gateway.reasoning_seal import ReasoningSeal
from gateway.translate.openai_common import JSON_TOOL_NAME
from gateway.translate.responses_request import responses_to_messages

SEAL = ReasoningSeal()
THOUGHT = {"type": "thinking", "thinking": "Let me think.", "signature": "sig_1"}
HI = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
WEATHER_CLAUDE = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CALL = {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
OUTPUT = {"type": "function_call_output", "call_id": "toolu_1", "output": "sunny"}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}


def translate(body: dict[str, Any], **options: Any) -> Any:
    return responses_to_messages({"model": "m", **body}, max_tokens_default=4096, open_reasoning=SEAL.open, **options)


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("a string input", {"input": "Hi"}, {"messages": HI, "max_tokens": 4096}),
    (
        "instructions and system/developer messages become the system prompt, in order",
        {"instructions": "Be brief.", "input": [{"role": "developer", "content": "Use metric."},
                                                 {"role": "user", "content": "Hi"}]},
        {"system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use metric."}],
         "messages": HI, "max_tokens": 4096},
    ),
    (
        "sampling, max_output_tokens and the user",
        {"input": "Hi", "temperature": 0.5, "top_p": 0.9, "max_output_tokens": 100, "safety_identifier": "u1"},
        {"messages": HI, "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "metadata": {"user_id": "u1"}},
    ),
    (
        "a tool turn: call and output as tool_use and tool_result, the result first in its turn",
        {"input": [{"role": "user", "content": "Weather?"}, CALL, OUTPUT,
                   {"role": "user", "content": [{"type": "input_text", "text": "Thanks"}]}],
         "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                      {"role": "assistant", "content": [TOOL_USE]},
                      {"role": "user", "content": [TOOL_RESULT, {"type": "text", "text": "Thanks"}]}],
         "max_tokens": 4096, "tools": [WEATHER_CLAUDE],
         "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
    ),
    (
        "a reasoning item sent back opens into the thinking that leads its turn",
        {"input": [{"role": "user", "content": "Weather?"},
                   {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": SEAL.seal(THOUGHT)},
                   {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me."}]},
                   CALL, OUTPUT],
         "tools": [WEATHER], "reasoning": {"effort": "low"}, "max_output_tokens": 2000},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                      {"role": "assistant", "content": [THOUGHT, {"type": "text", "text": "Let me."}, TOOL_USE]},
                      {"role": "user", "content": [TOOL_RESULT]}],
         "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024}, "tools": [WEATHER_CLAUDE]},
    ),
    (
        "reasoning effort none: no thinking",
        {"input": "Hi", "reasoning": {"effort": "none", "summary": "auto"}},
        {"messages": HI, "max_tokens": 4096},
    ),
    (
        "function call output as content parts",
        {"input": [{"role": "user", "content": "Weather?"}, CALL,
                   {**OUTPUT, "output": [{"type": "input_text", "text": "sunny"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                      {"role": "assistant", "content": [TOOL_USE]},
                      {"role": "user", "content": [{**TOOL_RESULT, "content": [{"type": "text", "text": "sunny"}]}]}],
         "max_tokens": 4096},
    ),
    (
        "text.format json_schema without native structured outputs: a forced tool",
        {"input": "Hi", "text": {"format": {"type": "json_schema", "name": "city", "strict": True,
                                            "schema": {"type": "object"}}}},
        {"messages": HI, "max_tokens": 4096,
         "tools": [{"name": JSON_TOOL_NAME, "input_schema": {"type": "object"},
                    "description": "Give the answer as JSON matching the schema city"}],
         "tool_choice": {"type": "tool", "name": JSON_TOOL_NAME}},
    ),
    (
        "accepted without effect: store, metadata, include of encrypted reasoning, truncation disabled",
        {"input": "Hi", "store": False, "metadata": {"a": "b"}, "include": ["reasoning.encrypted_content"],
         "truncation": "disabled", "background": False},
        {"messages": HI, "max_tokens": 4096},
    ),
    (
        "a namespace's functions, flattened; a call sent back under its namespace, named the same",
        {"input": [{"role": "user", "content": "Go"}, {**CALL, "name": "spawn", "namespace": "agents"},
                   OUTPUT],
         "tools": [{"type": "namespace", "name": "agents", "description": "Sub-agents",
                    "tools": [{**WEATHER, "name": "spawn"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Go"}]},
                      {"role": "assistant", "content": [{**TOOL_USE, "name": "agents__spawn"}]},
                      {"role": "user", "content": [TOOL_RESULT]}],
         "max_tokens": 4096, "tools": [{**WEATHER_CLAUDE, "name": "agents__spawn"}]},
    ),
    (
        "OpenAI's web search as Claude's, its domains and location kept; a search sent back is left out",
        {"input": [{"role": "user", "content": "Hi"},
                   {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}}],
         "tools": [{"type": "web_search", "search_context_size": "low", "filters": {"allowed_domains": ["a.example"]},
                    "user_location": {"type": "approximate", "city": "Oslo", "country": "NO"}}]},
        {"messages": HI, "max_tokens": 4096,
         "tools": [{"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["a.example"],
                    "user_location": {"type": "approximate", "city": "Oslo", "country": "NO"}}]},
    ),
]  # fmt: skip


def test_what_the_translation_adjusted_is_said() -> None:
    namespace = {"type": "namespace", "name": "a", "description": "", "tools": [{**WEATHER, "name": "b"}]}
    translated = translate({"input": "Hi", "tools": [{"type": "web_search", "external_web_access": False}, namespace],
                            "client_metadata": {"x": "y"}})  # fmt: skip
    assert translated.adjusted == ("web_search_external_access", "client_metadata_ignored")
    assert translated.namespaced == {"a__b": ("a", "b")}
    chosen = translate({"input": "Hi", "tools": [namespace], "tool_choice": {"type": "function", "name": "b",
                                                                            "namespace": "a"}})  # fmt: skip
    assert chosen.body["tool_choice"] == {"type": "tool", "name": "a__b"}


@pytest.mark.parametrize(("name", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_translation(name: str, body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert translate(body).body == expected


def test_native_structured_outputs_where_served() -> None:
    fmt = {"type": "json_schema", "name": "city", "strict": True, "schema": {"type": "object"}}
    translated = translate({"input": "Hi", "text": {"format": fmt}}, structured_outputs=True)
    assert translated.body["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    assert translated.json_tool is None and translated.adjusted == ()


UNOPENABLE = ["", "fgw1.AAAA", "fgw1." + "A" * 80, None, 42, ReasoningSeal().seal(THOUGHT)]


@pytest.mark.parametrize("sealed", UNOPENABLE, ids=["empty", "short", "garbage", "none", "number", "other-key"])
def test_a_reasoning_item_that_does_not_open_leaves_thinking_off_for_the_tool_turn(sealed: Any) -> None:
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": sealed}
    translated = translate(
        {"input": [{"role": "user", "content": "Weather?"}, reasoning, CALL, OUTPUT], "reasoning": {"effort": "low"}}
    )
    assert "thinking" not in translated.body
    assert translated.body["messages"][1]["content"] == [TOOL_USE]
    assert translated.adjusted == ("thinking_off_for_tool_results",)


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"input": "Hi", "tools": [{**WEATHER, "name": "a__b"},
                               {"type": "namespace", "name": "a", "tools": [{**WEATHER, "name": "b"}]}]}, "tools"),
    ({"input": "Hi", "tools": [{"type": "namespace", "name": "a", "tools": [{"type": "custom", "name": "b"}]}]},
     "tools[0].tools[0].type"),
    ({"input": "Hi", "tools": [{"type": "file_search"}]}, "tools[0].type"),
    ({"input": "Hi", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0].type"),
    ({"input": "Hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"input": "Hi", "conversation": {"id": "conv_1"}}, "conversation"),
    ({"input": "Hi", "background": True}, "background"),
    ({"input": "Hi", "truncation": "auto"}, "truncation"),
    ({"input": "Hi", "include": ["message.output_text.logprobs"]}, "include[0]"),
    ({"input": "Hi", "top_logprobs": 2}, "top_logprobs"),
    ({"input": "Hi", "frobnicate": 1}, "frobnicate"),
    ({"input": 42}, "input"),
    ({"input": []}, "input"),
    ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:text/plain;base64,eA=="}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "data:text/plain;base64,eA=="}]}]},
     "input[0].content[0].file_data"),
    ({"input": [CALL | {"arguments": "{not json"}]}, "input[0].arguments"),
    ({"input": "Hi", "tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice"),
    ({"input": "Hi", "tool_choice": "required"}, "tool_choice"),
    ({"input": "Hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"input": "Hi", "text": {"format": {"type": "json_schema", "schema": {"type": "array"}}}}, "text.format.schema"),
    ({"input": "Hi", "text": {"format": {"type": "json_object"}}, "reasoning": {"effort": "high"}}, "text.format"),
    ({"input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "Hi", "max_output_tokens": 1000, "reasoning": {"effort": "low"}}, "max_output_tokens"),
    ({"input": "Hi", "temperature": 1.5}, "temperature"),
    ({"input": "Hi", "stream": "yes"}, "stream"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param"), REFUSED, ids=[r[1] + "-" + str(i) for i, r in enumerate(REFUSED)])
def test_refused_with_a_400_naming_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        translate(body)
    assert caught.value.status == 400 and caught.value.param == param, caught.value.message


def test_the_route_default_leaves_room_for_thinking() -> None:
    translated = responses_to_messages(
        {"input": "Hi", "reasoning": {"effort": "high"}}, max_tokens_default=1000, open_reasoning=SEAL.open
    )
    assert translated.body["max_tokens"] == 4096 + 1000


def test_echo_repeats_the_clients_settings() -> None:
    echo = translate({"input": "Hi", "tools": [WEATHER], "tool_choice": "auto", "temperature": 0.3}).echo
    assert echo["tools"] == [WEATHER] and echo["tool_choice"] == "auto" and echo["temperature"] == 0.3
    assert echo["max_output_tokens"] == 4096 and echo["text"] == {"format": {"type": "text"}}


def test_what_openai_accepts_without_a_claude_meaning_is_accepted_and_said() -> None:
    # Codex CLI sends client_metadata on every request, and has no setting to leave it out.
    metadata = {"installation_id": "i-1", "session_id": "s-1", "turn_id": "t-1"}
    body = {"model": "m", "input": "hi", "client_metadata": metadata, "prompt_cache_options": {"ttl": "5m"}}
    translated = translate(body)
    assert "client_metadata" not in translated.body and "prompt_cache_options" not in translated.body
    assert translated.adjusted == ("client_metadata_ignored", "prompt_cache_options_ignored")
    with pytest.raises(GatewayError, match="Unrecognized request argument supplied: 'client_metadatum'"):
        translate({"model": "m", "input": "hi", "client_metadatum": {}})
