"""Capability profiles end to end: Claude Code against an Azure-hosted deployment that lacks some of
the betas it sends, and a refusal the profile did not foresee, learned and retried once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from devtools.harness import access_lines, emulator_control
from gateway.capabilities.profile import family
from tests.integration.conftest import API_KEY, CLIENT_KEY, LEAN_BETAS, Stack
from tests.integration.test_claude_code import claude


def test_claude_code_against_deployments_that_lack_its_newest_betas(stack: Stack, tmp_path: Path) -> None:
    """The emulator's `lean` resource refuses mid-conversation-system, context-management and effort, as
    Foundry refuses a beta a deployment lacks; the route's profile says so, and Claude Code's tool loop
    with thinking on goes through with those betas dropped and their body fields with them."""
    notes = tmp_path / "notes.txt"
    notes.write_text("The secret word is heron.\n")
    settings = {"ANTHROPIC_AUTH_TOKEN": CLIENT_KEY, "ANTHROPIC_MODEL": "claude-opus-4-6"}
    transcript = claude(stack, tmp_path, f"Read {notes} and tell me the secret word", settings)
    result = transcript[-1]
    assert not result["is_error"] and "The secret word is heron." in result["result"], result
    recorded = [r for r in stack.recorded() if r["path"].startswith("/lean/")]
    assert recorded and recorded[0]["body"]["thinking"]["type"] in ("enabled", "adaptive"), "thinking was on"
    assert recorded[-1]["body"]["messages"][-1]["content"][0]["type"] == "tool_result", "a tool loop"
    for sent in recorded:
        betas = sent["headers"].get("anthropic-beta", "")
        assert not any(b.strip().startswith(tuple(LEAN_BETAS)) for b in betas.split(",")), betas
        assert "context_management" not in sent["body"] and "effort" not in sent["body"].get("output_config", {})
        assert all(m["role"] != "system" for m in sent["body"]["messages"])
    lines = [line for line in access_lines(stack.gateway) if line.get("session_id") == result["session_id"]]
    assert len(lines) == len(recorded) and {line["status"] for line in lines} == {200}
    # What Claude Code 2.1.332 sends for this model name: context management and effort, each with its beta.
    assert {"context_management_dropped", "effort_dropped"} <= {a for line in lines for a in line.get("adjusted", ())}
    dropped = {family(b) for line in lines for b in line.get("betas_dropped", ())}
    assert {"context-management", "effort"} <= dropped <= set(LEAN_BETAS)


def test_a_refusal_the_profile_did_not_foresee_is_learned_and_the_request_sent_once_without_it(stack: Stack) -> None:
    emulator_control(stack.foundry, "hosting", {"resource": "learner", "mode": "azure",
                                                "lacks_betas": ["interleaved-thinking"]})  # fmt: skip
    sample = ('foundry_gateway_capability_refused_total{deployment="learner-deployment",'
              'feature="beta:interleaved-thinking-2025-05-14",upstream="learner"}')  # fmt: skip
    before = stack.metric(sample)
    body: dict[str, Any] = {"model": "claude-learner", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    first = httpx.post(stack.base + "/v1/messages", headers=headers, json=body)
    assert first.status_code == 200, first.text
    refused, retried = stack.recorded()[-2:]
    assert "interleaved-thinking-2025-05-14" in refused["headers"]["anthropic-beta"]
    assert retried["headers"]["anthropic-beta"] == "claude-code-20250219"
    line = stack.last_access_line()
    assert line["capability_refused"] == ["beta:interleaved-thinking-2025-05-14"]
    assert line["betas_dropped"] == ["interleaved-thinking-2025-05-14"]
    assert stack.metric(sample) == before + 1
    # Learned: the next request goes without it at once, and nothing is refused.
    count = len(stack.recorded())
    second = httpx.post(stack.base + "/v1/messages", headers=headers, json=body)
    assert second.status_code == 200 and len(stack.recorded()) == count + 1
    assert "capability_refused" not in stack.last_access_line()
    assert stack.metric(sample) == before + 1


def test_system_turns_go_as_user_text_to_deployments_without_mid_conversation_system(stack: Stack) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "How are you?"}]  # fmt: skip
    response = httpx.post(
        stack.base + "/v1/messages",
        headers={"anthropic-beta": "mid-conversation-system-2026-01-01"},
        json={"model": "claude-lean", "max_tokens": 50, "messages": messages},
    )
    assert response.status_code == 200, response.text
    sent = stack.last_request()
    assert "anthropic-beta" not in sent["headers"]
    assert sent["body"]["messages"][-1]["content"] == [{"type": "text", "text": "Answer in French."},
                                                       {"type": "text", "text": "How are you?"}]  # fmt: skip
    assert stack.last_access_line()["adjusted"] == ["system_turns_folded"]


def test_a_server_tool_newer_than_azure_serves_is_refused_before_foundry(stack: Stack) -> None:
    before = len(stack.recorded())
    response = httpx.post(
        stack.base + "/v1/messages",
        json={"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}],
              "tools": [{"type": "web_search_20260209", "name": "web_search"}]},
    )  # fmt: skip
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("tools[0].type web_search_20260209 is not served by the deployments of "
                                       "'claude-sonnet-4-5' (hosting azure")  # fmt: skip
    assert len(stack.recorded()) == before
    # The same tool on an Anthropic-hosted deployment is served.
    served = httpx.post(
        stack.base + "/v1/messages",
        json={"model": "claude-structured", "max_tokens": 50,
              "messages": [{"role": "user", "content": "Search the web for towers"}],
              "tools": [{"type": "web_search_20260209", "name": "web_search"}]},
    )  # fmt: skip
    assert served.status_code == 200, served.text
    assert [b["type"] for b in served.json()["content"]] == ["server_tool_use", "web_search_tool_result", "text"]


REFUSED_ON_AZURE: list[tuple[dict[str, Any], dict[str, str], str]] = [
    ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}, {}, "output_config.format"),
    ({"container": "skills"}, {}, "container"),
    ({"tools": [{"type": "web_search_20260209", "name": "web_search"}]}, {}, "web_search_20260209"),
    ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]}, {}, "code_execution_20250825"),
    ({"tools": [{"name": "t", "input_schema": {"type": "object"}, "allowed_callers": ["code_execution"]}]}, {},
     "allowed_callers"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "f"}}]}]},
     {}, "Files API"),
    ({}, {"anthropic-beta": "files-api-2025-04-14"}, "files-api-2025-04-14"),
]  # fmt: skip


def test_the_emulator_refuses_on_azure_what_foundry_does_and_accepts_it_on_anthropic(stack: Stack) -> None:
    """The emulator itself, called directly: the gateway's tests rely on it refusing as Foundry does."""
    root = stack.foundry.removesuffix("/anthropic")
    hello: dict[str, Any] = {"model": "d", "max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]}
    auth = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    for extra, headers, named in REFUSED_ON_AZURE:
        refused = httpx.post(root + "/anthropic/v1/messages", headers={**auth, **headers}, json={**hello, **extra})
        assert refused.status_code == 400 and named in refused.json()["error"]["message"], (extra, refused.text)
        if named not in ("Files API", "allowed_callers", "code_execution_20250825"):  # these the emulator cannot run
            served = httpx.post(root + "/claude-hosted/anthropic/v1/messages", headers={**auth, **headers},
                                json={**hello, **extra})  # fmt: skip
            assert served.status_code == 200, (extra, served.text)


def test_an_openai_request_is_translated_again_without_what_foundry_refused(stack: Stack) -> None:
    """A profile that says structured outputs are there when they are not: the strict json_schema goes
    native, Foundry refuses output_config.format, and the request is translated again with the forced tool."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}  # fmt: skip
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema, "strict": True}}
    hello: Any = [{"role": "user", "content": "Which city?"}]
    for first in (True, False):
        count = len(stack.recorded())
        completion = stack.openai().chat.completions.create(
            model="claude-overclaims", messages=hello, response_format=response_format
        )
        assert completion.choices[0].message.content == '{"city":"example"}'
        sent = stack.recorded()[count:]
        assert ["output_config" in r["body"] for r in sent] == ([True, False] if first else [False])
        line = stack.last_access_line()
        assert line["adjusted"] == ["json_schema_as_forced_tool"]
        assert line.get("capability_refused") == (["field:output_config.format"] if first else None)
