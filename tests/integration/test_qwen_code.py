"""Qwen Code (pinned in tests/clients/js/package.json) run headless, `qwen -p`, with the OpenAI settings
docs/clients.md gives: Chat Completions through the gateway."""

from __future__ import annotations

from pathlib import Path

from tests.integration.coding_agents import run_agent
from tests.integration.conftest import CLIENT_KEY, Stack


def test_qwen_code_runs_a_command_through_its_shell_tool(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("The password is puffin.\n")
    (tmp_path / "home").mkdir()
    env = {
        "HOME": str(tmp_path / "home"),
        "OPENAI_BASE_URL": f"{stack.base}/v1",
        "OPENAI_API_KEY": CLIENT_KEY,
        "OPENAI_MODEL": "claude-sonnet-4-5",
        "QWEN_CODE_SUPPRESS_YOLO_WARNING": "1",
    }
    done = run_agent("qwen", ["-p", "Use run_shell_command to run `cat hello.txt`", "--yolo"], tmp_path, env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Output: The password is puffin." in done.stdout, "the command ran, and its output went back"
    last = stack.last_request()["body"]
    assert "run_shell_command" in {t["name"] for t in last["tools"]}
    assert last["messages"][-1]["content"][0]["type"] == "tool_result"
    line = stack.last_access_line()
    assert (line["dialect"], line["status"]) == ("openai", 200)
