"""aider (pinned in tests/clients/aider/requirements.txt, a venv of its own) run as people script it,
`aider --message`, with the OpenAI settings docs/clients.md gives: Chat Completions through the gateway."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson

from devtools.harness import ROOT
from tests.integration.conftest import CLIENT_KEY, Stack

AIDER = ROOT / "tests" / "clients" / "aider" / ".venv" / "bin" / "aider"


def test_aider_asks_through_the_gateway(stack: Stack, tmp_path: Path) -> None:
    assert AIDER.exists(), "make tools installs aider (make py-clients)"
    (tmp_path / "hello.py").write_text("def hello():\n    pass\n")
    (tmp_path / "home").mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "OPENAI_API_BASE": f"{stack.base}/v1",
        "OPENAI_API_KEY": CLIENT_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # LiteLLM's bundled price list, not a fetch from GitHub
    }
    args = ["--model", "openai/claude-sonnet-4-5", "--message", "Say hello", "--yes-always", "--no-git",
            "--no-check-update", "--no-show-release-notes", "--no-analytics", "--no-pretty", "hello.py"]  # fmt: skip
    done = subprocess.run(
        [str(AIDER), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "You said: Say hello" in done.stdout, "Claude's answer came back to aider"
    assert "def hello():" in orjson.dumps(stack.last_request()["body"]).decode(), "aider sent the file it was given"
    line = stack.last_access_line()
    assert (line["route"], line["dialect"], line["status"]) == ("claude-sonnet-4-5", "openai", 200)
