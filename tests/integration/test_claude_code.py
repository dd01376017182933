"""Claude Code (pinned in tests/clients/js/package.json) run as people run it, `claude -p`, with the
environment docs/clients.md gives, through the gateway to the Foundry emulator.

The task makes it use a tool with thinking on, so the second request carries the signed thinking
of the first answer: Claude Code keeps that only when the answer names the model it asked for,
and the emulator, as Claude does, refuses a tool-result turn whose thinking went missing."""

from __future__ import annotations

import os
import subprocess
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import orjson
import pytest

from devtools.harness import ROOT, access_lines
from tests.integration.conftest import CLIENT_KEY, Stack

CLAUDE = ROOT / "tests" / "clients" / "js" / "node_modules" / ".bin" / "claude"


def claude(stack: Stack, workdir: Path, prompt: str, settings: dict[str, str]) -> list[dict[str, Any]]:
    """Claude Code's stream-json transcript: the answers as it took them, then its result."""
    assert CLAUDE.exists(), "make tools installs Claude Code (npm ci in tests/clients/js)"
    home = workdir / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),  # no settings, credentials or history of whoever runs the tests
        "ANTHROPIC_BASE_URL": stack.base,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **settings,
    }
    done = subprocess.run(
        [
            str(CLAUDE),
            "-p",
            prompt,
            "--allowedTools",
            "Read",
            "--output-format",
            "stream-json",
            "--verbose",
            "--max-turns",
            "4",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("settings", "route", "deployment", "sent"),
    [
        # The settings docs/clients.md shows.
        ({"ANTHROPIC_AUTH_TOKEN": CLIENT_KEY, "ANTHROPIC_MODEL": "claude-sonnet-4-5"},
         "claude-sonnet-4-5", "sonnet-deployment", "claude-sonnet-4-5"),
        # No model settings at all: Claude Code asks for its own default Opus, which a route's
        # `claude-opus-*` alias takes.
        ({"ANTHROPIC_API_KEY": CLIENT_KEY}, "claude-opus-4-1", "opus-deployment", "claude-opus-*"),
        # Its `opus` shorthand pointed at a dated id, which the route's `claude-sonnet-4-5-*` takes.
        ({"ANTHROPIC_API_KEY": CLIENT_KEY, "ANTHROPIC_MODEL": "opus",
          "ANTHROPIC_DEFAULT_OPUS_MODEL": "claude-sonnet-4-5-20250929"},
         "claude-sonnet-4-5", "sonnet-deployment", "claude-sonnet-4-5-20250929"),
    ],
    ids=["documented-settings", "no-settings", "opus-shorthand"],
)  # fmt: skip
def test_a_tool_loop_with_thinking(
    stack: Stack, tmp_path: Path, settings: dict[str, str], route: str, deployment: str, sent: str
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("The secret word is pelican.\n")
    transcript = claude(stack, tmp_path, f"Read {notes} and tell me the secret word", settings)
    result = transcript[-1]

    assert not result["is_error"] and result["num_turns"] == 2, result
    assert "The secret word is pelican." in result["result"], "the file's text came back through the tool"
    recorded = stack.recorded()  # the tool loop, and with some settings a side request of its own
    assert {r["body"]["model"] for r in recorded} == {deployment}
    first = next(r for r in recorded if r["body"].get("tools"))
    assert first["body"]["thinking"]["type"] in ("enabled", "adaptive"), "thinking was on"
    last = recorded[-1]["body"]["messages"]
    assert last[-1]["content"][0]["type"] == "tool_result"
    assert [b["type"] for b in last[-2]["content"]][:1] == ["thinking"], "the signed thinking was carried"
    # Each answer names the model Claude Code asked for, never the deployment.
    answers = [event["message"] for event in transcript if event["type"] == "assistant"]
    assert answers and all(fnmatch(a["model"], sent) for a in answers), [a["model"] for a in answers]
    lines = [line for line in access_lines(stack.gateway) if line.get("session_id") == result["session_id"]]
    assert len(lines) == len(recorded) and {(line["route"], line["status"]) for line in lines} == {(route, 200)}
