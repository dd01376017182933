"""The OpenAI Agents SDK (pinned in the dev extra) through the gateway, on both its models: a tool
loop with reasoning on, plain and streamed.

With thinking on, Claude refuses a tool turn without its signed thinking. On the Chat
Completions model the SDK cannot send it back, and the gateway leaves thinking out of that turn.
On its default model, the Responses one, the SDK sends the reasoning items back and the gateway
restores the thinking they seal: thinking stays on for every turn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from openai.types.shared import Reasoning

from tests.integration.conftest import CLIENT_KEY, Stack

MODEL = "claude-sonnet-4-5"


@pytest.fixture(autouse=True)
def no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)  # the SDK would export its traces to OpenAI
    yield


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny, 21 C in {city}"


@function_tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"10:00 in {city}"


def agent(stack: Stack, responses: bool = False) -> Agent[Any]:
    client = AsyncOpenAI(base_url=stack.base + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)
    kind = OpenAIResponsesModel if responses else OpenAIChatCompletionsModel
    return Agent(
        name="weather",
        instructions="Answer weather questions with the get_weather tool.",
        tools=[get_weather, get_time],
        model=kind(model=MODEL, openai_client=client),
        model_settings=ModelSettings(reasoning=Reasoning(effort="low")),
    )


@pytest.mark.asyncio
async def test_a_tool_loop_with_reasoning(stack: Stack) -> None:
    result = await Runner.run(agent(stack), "call get_weather for Paris")
    assert result.final_output == "Tool results: sunny, 21 C in example"
    assert stack.thinking_per_turn() == [True, False], "thinking on the question, off on the tool results"
    line = stack.last_access_line()
    # The SDK marks its tools strict, which Foundry's Azure-hosted Claude cannot enforce: said too.
    assert line["adjusted"] == ["thinking_off_for_tool_results", "strict_not_enforced"]


@pytest.mark.asyncio
async def test_a_streamed_tool_loop_with_reasoning(stack: Stack) -> None:
    result = Runner.run_streamed(agent(stack), "call get_weather for Lyon")
    kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert result.final_output == "Tool results: sunny, 21 C in example"
    assert stack.thinking_per_turn() == [True, False]


@pytest.mark.asyncio
async def test_the_responses_model_keeps_thinking_on_over_several_turns(stack: Stack) -> None:
    first = await Runner.run(agent(stack, responses=True), "call get_weather for Paris")
    assert first.final_output == "Tool results: sunny, 21 C in example"
    # The next question goes with the whole conversation so far, reasoning items included.
    second = await Runner.run(agent(stack, responses=True), [*first.to_input_list(), {"role": "user",
                              "content": "and now call get_time for Paris"}])  # fmt: skip
    assert second.final_output == "Tool results: 10:00 in example"
    assert stack.thinking_per_turn() == [True, True, True, True], "the sealed thinking came back each turn"
    # Nothing adjusted but what Foundry cannot do: the SDK's strict tools.
    assert stack.last_access_line()["adjusted"] == ["strict_not_enforced"]


@pytest.mark.asyncio
async def test_the_responses_model_streamed(stack: Stack) -> None:
    result = Runner.run_streamed(agent(stack, responses=True), "call get_weather for Lyon")
    kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert result.final_output == "Tool results: sunny, 21 C in example"
    assert stack.thinking_per_turn() == [True, True]
