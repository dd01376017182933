"""opencode (pinned in tests/clients/js/package.json) run as people run it, `opencode run`, with the
provider docs/clients.md gives: the AI SDK's Anthropic provider pointed at the gateway."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson

from devtools.harness import ROOT
from tests.integration.conftest import CLIENT_KEY, Stack

OPENCODE = ROOT / "tests" / "clients" / "js" / "node_modules" / ".bin" / "opencode"


def test_opencode_runs_a_command_through_its_bash_tool(stack: Stack, tmp_path: Path) -> None:
    assert OPENCODE.exists(), "make tools installs opencode (npm ci in tests/clients/js)"
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
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "FOUNDRY_GATEWAY_KEY": CLIENT_KEY}
    done = subprocess.run(
        [str(OPENCODE), "run", "Use the bash tool to run `cat hello.txt`"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Tool results: The password is gannet." in done.stdout, "the command ran, and its output went back"
    first, second = (r["body"] for r in stack.recorded()[-2:])
    assert "bash" in {t["name"] for t in first["tools"]}
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"
    assert stack.last_access_line()["status"] == 200
