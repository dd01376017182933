"""anthropic-beta: forwarded verbatim by default; an upstream's policy drops some, counted and logged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack

HELLO: list[Any] = [{"role": "user", "content": "Hello betas"}]
SENT = "claude-code-20250219, context-1m-2025-08-07,interleaved-thinking-2025-05-14"

POLICIES = [
    # (route, what reaches Foundry, what is dropped)
    ("claude-sonnet-4-5", "claude-code-20250219, context-1m-2025-08-07,interleaved-thinking-2025-05-14", []),
    ("claude-drop-betas", "claude-code-20250219,interleaved-thinking-2025-05-14", ["context-1m-2025-08-07"]),
    ("claude-only-betas", "claude-code-20250219", ["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"]),
]


@pytest.mark.parametrize(("model", "forwarded", "dropped"), POLICIES, ids=[p[0] for p in POLICIES])
def test_an_upstreams_beta_policy(stack: Stack, model: str, forwarded: str, dropped: list[str]) -> None:
    upstream = {"claude-drop-betas": "no-context-1m", "claude-only-betas": "known-betas"}.get(model, "foundry")
    samples = [f'foundry_gateway_betas_dropped_total{{beta="{b}",upstream="{upstream}"}}' for b in dropped]
    before = [stack.metric(s) for s in samples]
    response = httpx.post(
        stack.base + "/v1/messages",
        headers={"anthropic-beta": SENT},
        json={"model": model, "max_tokens": 5, "messages": HELLO},
    )
    assert response.status_code == 200
    assert stack.last_request()["headers"]["anthropic-beta"] == forwarded
    assert [stack.metric(s) for s in samples] == [b + 1 for b in before]
    line = stack.last_access_line()
    assert line.get("betas_dropped", []) == dropped


def test_a_policy_that_leaves_no_beta_sends_no_header(stack: Stack) -> None:
    httpx.post(
        stack.base + "/v1/messages",
        headers={"anthropic-beta": "context-1m-2025-08-07"},
        json={"model": "claude-drop-betas", "max_tokens": 5, "messages": HELLO},
    )
    assert "anthropic-beta" not in stack.last_request()["headers"]


CLAUDE_CODE_BETAS = "claude-code-20250219,context-management-2025-06-27,effort-2025-11-24"
CLAUDE_CODE_BODY: dict[str, Any] = {
    "max_tokens": 2000,
    "messages": HELLO,
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "medium"},
}


def test_body_fields_travel_with_their_betas(stack: Stack) -> None:
    """What Claude Code 2.1 sends: adaptive thinking, context_management and output_config.effort,
    each paired with its beta. Forwarded verbatim, they are served; the thinking comes back as a
    signature-only block, as newer models send it when its summary is omitted."""
    response = httpx.post(
        stack.base + "/v1/messages",
        headers={"anthropic-beta": CLAUDE_CODE_BETAS},
        json={"model": "claude-sonnet-4-5-20250929", **CLAUDE_CODE_BODY},
    )
    assert response.status_code == 200, response.text
    first = response.json()["content"][0]
    assert first["type"] == "thinking" and first["thinking"] == "" and first["signature"]


def test_a_body_field_without_its_beta_gets_claudes_refusal(stack: Stack) -> None:
    """Half a pair is refused, as Claude refuses it; the gateway passes the reason on. (So a beta
    policy must not drop a beta whose body field its clients send.)"""
    response = httpx.post(
        stack.base + "/v1/messages",
        headers={"anthropic-beta": "claude-code-20250219,effort-2025-11-24"},
        json={"model": "claude-sonnet-4-5", **CLAUDE_CODE_BODY},
    )
    assert response.status_code == 400
    assert "context_management: this field needs the context-management-* beta" in response.json()["error"]["message"]


WRITTEN = ["CONTEXT-1M-2025-08-07", "Context-1m-2025-08-07", '"context-1m-2025-08-07"', "context-1m-2025-08-07;q=1",
           " context-1m-2025-08-07 ; q=0.5"]  # fmt: skip


@pytest.mark.parametrize("written", WRITTEN)
def test_a_dropped_beta_is_dropped_however_it_is_written(stack: Stack, written: str) -> None:
    response = httpx.post(
        stack.base + "/v1/messages",
        headers={"anthropic-beta": f"claude-code-20250219,{written}"},
        json={"model": "claude-drop-betas", "max_tokens": 5, "messages": HELLO},
    )
    assert response.status_code == 200
    assert stack.last_request()["headers"]["anthropic-beta"] == "claude-code-20250219"
    assert stack.last_access_line()["betas_dropped"] == ["context-1m-2025-08-07"]
