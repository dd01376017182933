"""The route lookup remembers the names its patterns matched, within a bound of count and bytes."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.runtime import Runtime


def test_names_a_pattern_matched_are_remembered_within_a_byte_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTE_NAMES_KEY", "k")
    config = parse_config(
        {
            "upstreams": [
                {
                    "name": "u",
                    "base_url": "https://r.services.ai.azure.com/anthropic",
                    "auth": {"type": "api_key", "key_env": "ROUTE_NAMES_KEY"},
                }
            ],
            "routes": [{"model": "claude", "aliases": ["claude-*"], "targets": [{"upstream": "u", "deployment": "d"}]}],
        }
    )
    runtime = Runtime(config)
    for n in range(4000):
        name = f"claude-{n:05d}-" + "x" * 240
        assert runtime.route(name).name == "claude"
    kept = runtime._matched  # the cache itself is what is bounded
    assert sum(len(name) for name in kept) <= 256 * 1024
    assert runtime.route("claude-" + "y" * 240).name == "claude", "past the bound names still match"
