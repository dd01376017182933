"""LangChain's two chat models for Claude, pinned in pyproject's dev extra, pointed at the gateway:
ChatOpenAI through the Chat Completions dialect and ChatAnthropic through the native one. Each runs
what LangChain users run first: a reply, a stream, a tool loop (with reasoning on) and structured
output into a pydantic model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.integration.conftest import CLIENT_KEY, Stack


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class City(BaseModel):
    city: str


def chat_openai(stack: Stack, model: str = "claude-sonnet-4-5", **extra: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url=stack.base + "/v1", api_key=CLIENT_KEY, model=model, max_retries=0, **extra)


def chat_anthropic(stack: Stack, model: str = "claude-sonnet-4-5", **extra: Any) -> ChatAnthropic:
    return ChatAnthropic(base_url=stack.base, api_key=CLIENT_KEY, model=model, max_retries=0, **extra)


MODELS = {"openai": chat_openai, "anthropic": chat_anthropic}


@pytest.mark.parametrize("provider", MODELS)
def test_reply_and_stream(stack: Stack, provider: str) -> None:
    llm = MODELS[provider](stack)
    reply = llm.invoke("Hello from LangChain")
    assert reply.text == "You said: Hello from LangChain"
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0
    chunks = list(llm.stream("Hello streaming LangChain"))
    assert len(chunks) > 2, "the reply arrived in pieces"
    assert "".join(c.text for c in chunks) == "You said: Hello streaming LangChain"


def tool_loop(llm: BaseChatModel) -> tuple[AIMessage, AIMessage]:
    """LangChain's tool loop by hand, as its agents run it: ask, run the tool, send the result back."""
    with_tools = llm.bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("Use get_weather for Paris")]
    asked = with_tools.invoke(messages)
    assert isinstance(asked, AIMessage)
    messages.append(asked)
    messages += [ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]) for call in asked.tool_calls]
    answered = with_tools.invoke(messages)
    assert isinstance(answered, AIMessage)
    return asked, answered


@pytest.mark.parametrize(
    ("provider", "settings"),
    [
        ("openai", {}),
        ("openai", {"reasoning_effort": "low"}),  # the turn with tool results goes without thinking
        ("anthropic", {}),
        ("anthropic", {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048}),
    ],
    ids=["openai", "openai-reasoning", "anthropic", "anthropic-thinking"],
)
def test_tool_loop(stack: Stack, provider: str, settings: dict[str, Any]) -> None:
    asked, answered = tool_loop(MODELS[provider](stack, **settings))
    assert [(c["name"], c["args"]) for c in asked.tool_calls] == [("get_weather", {"city": "example"})]
    assert answered.text == "Tool results: sunny in example"
    if "thinking" in settings:  # ChatAnthropic sent the signed thinking back, and Claude took it
        first = stack.recorded()[0]["body"]
        assert stack.last_request()["body"]["messages"][1]["content"][0]["type"] == "thinking"
        assert first["thinking"]["type"] == "enabled"


def asked_for(body: dict[str, Any]) -> str:
    """How the request that reached Foundry asked for the object."""
    if body.get("output_config", {}).get("format"):
        return "output_config.format"
    return f"forced tool {body['tool_choice']['name']}"


@pytest.mark.parametrize(
    ("provider", "model", "method", "upstream"),
    [
        # Chat Completions' json_schema: a forced tool where the upstream has no structured outputs
        # (the access log says so), the native feature where it has.
        ("openai", "claude-sonnet-4-5", "json_schema", "forced tool json_response"),
        ("openai", "claude-structured", "json_schema", "output_config.format"),
        # ChatAnthropic's own choices, relayed as sent.
        ("anthropic", "claude-sonnet-4-5", "function_calling", "forced tool City"),
        ("anthropic", "claude-structured", "json_schema", "output_config.format"),
        # ... and where the deployments lack native structured outputs, the gateway emulates them.
        ("anthropic", "claude-sonnet-4-5", "json_schema", "forced tool json_response"),
    ],
)
def test_structured_output(stack: Stack, provider: str, model: str, method: str, upstream: str) -> None:
    got = MODELS[provider](stack, model).with_structured_output(City, method=method).invoke("Which city is best?")
    assert got == City(city="example")
    assert asked_for(stack.last_request()["body"]) == upstream
