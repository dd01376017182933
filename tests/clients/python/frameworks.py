"""One framework scenario through the gateway, run in the frameworks' own venv (make py-clients):
`frameworks.py SCENARIO BASE_URL MODEL` prints {"ok": ...} or {"error": ..., "status": ...}.

What each scenario runs is the snippet docs/clients.md gives for that framework."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel


class City(BaseModel):
    city: str
    population: int


def llamaindex_structured_predict(base: str, key: str, model: str) -> dict[str, Any]:
    from llama_index.core.prompts import PromptTemplate
    from llama_index.llms.anthropic import Anthropic

    llm = Anthropic(model=model, base_url=base, api_key=key, max_retries=0)
    city = llm.structured_predict(City, PromptTemplate("Which city is best, and how many live there?"))
    return city.model_dump()


def dspy_json_adapter(base: str, key: str, model: str) -> dict[str, Any]:
    import dspy

    lm = dspy.LM(f"anthropic/{model}", api_base=f"{base}/v1", api_key=key, num_retries=0, cache=False)

    class Best(dspy.Signature):  # type: ignore[misc]
        """Name the best city and its population."""

        question: str = dspy.InputField()
        city: str = dspy.OutputField()
        population: int = dspy.OutputField()

    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        answer = dspy.Predict(Best)(question="Which city is best?")
    return {"city": answer.city, "population": answer.population}


def get_weather(city: str) -> str:
    """Weather for a city.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


def strands_tools(base: str, key: str, model: str) -> dict[str, Any]:
    from strands import Agent, tool
    from strands.models.anthropic import AnthropicModel

    llm = AnthropicModel(client_args={"base_url": base, "api_key": key}, model_id=model, max_tokens=1000)
    agent = Agent(model=llm, tools=[tool(get_weather)], callback_handler=None)
    return {"text": str(agent("call get_weather")).strip()}


def haystack_tools(base: str, key: str, model: str) -> dict[str, Any]:
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage
    from haystack.tools import create_tool_from_function
    from haystack.utils import Secret

    weather = create_tool_from_function(get_weather)
    llm = OpenAIChatGenerator(api_key=Secret.from_token(key), model=model, api_base_url=f"{base}/v1", tools=[weather])
    messages = [ChatMessage.from_user("call get_weather")]
    reply = llm.run(messages=messages)["replies"][0]
    results = [ChatMessage.from_tool(weather.invoke(**call.arguments), origin=call) for call in reply.tool_calls]
    answer = llm.run(messages=[*messages, reply, *results])["replies"][0]
    return {"calls": [c.tool_name for c in reply.tool_calls], "text": answer.text}


def smolagents_tools(base: str, key: str, model: str) -> dict[str, Any]:
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    llm = OpenAIServerModel(model_id=model, api_base=f"{base}/v1", api_key=key)
    agent = ToolCallingAgent(tools=[tool(get_weather)], model=llm, max_steps=3, verbosity_level=0)
    return {"text": str(agent.run("call get_weather"))}


def adk_tools(base: str, key: str, model: str) -> dict[str, Any]:
    """Google ADK's agent, its model through LiteLLM on the native dialect."""
    import asyncio

    from google.adk.agents import Agent
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    agent = Agent(
        name="weather",
        model=LiteLlm(model=f"anthropic/{model}", api_base=base, api_key=key),
        instruction="Answer briefly.",
        tools=[get_weather],
    )
    runner = InMemoryRunner(agent=agent, app_name="gateway")

    async def ask() -> str | None:
        session = await runner.session_service.create_session(app_name="gateway", user_id="u")
        asked = types.Content(role="user", parts=[types.Part(text="call get_weather")])
        answer = None
        async for event in runner.run_async(user_id="u", session_id=session.id, new_message=asked):
            if event.is_final_response() and event.content and event.content.parts:
                answer = event.content.parts[0].text
        return answer

    return {"text": asyncio.run(ask())}


def crewai_tools(base: str, key: str, model: str) -> dict[str, Any]:
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool

    llm = LLM(model=f"anthropic/{model}", base_url=base, api_key=key)
    weather = tool("get_weather")(get_weather)
    agent = Agent(role="weather", goal="answer", backstory="A forecaster.", tools=[weather], llm=llm, max_iter=3)
    task = Task(description="call get_weather", expected_output="the weather", agent=agent)
    return {"text": Crew(agents=[agent], tasks=[task]).kickoff().raw}


def semantic_kernel_tools(base: str, key: str, model: str) -> dict[str, Any]:
    import asyncio

    from openai import AsyncOpenAI
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior
    from semantic_kernel.connectors.ai.open_ai import OpenAIChatCompletion, OpenAIChatPromptExecutionSettings
    from semantic_kernel.functions import KernelArguments, kernel_function

    class Weather:
        @kernel_function(name="get_weather", description="Weather for a city")  # type: ignore[untyped-decorator]
        def get_weather(self, city: str) -> str:
            return get_weather(city)

    kernel = Kernel()
    client = AsyncOpenAI(base_url=f"{base}/v1", api_key=key)
    kernel.add_service(OpenAIChatCompletion(ai_model_id=model, async_client=client))
    kernel.add_plugin(Weather(), plugin_name="weather")
    settings = OpenAIChatPromptExecutionSettings(function_choice_behavior=FunctionChoiceBehavior.Auto())
    answer = asyncio.run(kernel.invoke_prompt("call weather-get_weather", arguments=KernelArguments(settings=settings)))
    return {"text": str(answer)}


SCENARIOS = {
    "llamaindex-structured-predict": llamaindex_structured_predict,
    "dspy-json-adapter": dspy_json_adapter,
    "strands-tools": strands_tools,
    "haystack-tools": haystack_tools,
    "smolagents-tools": smolagents_tools,
    "adk-tools": adk_tools,
    "crewai-tools": crewai_tools,
    "semantic-kernel-tools": semantic_kernel_tools,
}


def main() -> None:
    scenario, base, key, model = sys.argv[1:5]
    try:
        out: dict[str, Any] = {"ok": SCENARIOS[scenario](base, key, model)}
    except Exception as exc:  # the scenario's failure, reported to the test as data
        out = {"error": f"{type(exc).__name__}: {exc}", "status": getattr(exc, "status_code", None)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
