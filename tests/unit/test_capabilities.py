"""Capability profiles and fitting a Messages request to them: table-driven, pure."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from gateway.capabilities.fit import fit_request, has_downgrade
from gateway.capabilities.learning import refused_features
from gateway.capabilities.profile import RouteProfile, family, profile_for
from gateway.config import CapabilityChanges
from gateway.errors import GatewayError

HI: list[Any] = [{"role": "user", "content": "Hi"}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def route_profile(hosting: str = "azure", /, **changes: Any) -> RouteProfile:
    return RouteProfile.of([profile_for(hosting, CapabilityChanges.model_validate(changes))])  # type: ignore[arg-type]


def fit(body: dict[str, Any], betas: str | None = None, profile: RouteProfile | None = None, size: int = 0) -> Any:
    """`body` fitted, as sent in `size` bytes (or as orjson writes it)."""
    return fit_request(body, betas, profile or route_profile(), "claude-x", size or len(orjson.dumps(body)))


LEAN = {"betas": {"remove": ["mid-conversation-system", "context-management", "effort", "context-1m"]}}

# (name, profile, betas sent, body, betas that reach Foundry, body that reaches Foundry, adjusted)
FITS: list[tuple[str, RouteProfile, str | None, dict[str, Any], str | None, dict[str, Any], tuple[str, ...]]] = [
    ("anthropic-hosted lacks nothing: as sent", route_profile("anthropic"), " A-1 ,b-2",
     {"messages": HI, "container": "c"}, " A-1 ,b-2", {"messages": HI, "container": "c"}, ()),
    ("azure: nothing lacking, the header as written", route_profile(), "claude-code-20250219, effort-2025-11-24",
     {"messages": HI}, "claude-code-20250219, effort-2025-11-24", {"messages": HI}, ()),
    ("azure lacks the Files API beta", route_profile(), "files-api-2025-04-14,claude-code-20250219",
     {"messages": HI}, "claude-code-20250219", {"messages": HI}, ()),
    ("a dropped beta takes its body field: context management", route_profile(**LEAN),
     "context-management-2025-06-27", {"messages": HI, "context_management": {"edits": []}}, None,
     {"messages": HI}, ("context_management_dropped",)),
    ("... and effort, leaving the rest of output_config", route_profile(**LEAN), "effort-2025-11-24",
     {"messages": HI, "output_config": {"effort": "low", "x": 1}}, None,
     {"messages": HI, "output_config": {"x": 1}}, ("effort_dropped",)),
    ("... effort alone: output_config goes", route_profile(**LEAN), "Effort-2025-11-24",
     {"messages": HI, "output_config": {"effort": "low"}}, None, {"messages": HI}, ("effort_dropped",)),
    ("context-1m dropped where the input fits 200k", route_profile(**LEAN), "context-1m-2025-08-07",
     {"messages": HI}, None, {"messages": HI}, ()),
    ("a beta named however a client writes it", route_profile(**LEAN), ' "CONTEXT-1M-2025-08-07" ; q=1, x-1',
     {"messages": HI}, "x-1", {"messages": HI}, ()),
    ("only: an allow-list", route_profile(betas={"only": ["claude-code"]}), "claude-code-20250219,b-1",
     {"messages": HI}, "claude-code-20250219", {"messages": HI}, ()),
    ("add: a beta the hosting default lacks", route_profile(betas={"add": ["files-api"]}), "files-api-2025-04-14",
     {"messages": HI}, "files-api-2025-04-14", {"messages": HI}, ()),
    ("strict tools become plain where structured outputs are lacking", route_profile(), None,
     {"messages": HI, "tools": [{"name": "t", "input_schema": SCHEMA, "strict": True}]}, None,
     {"messages": HI, "tools": [{"name": "t", "input_schema": SCHEMA}]}, ("strict_not_enforced",)),
    ("output_config.format becomes a forced tool", route_profile(), None,
     {"messages": HI, "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}, None,
     {"messages": HI, "tools": [{"name": "json_response", "description": "Give the answer as JSON matching the schema.",
                                 "input_schema": SCHEMA}],
      "tool_choice": {"type": "tool", "name": "json_response"}}, ("structured_outputs_emulated",)),
    ("... with the client's tools, any tool is forced", route_profile(), "structured-outputs-2025-11-13",
     {"messages": HI, "tools": [{"name": "t", "input_schema": SCHEMA}],
      "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
      "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}, "structured-outputs-2025-11-13",
     {"messages": HI, "tools": [{"name": "t", "input_schema": SCHEMA},
                                {"name": "json_response", "description": "Give the answer as JSON matching the schema.",
                                 "input_schema": SCHEMA}],
      "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}, ("structured_outputs_emulated",)),
    ("native structured outputs where the profile adds them", route_profile(fields={"add": ["output_config.format"]}),
     None, {"messages": HI, "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}, None,
     {"messages": HI, "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}, ()),
    ("tools that are not objects are left for Claude to refuse", route_profile(), None,
     {"messages": HI, "tools": [1, "type", None]}, None, {"messages": HI, "tools": [1, "type", None]}, ()),
    ("the web search azure serves", route_profile(), None,
     {"messages": HI, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, None,
     {"messages": HI, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, ()),
]  # fmt: skip


@pytest.mark.parametrize(("name", "profile", "betas", "body", "sent_betas", "sent", "adjusted"), FITS,
                         ids=[f[0] for f in FITS])  # fmt: skip
def test_fit(
    name: str,
    profile: RouteProfile,
    betas: str | None,
    body: dict[str, Any],
    sent_betas: str | None,
    sent: dict[str, Any],
    adjusted: tuple[str, ...],
) -> None:
    original = copy.deepcopy(body)
    fitted = fit(body, betas, profile)
    assert (fitted.betas, fitted.body, fitted.adjusted) == (sent_betas, sent, adjusted)
    assert body == original, "the client's body is not changed in place"


SYSTEM_TURN = {"role": "system", "content": "Be brief."}
RESULT = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
USE = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "t", "input": {}}]}

FOLDS = [
    ("system text before a user turn joins it, after its tool results",
     [USE, SYSTEM_TURN, {"role": "user", "content": [RESULT]}],
     [USE, {"role": "user", "content": [RESULT, {"type": "text", "text": "Be brief."}]}]),
    ("a user turn written as a string", [SYSTEM_TURN, {"role": "user", "content": "Hi"}],
     [{"role": "user", "content": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Hi"}]}]),
    ("system text at the end joins the last user turn",
     [{"role": "user", "content": "Hi"}, SYSTEM_TURN],
     [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Be brief."}]}]),
    ("... or becomes one after an assistant turn",
     [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, SYSTEM_TURN],
     [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
      {"role": "user", "content": [{"type": "text", "text": "Be brief."}]}]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "messages", "folded"), FOLDS, ids=[f[0] for f in FOLDS])
def test_system_turns_fold_into_user_turns_when_the_beta_is_lacking(
    name: str, messages: list[Any], folded: list[Any]
) -> None:
    fitted = fit({"messages": messages}, "mid-conversation-system-2025-09-01", route_profile(**LEAN))
    assert fitted.body["messages"] == folded and fitted.adjusted == ("system_turns_folded",)
    assert fitted.betas is None and fitted.betas_dropped == ("mid-conversation-system-2025-09-01",)


REFUSED = [
    ("a body field with no downgrade", route_profile(), None, {"container": "c"}, "container"),
    ("a server tool newer than azure serves", route_profile(), None,
     {"tools": [{"type": "web_search_20260209", "name": "web_search"}]}, "tools[0].type"),
    ("code execution on azure", route_profile(), None,
     {"tools": [{"name": "t", "input_schema": SCHEMA}, {"type": "code_execution_20250825", "name": "c"}]},
     "tools[1].type"),
    ("web search removed from the profile", route_profile(server_tools={"remove": ["web_search_*"]}), None,
     {"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
    ("a field the profile removes", route_profile("anthropic", fields={"remove": ["mcp_servers"]}), None,
     {"mcp_servers": []}, "mcp_servers"),
    ("a Files API file where the beta is lacking", route_profile(), "files-api-2025-04-14",
     {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "f"}}]}]},
     "anthropic-beta"),
    ("an emulated format with thinking on", route_profile(), None,
     {"thinking": {"type": "adaptive"}, "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
     "output_config.format"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "profile", "betas", "body", "param"), REFUSED, ids=[r[0] for r in REFUSED])
def test_what_cannot_be_downgraded_is_refused_naming_feature_and_route(
    name: str, profile: RouteProfile, betas: str | None, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        fit({"messages": HI, **body}, betas, profile)
    assert caught.value.status == 400 and caught.value.param == param
    if param != "output_config.format":
        assert "is not served by the deployments of 'claude-x' (hosting " in caught.value.message


def test_context_1m_is_refused_when_the_input_cannot_fit_200k_tokens() -> None:
    with pytest.raises(GatewayError) as caught:
        fit({"messages": HI}, "context-1m-2025-08-07", route_profile(**LEAN), size=4 * 200_001)
    assert "does not fit Claude's 200,000 without it" in caught.value.message


def test_a_route_lacks_what_any_of_its_deployments_lacks() -> None:
    azure = profile_for("azure", CapabilityChanges())
    anthropic = profile_for("anthropic", CapabilityChanges())
    mixed = RouteProfile.of([anthropic, azure, azure])
    assert len(mixed.profiles) == 2 and not mixed.complete and mixed.hosting == "anthropic/azure"
    assert mixed.lacks_server_tool("code_execution_20250825") and not mixed.lacks_server_tool("bash_20250124")
    assert RouteProfile.of([anthropic]).complete
    adds_only = CapabilityChanges.model_validate({"betas": {"add": ["x"]}, "server_tools": {"add": ["y_*"]}})
    assert RouteProfile.of([profile_for("anthropic", adds_only)]).complete, "adding to what lacks nothing"


@pytest.mark.parametrize(
    ("beta", "kind"),
    [("effort-2025-11-24", "effort"), ("context-1m-2025-08-07", "context-1m"), ("claude-code-20250219", "claude-code"),
     ("mid-conversation-system", "mid-conversation-system")],
)  # fmt: skip
def test_a_betas_family(beta: str, kind: str) -> None:
    assert family(beta) == kind


REFUSALS = [
    (400, "Unexpected value(s) `foo-2025-01-01, Bar-1` for the `anthropic-beta` header. Please consult our docs",
     ["beta:foo-2025-01-01", "beta:bar-1"]),
    (400, "context_management: Extra inputs are not permitted", ["field:context_management"]),
    (400, "output_config.format: Extra inputs are not permitted", ["field:output_config.format"]),
    (400, "tools.2.strict: Extra inputs are not permitted", ["field:tools.strict"]),
    (400, "tools.3: Input tag 'web_search_20260209' found using 'type' does not match any of the expected tags",
     ["server_tool:web_search_20260209"]),
    (400, "messages.1: all messages must have non-empty content", []),
    (429, "Unexpected value(s) `foo` for the `anthropic-beta` header", []),
]  # fmt: skip


@pytest.mark.parametrize(("status", "message", "features"), REFUSALS, ids=[str(i) for i in range(len(REFUSALS))])
def test_what_a_refusal_says_a_deployment_lacks(status: int, message: str, features: list[str]) -> None:
    assert [f.feature for f in refused_features(status, message)] == features


def test_what_a_route_learns_it_lacks_from_then_on() -> None:
    profile = route_profile("anthropic")
    body = {"messages": HI, "context_management": {"edits": []}}
    assert fit(body, "a-1", profile).body == body
    profile.learn("beta", "a-1")
    profile.learn("field", "context_management")
    fitted = fit(body, "a-1,b-2", profile)
    assert (fitted.betas, fitted.body, fitted.adjusted) == ("b-2", {"messages": HI}, ("context_management_dropped",))
    assert has_downgrade("field", "output_config.format") and not has_downgrade("server_tool", "web_search_20260209")
    profile.learn("field", "tools.strict")
    assert profile.lacks_structured_outputs and profile.looks_at_tools, "a strict tool refused: structured outputs too"
    assert not has_downgrade("field", "container")
