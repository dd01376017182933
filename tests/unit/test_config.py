"""Config loading: good configs parse; bad ones are refused with the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, load_config, parse_config
from gateway.runtime import Runtime

GOOD: dict[str, Any] = {
    "server": {"host": "0.0.0.0", "port": 8080},
    "upstreams": [
        {
            "name": "eastus2",
            "base_url": "https://my-resource.services.ai.azure.com/anthropic",
            "auth": {"type": "entra", "token_file": "/var/run/foundry-token/token.json"},
        },
        {
            "name": "westus",
            "base_url": "https://other.services.ai.azure.com/anthropic",
            "auth": {"type": "api_key", "key_env": "FOUNDRY_API_KEY"},
        },
    ],
    "routes": [
        {
            "model": "claude-sonnet-4-5",
            "targets": [{"upstream": "eastus2", "deployment": "claude-sonnet-4-5"}],
            "max_tokens_default": 4096,
        }
    ],
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    """A deep copy of GOOD with one key set (dotted path, [i] for list items); value None deletes it."""
    data: Any = yaml.safe_load(yaml.safe_dump(GOOD))
    node = data
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


def test_the_documented_shape_parses() -> None:
    config = parse_config(GOOD)
    auth: Any = parse_config(with_change("upstreams[0].auth.token_file", None)).upstreams[0].auth
    assert str(auth.token_file) == "/var/run/foundry-token/token.json", "the chart's mount path is the default"
    assert config.upstreams[0].messages_url == "https://my-resource.services.ai.azure.com/anthropic/v1/messages"
    assert config.routes[0].targets[0].weight == 1
    assert config.server.max_body_bytes == 32 * 1024 * 1024


@pytest.mark.parametrize(
    "base_url",
    [
        "https://r.services.ai.azure.com/anthropic",
        "https://r.services.ai.azure.com/anthropic/",
        "https://r.services.ai.azure.com/anthropic/v1/messages",
        "  https://r.services.ai.azure.com/anthropic/v1/messages/ ",
    ],
)
def test_base_url_variants_are_tolerated(base_url: str) -> None:
    config = parse_config(with_change("upstreams[0].base_url", base_url))
    assert config.upstreams[0].messages_url == "https://r.services.ai.azure.com/anthropic/v1/messages"


BAD = [
    ("routes[0].targets", [], "routes[0].targets", "at least 1"),
    ("routes[0].targets[0].upstream", "eastus", "routes[0].targets[0].upstream", "'eastus', which is not defined"),
    ("upstreams[0].auth.type", "magic", "upstreams[0].auth", "does not match any of the expected tags"),
    ("upstreams[0].auth.token_file", 5, "upstreams[0].auth.token_file", "Input is not a valid path"),
    ("upstreams[1].auth.key_file", "/k", "upstreams[1].auth", "exactly one of key_env or key_file"),
    ("upstreams[0].base_url", "ftp://x", "upstreams[0].base_url", "must be an http(s) URL"),
    ("upstreams[1].name", "eastus2", "upstreams[1].name", "duplicate upstream name"),
    ("server.port", 70000, "server.port", "less than or equal to 65535"),
    ("server.prot", 1, "server.prot", "Extra inputs are not permitted"),
    ("routes[0].max_tokens_default", 0, "routes[0].max_tokens_default", "greater than or equal to 1"),
    ("routes", None, "routes", "Field required"),
    ("logging", {"format": "xml"}, "logging.format", "'json' or 'console'"),
    ("upstreams[0].betas", {"drop": ["a"]}, "upstreams[0]", "'betas' moved: write capabilities.betas.remove"),
    ("upstreams[0].structured_outputs", True, "upstreams[0]", "capabilities.fields.add: [output_config.format]"),
    ("upstreams[0].hosting", "onprem", "upstreams[0].hosting", "'azure' or 'anthropic'"),
    ("upstreams[0].capabilities", {"betas": {"only": ["a"], "remove": ["b"]}}, "upstreams[0].capabilities.betas",
     "only is an allow-list"),
    ("upstreams[0].capabilities", {"tools": {}}, "upstreams[0].capabilities.tools", "Extra inputs"),
    ("routes[0].targets[0].quota_pool", "sub-z", "routes[0].targets[0].quota_pool",
     "names quota pool 'sub-z', which is not defined in quota_pools"),
    ("quota_pools", [{"name": "a"}, {"name": "a"}], "quota_pools[1].name", "duplicate quota pool name 'a'"),
    ("quota_pools", [{"name": "a", "burst_seconds": 120}], "quota_pools[0].burst_seconds", "less than or equal to 60"),
    ("quota_pools", [{"name": "a", "requests_per_minute": 0}], "quota_pools[0].requests_per_minute",
     "greater than or equal to 1"),
    ("routes[0].strategy", "fastest", "routes[0].strategy", "'weighted', 'priority' or 'quota'"),
    ("routes[0].max_wait_seconds", -1, "routes[0].max_wait_seconds", "greater than or equal to 0"),
    ("state", {"replicas": 0}, "state.replicas", "greater than or equal to 1"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "key", "reason"), BAD, ids=[b[0] + "=" + repr(b[1]) for b in BAD])
def test_bad_config_names_file_key_and_reason(tmp_path: Path, path: str, value: Any, key: str, reason: str) -> None:
    file = tmp_path / "gateway.yaml"
    file.write_text(yaml.safe_dump(with_change(path, value)))
    with pytest.raises(ConfigError) as info:
        load_config(file)
    text = str(info.value)
    assert str(file) in text
    assert any(k == key and reason in r for k, r in info.value.problems), info.value.problems
    assert f"{key}: " in text


def test_duplicate_route() -> None:
    data = with_change("routes", [GOOD["routes"][0], GOOD["routes"][0]])
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.problems == [("routes[1].model", "duplicate route for model 'claude-sonnet-4-5'")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("routes: [\n", "not valid YAML"), ("- a\n- b\n", "must be a YAML mapping"), ("", "must be a YAML mapping")],
)
def test_unparseable_files(tmp_path: Path, text: str, reason: str) -> None:
    file = tmp_path / "g.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=reason):
        load_config(file)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config("/nonexistent/gateway.yaml")


def routes_with(*aliases: list[str]) -> dict[str, Any]:
    """GOOD with routes a, b, c (in that order), each with the given aliases."""
    target = GOOD["routes"][0]["targets"]
    return with_change(
        "routes", [{"model": m, "aliases": a, "targets": target} for m, a in zip("abc", aliases, strict=False)]
    )


ALIAS_CONFLICTS = [
    ("an exact alias two routes claim", (["x"], ["x"]), "routes[1].aliases[0]",
     "'x' is already the name or an alias of route 'a'"),
    ("an alias that is another route's name", (["b"], []), "routes[0].aliases[0]",
     "'b' is already the name or an alias of route 'b'"),
    ("a pattern that takes another route's name", ([], ["a*"]), "routes[1].aliases[0]",
     "pattern 'a*' matches the model name of route 'a'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "aliases", "key", "reason"), ALIAS_CONFLICTS, ids=[c[0] for c in ALIAS_CONFLICTS])
def test_alias_conflicts_are_refused_with_key_and_reason(name: str, aliases: Any, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(routes_with(*aliases))
    assert (key, reason) in info.value.problems


NAME_TO_ROUTE = [
    ("a route's own name", "b", "b"),
    ("an exact alias", "latest", "b"),
    ("an exact alias wins over a pattern", "claude-opus-latest", "c"),
    ("the first pattern in the file wins", "claude-opus-5", "a"),
    ("a later pattern where the first does not match", "claude-haiku-4-5-20251001", "b"),
    ("a question mark is one character", "sonnet-7", "c"),
]


@pytest.mark.parametrize(("name", "model", "route"), NAME_TO_ROUTE, ids=[n[0] for n in NAME_TO_ROUTE])
def test_names_aliases_and_patterns_resolve_in_order(
    name: str, model: str, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOUNDRY_API_KEY", "key-for-tests-0000")
    config = parse_config(
        routes_with(
            ["claude-opus-*"], ["latest", "claude-haiku-*", "claude-opus-4*"], ["claude-opus-latest", "sonnet-?"]
        )
    )
    runtime = Runtime(config)
    assert runtime.route(model).name == route
    assert runtime.route(model).name == route, "the second time from what the first remembered"


def test_two_keys_with_one_client_name_are_refused() -> None:
    """The second would silently take the first's routes, limits and budget."""
    key = {"client": "team-a", "sha256": "a" * 64, "requests_per_minute": 10}
    other = {"client": "team-a", "sha256": "b" * 64, "routes": ["claude-sonnet-4-5"]}
    with pytest.raises(ConfigError) as info:
        parse_config(with_change("inbound", {"api_keys": [key, other]}))
    assert info.value.problems == [
        (
            "inbound.api_keys[1].client",
            "client 'team-a' is already api_keys[0]: each client's routes, limits and budget are set once "
            "(give each key its own client name)",
        )
    ]
