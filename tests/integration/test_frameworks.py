"""Python frameworks' structured outputs on the native dialect (tests/clients/python, their own venv):
LlamaIndex's structured_predict and DSPy's JSON adapter send output_config.format. Where the
route's deployments have native structured outputs it is relayed; where they lack it (Azure-hosted,
as the emulator's default resource refuses it) the gateway emulates it, and each framework parses
the object it asked for either way."""

from __future__ import annotations

import os
import subprocess

import jsonschema
import orjson
import pytest

from devtools.harness import ROOT
from tests.integration.conftest import CLIENT_KEY, Stack

PYTHON = ROOT / "tests" / "clients" / "python" / ".venv" / "bin" / "python"
SCRIPT = ROOT / "tests" / "clients" / "python" / "frameworks.py"


def run(stack: Stack, scenario: str, model: str) -> dict[str, object]:
    assert PYTHON.exists(), "make tools installs the Python frameworks (make py-clients)"
    # No telemetry from CrewAI, and LiteLLM's bundled price list instead of a fetch from GitHub.
    quiet = {"CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [str(PYTHON), str(SCRIPT), scenario, stack.base, CLIENT_KEY, model],
        env={**os.environ, **quiet},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(orjson.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("scenario", ["llamaindex-structured-predict", "dspy-json-adapter"])
@pytest.mark.parametrize(("model", "emulated"), [("claude-sonnet-4-5", True), ("claude-sonnet-4-6", False)],
                         ids=["azure-hosted", "anthropic-hosted"])  # fmt: skip
def test_native_structured_outputs_from_frameworks(stack: Stack, scenario: str, model: str, emulated: bool) -> None:
    got = run(stack, scenario, model)
    assert got.get("ok") == {"city": "example", "population": 1}, got
    sent = stack.last_request()["body"]
    schema = sent["tools"][-1]["input_schema"] if emulated else sent["output_config"]["format"]["schema"]
    jsonschema.validate(got["ok"], schema)
    assert ("format" in sent.get("output_config", {})) is not emulated
    assert ("structured_outputs_emulated" in stack.last_access_line().get("adjusted", ())) is emulated


TOOL_LOOPS = [
    # Strands on the native dialect: its agent loop calls the tool and answers with its result.
    ("strands-tools", {"text": "Tool results: sunny in example"}),
    # Haystack's chat generator on Chat Completions, the tool's result sent back as a tool message.
    ("haystack-tools", {"calls": ["get_weather"], "text": "Tool results: sunny in example"}),
    # Google ADK through LiteLLM on the native dialect (ADK wraps a tool's result in {"result": ...}).
    ("adk-tools", {"text": 'Tool results: {"result": "sunny in example"}'}),
    # CrewAI's agent through its Anthropic provider.
    ("crewai-tools", {"text": "Tool results: sunny in example"}),
    # Semantic Kernel's OpenAI connector, automatic function calling on Chat Completions.
    ("semantic-kernel-tools", {"text": "Tool results: sunny in example"}),
]


@pytest.mark.parametrize(("scenario", "expected"), TOOL_LOOPS, ids=[t[0] for t in TOOL_LOOPS])
def test_frameworks_run_a_tool_loop(stack: Stack, scenario: str, expected: dict[str, object]) -> None:
    assert run(stack, scenario, "claude-sonnet-4-5") == {"ok": expected}
    answered = stack.last_request()["body"]["messages"][-1]["content"]
    results = [b for b in answered if b["type"] == "tool_result"]
    assert len(results) == 1 and "sunny in example" in orjson.dumps(results[0]["content"]).decode()


def test_smolagents_tool_calling_agent(stack: Stack) -> None:
    """smolagents' ToolCallingAgent on Chat Completions: the tool runs and its observation goes back; the
    emulator never calls final_answer, so the agent ends by asking for an answer in plain text."""
    got = run(stack, "smolagents-tools", "claude-sonnet-4-5")
    assert "sunny in example" in str(got.get("ok")), got
    tool_turns = [r for r in stack.recorded() if r["body"].get("tools")]
    assert {t["name"] for t in tool_turns[0]["body"]["tools"]} >= {"get_weather", "final_answer"}
