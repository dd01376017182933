"""opencode (pinned in tests/clients/js/package.json) run as people run it, `opencode run`, with the
provider docs/clients.md gives: the AI SDK's Anthropic provider pointed at the gateway."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.integration.coding_agents import run_agent
from tests.integration.conftest import CLIENT_KEY, Stack


def test_opencode_runs_a_command_through_its_bash_tool(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("The password is gannet.\n")
    config = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "foundry": {
                "npm": "@ai-sdk/anthropic",
                "name": "Foundry gateway",
                "options": {"baseURL": f"{stack.base}/v1", "apiKey": "{env:FOUNDRY_GATEWAY_KEY}"},
                "models": {"claude-sonnet-4-5": {"name": "Claude Sonnet 4.5"}},
            }
        },
        "model": "foundry/claude-sonnet-4-5",
    }
    (tmp_path / "opencode.json").write_bytes(orjson.dumps(config))
    env = {"HOME": str(tmp_path / "home"), "FOUNDRY_GATEWAY_KEY": CLIENT_KEY}
    done = run_agent("opencode", ["run", "Use the bash tool to run `cat hello.txt`"], tmp_path, env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Tool results: The password is gannet." in done.stdout, "the command ran, and its output went back"
    first, second = (r["body"] for r in stack.recorded()[-2:])
    assert "bash" in {t["name"] for t in first["tools"]}
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"
    assert stack.last_access_line()["status"] == 200
