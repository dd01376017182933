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


SCENARIOS = {
    "llamaindex-structured-predict": llamaindex_structured_predict,
    "dspy-json-adapter": dspy_json_adapter,
    "strands-tools": strands_tools,
    "haystack-tools": haystack_tools,
    "smolagents-tools": smolagents_tools,
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
