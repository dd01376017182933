"""The OpenAI Agents SDK (pinned in the dev extra) on the Chat Completions model, through the
gateway: a tool loop with reasoning on over several turns, plain and streamed. With thinking on,
Claude refuses a tool turn without its signed thinking, which the SDK cannot send back: the
gateway leaves thinking out of that turn, and the loop completes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
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


def agent(stack: Stack) -> Agent[Any]:
    client = AsyncOpenAI(base_url=stack.base + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)
    return Agent(
        name="weather",
        instructions="Answer weather questions with the get_weather tool.",
        tools=[get_weather],
        model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
        model_settings=ModelSettings(reasoning=Reasoning(effort="low")),
    )


def thinking_per_turn(stack: Stack) -> list[bool]:
    return ["thinking" in request["body"] for request in stack.recorded()]


@pytest.mark.asyncio
async def test_a_tool_loop_with_reasoning(stack: Stack) -> None:
    result = await Runner.run(agent(stack), "call get_weather for Paris")
    assert result.final_output == "Tool results: sunny, 21 C in example"
    assert thinking_per_turn(stack) == [True, False], "thinking on the question, off on the tool results"
    line = stack.last_access_line()
    # The SDK marks its tools strict, which Foundry's Azure-hosted Claude cannot enforce: said too.
    assert line["adjusted"] == ["thinking_off_for_tool_results", "strict_not_enforced"]


@pytest.mark.asyncio
async def test_a_streamed_tool_loop_with_reasoning(stack: Stack) -> None:
    result = Runner.run_streamed(agent(stack), "call get_weather for Lyon")
    kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert result.final_output == "Tool results: sunny, 21 C in example"
    assert thinking_per_turn(stack) == [True, False]
