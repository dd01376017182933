"""The emulator and the gateway as real processes, shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from anthropic import Anthropic, AsyncAnthropic
from openai import AsyncOpenAI, OpenAI

from devtools.harness import (
    Process,
    access_lines,
    emulator_control,
    free_port,
    metric,
    start_foundry_emulator,
    start_gateway,
    write_token,
)

# Test credentials, distinctive so the leak checks can search for them.
API_KEY = "emu-api-key-7f3c9a1e5b"
BEARER = "emu-bearer-token-2d8e4f6a0c"
CLIENT_KEY = "client-key-must-not-travel-upstream"
# What the emulator's "lean" resource lacks, and the gateway's profile for it says so.
LEAN_BETAS = ["mid-conversation-system", "context-management", "effort"]


@dataclass
class Stack:
    gateway: Process
    base: str  # the gateway's base URL
    config_path: Path
    emulator: Process
    foundry: str  # the emulator's …/anthropic URL
    token_file: Path

    def recorded(self) -> list[dict[str, Any]]:
        return list(emulator_control(self.foundry, "requests"))

    def last_request(self) -> dict[str, Any]:
        recorded = self.recorded()
        assert recorded, "the emulator received no request"
        return recorded[-1]

    def fault(self, **spec: Any) -> None:
        emulator_control(self.foundry, "faults", [spec])

    def metrics(self) -> str:
        return httpx.get(self.gateway.admin + "/metrics").text

    def metric(self, sample: str) -> float:
        return metric(self.gateway.admin, sample)

    def last_access_line(self) -> dict[str, Any]:
        return access_lines(self.gateway)[-1]

    def thinking_per_turn(self) -> list[bool]:
        """Whether each request Foundry received so far had thinking on."""
        return ["thinking" in request["body"] for request in self.recorded()]

    def canary_hits(self) -> list[dict[str, Any]]:
        return list(emulator_control(self.foundry, "canary_hits"))

    def openai(self) -> OpenAI:
        return OpenAI(base_url=self.base + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20)

    def async_openai(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20)

    def anthropic(self, prefix: str = "") -> Anthropic:
        return Anthropic(base_url=self.base + prefix, api_key=CLIENT_KEY, max_retries=0, timeout=20)

    def async_anthropic(self) -> AsyncAnthropic:
        return AsyncAnthropic(base_url=self.base, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def api_key_upstream(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_url": url, "auth": {"type": "api_key", "key_env": "FOUNDRY_TEST_KEY"}, **extra}


def route(model: str, upstream: str, deployment: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "targets": [{"upstream": upstream, "deployment": deployment}], **extra}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("stack")
    emulator, foundry = start_foundry_emulator(
        "--api-key", API_KEY, "--bearer-token", BEARER, "--hosting", "claude-hosted=anthropic",
        "--hosting", f"lean=azure:{','.join(LEAN_BETAS)}", log_dir=work,
    )  # fmt: skip
    anthropic_hosted = foundry.removesuffix("/anthropic") + "/claude-hosted/anthropic"
    lean = foundry.removesuffix("/anthropic") + "/lean/anthropic"
    token_file = work / "token" / "token.json"
    token_file.parent.mkdir()
    write_token(token_file, BEARER, 3600)
    expired_file = work / "token" / "expired.json"
    write_token(expired_file, BEARER, -60)
    config = {
        "server": {
            "max_body_bytes": 256 * 1024,
            # Small upstream bounds, so the hostile-upstream tests need not send hundreds of megabytes.
            "max_upstream_body_bytes": 1024 * 1024,
            "max_upstream_error_bytes": 4096,
            "max_upstream_event_bytes": 64 * 1024,
        },
        # One attempt: these tests check how each upstream answer reaches the client; the
        # resilience tests cover retries and fallbacks.
        "retries": {"max_attempts": 1, "retry_after_cooldown": False, "cooldown_failures": 1000},
        "upstreams": [
            api_key_upstream("foundry", foundry + "/"),
            {"name": "entra", "base_url": foundry + "/v1/messages",
             "auth": {"type": "entra", "token_file": str(token_file), "recheck_seconds": 0}},
            api_key_upstream("dead", f"http://127.0.0.1:{free_port()}/anthropic"),
            api_key_upstream("slow", foundry, timeouts={"read_seconds": 1}),
            {"name": "expired", "base_url": foundry, "auth": {"type": "entra", "token_file": str(expired_file)}},
            api_key_upstream("no-context-1m", foundry,
                             capabilities={"betas": {"remove": ["context-1m-2025-08-07"]}}),
            api_key_upstream("known-betas", foundry, capabilities={"betas": {"only": ["claude-code-20250219"]}}),
            # A resource the emulator hosts as Anthropic does: structured outputs and newer server tools.
            api_key_upstream("structured", anthropic_hosted, hosting="anthropic"),
            # Azure-hosted deployments without these betas, or without web search: the gateway fits requests to them.
            api_key_upstream("lean", lean, capabilities={"betas": {"remove": LEAN_BETAS}}),
            api_key_upstream("learner", foundry.removesuffix("/anthropic") + "/learner/anthropic"),
            # Says its Azure-hosted deployments have structured outputs; the emulator's refuse them.
            api_key_upstream("overclaims", foundry, capabilities={"fields": {"add": ["output_config.format"]}}),
            api_key_upstream("no-web-search", foundry, capabilities={"server_tools": {"remove": ["web_search_*"]}}),
        ],
        "routes": [
            route("claude-sonnet-4-5", "foundry", "sonnet-deployment",
                  aliases=["claude-sonnet-4-5-*", "sonnet-latest"]),
            route("claude-entra", "entra", "entra-deployment"),
            route("claude-dead", "dead", "x"),
            route("claude-slow", "slow", "slow-deployment"),
            route("claude-expired", "expired", "x"),
            route("claude-no-default", "foundry", "nodefault-deployment", max_tokens_default=None),
            route("claude-cached", "foundry", "cached-deployment", cache_breakpoints="auto"),
            route("claude-drop-betas", "no-context-1m", "d"),
            route("claude-only-betas", "known-betas", "d"),
            # Frameworks decide from a model's name whether it has structured outputs: a real one here.
            route("claude-structured", "structured", "d", aliases=["claude-sonnet-4-6"]),
            # Claude Code sends its newest betas and body fields for the newest models' names.
            route("claude-lean", "lean", "lean-deployment", aliases=["claude-opus-4-6"]),
            route("claude-learner", "learner", "learner-deployment"),
            route("claude-overclaims", "overclaims", "overclaims-deployment"),
            route("claude-no-web-search", "no-web-search", "d"),
            # What Claude Code asks for when nobody set its model: its own default Opus.
            route("claude-opus-4-1", "foundry", "opus-deployment", aliases=["claude-opus-*"]),
        ],
    }  # fmt: skip
    gateway, base, config_path = start_gateway(config, env={"FOUNDRY_TEST_KEY": API_KEY}, log_dir=work)
    try:
        yield Stack(gateway, base, config_path, emulator, foundry, token_file)
    finally:
        gateway.stop()
        emulator.stop()


@pytest.fixture(autouse=True)
def clean_emulator(stack: Stack) -> None:
    emulator_control(stack.foundry, "reset", {})


def error_of(response: httpx.Response, dialect: str) -> dict[str, Any]:
    """The error object, after checking the body has the dialect's error shape."""
    body = response.json()
    if dialect == "anthropic":
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
    error: dict[str, Any] = body["error"]
    return error
