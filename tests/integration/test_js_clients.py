"""The JavaScript clients people run, pinned (tests/clients/js/package.json and its lock), each
driven through the gateway to the Foundry emulator by `node tests/clients/js/clients.mjs <scenario>`.
Each check is on what the client got: text, parsed tool arguments, the object."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import orjson
import pytest

from devtools.harness import ROOT
from tests.integration.conftest import Stack

JS = ROOT / "tests" / "clients" / "js"


def run(stack: Stack, scenario: str, model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    assert shutil.which("node") and (JS / "node_modules").is_dir(), "make tools installs the JS clients (npm ci)"
    done = subprocess.run(
        ["node", "clients.mjs", scenario],
        cwd=JS,
        env={**os.environ, "BASE_URL": stack.base, "MODEL": model, "AI_SDK_LOG_WARNINGS": "false"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


TEXT = [
    ("openai-text", "You said: Hello from JavaScript"),
    ("openai-stream", "You said: Hello from JavaScript"),
    ("anthropic-text", "You said: Hello from JavaScript"),
    ("anthropic-stream", "You said: Hello from JavaScript"),
    ("ai-compatible-text", "You said: Hello from the AI SDK"),
    ("ai-compatible-stream", "You said: Hello streaming AI SDK"),
    ("ai-anthropic-text", "You said: Hello from the AI SDK's Anthropic provider"),
    ("ai-anthropic-stream", "You said: Hello streaming Anthropic provider"),
    ("openai-responses", "You said: Hello from JavaScript"),
    ("ai-openai-text", "You said: Hello from the AI SDK's OpenAI provider"),
    ("ai-openai-stream", "You said: Hello streaming OpenAI provider"),
]


@pytest.mark.parametrize(("scenario", "text"), TEXT, ids=[t[0] for t in TEXT])
def test_text_and_streams(stack: Stack, scenario: str, text: str) -> None:
    got = run(stack, scenario)["ok"]
    assert got["text"] == text
    assert got.get("model", "claude-sonnet-4-5") == "claude-sonnet-4-5", "the name the client sent"


@pytest.mark.parametrize("scenario", ["openai-tools", "anthropic-tools"])
def test_tool_calls_arrive_parsed(stack: Stack, scenario: str) -> None:
    got = run(stack, scenario)["ok"]
    assert got["name"] == "get_weather" and got["args"] == {"city": "example"}
    assert got.get("finish", got.get("stop")) in ("tool_calls", "tool_use")


def test_the_openai_sdks_responses_stream(stack: Stack) -> None:
    got = run(stack, "openai-responses-stream")["ok"]
    assert got == {"text": "You said: Hello from JavaScript", "model": "claude-sonnet-4-5",
                   "first": "response.created", "last": "response.completed"}  # fmt: skip


@pytest.mark.parametrize("scenario", ["ai-compatible-tools", "ai-anthropic-tools"])
def test_the_ai_sdk_runs_a_tool_loop(stack: Stack, scenario: str) -> None:
    got = run(stack, scenario)["ok"]
    assert got["calls"] == [{"name": "get_weather", "args": {"city": "example"}}]
    assert got["text"] == "Tool results: sunny in example", "the tool's result went back and was answered"


@pytest.mark.parametrize(
    ("scenario", "model"),
    [
        ("ai-compatible-object", "claude-sonnet-4-5"),  # json_schema through the forced tool
        ("ai-compatible-object", "claude-structured"),  # json_schema as native output_config.format
        ("ai-anthropic-object", "claude-structured"),  # the provider's own output_config.format, relayed
        ("ai-anthropic-object", "claude-sonnet-4-5"),  # ... and emulated where the deployments lack it
        ("ai-openai-object", "claude-sonnet-4-5"),  # Responses text.format through the forced tool
        ("ai-openai-object", "claude-structured"),  # ... and as native output_config.format
    ],
)
def test_the_ai_sdk_generates_objects(stack: Stack, scenario: str, model: str) -> None:
    assert run(stack, scenario, model)["ok"]["object"] == {"city": "example"}


def test_native_object_generation_is_emulated_where_the_deployments_lack_it(stack: Stack) -> None:
    assert run(stack, "ai-anthropic-object")["ok"]["object"] == {"city": "example"}
    sent = stack.last_request()["body"]
    assert "format" not in sent.get("output_config", {}) and sent["tool_choice"]["name"] == "json_response"
    assert "structured_outputs_emulated" in stack.last_access_line()["adjusted"]


@pytest.mark.parametrize(
    ("scenario", "thinking"),
    [
        # Chat Completions cannot carry thinking back: the tool-result turn goes without it.
        ("ai-compatible-reasoning-tools", [True, False]),
        # The Anthropic provider sends the signed thinking back itself.
        ("ai-anthropic-reasoning-tools", [True, True]),
        # The Responses provider sends the reasoning items back, and the gateway opens them.
        ("ai-openai-reasoning-tools", [True, True]),
    ],
)
def test_the_ai_sdk_tool_loop_with_reasoning(stack: Stack, scenario: str, thinking: list[bool]) -> None:
    got = run(stack, scenario)["ok"]
    assert got["calls"] == [{"name": "get_weather", "args": {"city": "example"}}]
    assert got["text"] == "Tool results: sunny in example"
    assert ["thinking" in r["body"] for r in stack.recorded()] == thinking


def test_the_responses_provider_with_stored_items_is_told_to_send_them(stack: Stack) -> None:
    """Its default (store: true) refers to earlier output items by id; the gateway keeps none."""
    got = run(stack, "ai-openai-tools")
    assert got["status"] == 400 and "providerOptions.openai.store = false" in got["error"]


def test_the_agents_sdk_for_javascript_runs_a_tool_loop(stack: Stack) -> None:
    assert run(stack, "agents-js-tools")["ok"]["text"] == "Tool results: sunny in example"
    sent = stack.last_request()["body"]
    assert sent["messages"][-1]["content"][0]["type"] == "tool_result"


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-sonnet-4-6"], ids=["emulated", "native"])
def test_langchain_js_structured_output_on_the_native_dialect(stack: Stack, model: str) -> None:
    assert run(stack, "langchain-js-anthropic-object", model)["ok"]["object"] == {"city": "example"}
    native = "format" in stack.last_request()["body"].get("output_config", {})
    assert native is (model == "claude-sonnet-4-6")
    assert ("structured_outputs_emulated" in stack.last_access_line().get("adjusted", ())) is not native


def test_langchain_js_tool_calls_on_chat_completions(stack: Stack) -> None:
    assert run(stack, "langchain-js-openai-tools")["ok"]["calls"] == [{"name": "get_weather",
                                                                       "args": {"city": "example"}}]  # fmt: skip


def test_mastra_runs_a_tool_loop(stack: Stack) -> None:
    # Mastra joins its steps' text: the first step's words before the call, then the answer to its result.
    assert run(stack, "mastra-tools")["ok"]["text"] == "Let me use a tool.Tool results: sunny in example"
    assert stack.last_request()["body"]["messages"][-1]["content"][0]["type"] == "tool_result"
