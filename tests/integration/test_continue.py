"""Continue's CLI (pinned in tests/clients/js/package.json) run headless, `cn -p`, with the config
docs/clients.md gives: its Anthropic provider pointed at the gateway."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.integration.coding_agents import run_agent
from tests.integration.conftest import CLIENT_KEY, Stack


def test_continue_runs_a_command_through_its_bash_tool(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("The password is tern.\n")
    (tmp_path / "home").mkdir()
    model = {"name": "Claude via the gateway", "provider": "anthropic", "model": "claude-sonnet-4-5",
             "apiBase": f"{stack.base}/v1/", "apiKey": CLIENT_KEY, "roles": ["chat", "edit", "apply"]}  # fmt: skip
    config = {"name": "gateway", "version": "1.0.0", "schema": "v1", "models": [model]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["--config", str(tmp_path / "config.yaml"), "-p", "Use Bash to run `cat hello.txt`", "--auto"]
    done = run_agent("cn", args, tmp_path, {"HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Tool results: The password is tern." in done.stdout, "the command ran, and its output went back"
    last = stack.last_request()["body"]
    assert last["messages"][-1]["content"][0]["type"] == "tool_result"
    line = stack.last_access_line()
    assert (line["dialect"], line["status"]) == ("anthropic", 200)
