"""Codex CLI (pinned in tests/clients/js/package.json) run as people run it, `codex exec`, with a
custom provider on the Responses API and nothing else changed in its default config.

Codex sends what OpenAI accepts and Claude has no use for (client_metadata), its multi-agent tools
grouped in a `namespace`, and OpenAI's built-in `web_search` on every request; the gateway accepts
the first without effect, flattens the namespace and names its calls back, and serves web search
with Claude's own where the route's deployments have it, or refuses it clearly where they lack it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.integration.coding_agents import run_agent
from tests.integration.conftest import CLIENT_KEY, Stack


def codex(stack: Stack, workdir: Path, model: str, prompt: str) -> tuple[int, list[dict[str, Any]], str]:
    """`codex exec --json`: its exit status, its events, and what it wrote to stderr."""
    home = workdir / "codex-home"
    home.mkdir(exist_ok=True)
    # The provider, as docs/clients.md gives it; every other setting is Codex's default.
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "foundry"\n\n'
        "[model_providers.foundry]\n"
        'name = "Foundry gateway"\n'
        f'base_url = "{stack.base}/v1"\n'
        'env_key = "FOUNDRY_GATEWAY_KEY"\n'
        'wire_api = "responses"\n'
    )
    env = {"HOME": str(workdir), "CODEX_HOME": str(home), "FOUNDRY_GATEWAY_KEY": CLIENT_KEY}
    done = run_agent("codex", ["exec", "--json", "--skip-git-repo-check", prompt], workdir, env)
    events = [orjson.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, events, done.stderr


def test_codex_reads_a_file_by_running_a_command(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("The password is albatross.\n")
    status, events, stderr = codex(stack, tmp_path, "claude-sonnet-4-5", "Use exec_command to run `cat hello.txt`")
    assert status == 0, stderr[-3000:]
    items = [e["item"] for e in events if e.get("type") == "item.completed"]
    commands = [i for i in items if i.get("type") == "command_execution"]
    assert commands and "albatross" in commands[0]["aggregated_output"], items
    answer = [i for i in items if i.get("type") == "agent_message"][-1]
    assert "albatross" in answer["text"], "the command's output came back through the tool loop"
    first, second = (r["body"] for r in stack.recorded()[-2:])
    names = {t.get("name") for t in first["tools"]}
    assert "multi_agent_v1__spawn_agent" in names, "the namespace's functions, flattened"
    assert {"type": "web_search_20250305", "name": "web_search"} in first["tools"]
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"


def test_codex_web_search_where_the_deployments_lack_it_is_refused_clearly(stack: Stack, tmp_path: Path) -> None:
    before = len(stack.recorded())
    status, events, stderr = codex(stack, tmp_path, "claude-no-web-search", "Say hello")
    assert status != 0
    said = " ".join(str(e.get("message", "")) for e in events if e.get("type") in ("error", "turn.failed")) + stderr
    assert (
        "the built-in web_search tool (Claude's web_search_20250305) is not served by the deployments of "
        "'claude-no-web-search'" in said
    ), said[-3000:]
    assert len(stack.recorded()) == before, "refused before Foundry was called"


def test_codex_web_search_is_served_by_claudes(stack: Stack, tmp_path: Path) -> None:
    status, events, stderr = codex(stack, tmp_path, "claude-structured", "Search the web for the tallest tower")
    assert status == 0, stderr[-3000:]
    items = [e["item"] for e in events if e.get("type") == "item.completed"]
    searches = [i for i in items if i["type"] == "web_search"]
    assert [s["query"] for s in searches] == ["Search the web for the tallest tower"], items
    assert items[-1]["type"] == "agent_message" and items[-1]["text"] == "The page says the answer."
    sent = stack.last_request()["body"]
    assert {"type": "web_search_20250305", "name": "web_search"} in sent["tools"]
    assert "web_search_external_access" in stack.last_access_line()["adjusted"]
