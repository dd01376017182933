"""Foundry's two hosting options for Claude, as a resource's deployments refuse or accept a request.

An Azure-hosted resource ("version 2") answers 400 by design for what Microsoft Learn lists:
server tools newer than the versions it serves (web search 20250305, web fetch 20250910), code
execution, Agent Skills (container), programmatic tool calling (allowed_callers), the Files API,
native structured outputs, and any beta its profile names as absent. An Anthropic-hosted
resource ("version 1") accepts them all. The wording is Claude's own for the same refusals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.foundry.validate import InvalidRequest

_SERVED_SERVER_TOOLS = frozenset({"web_search_20250305", "web_fetch_20250910"})
_SERVER_TOOL = re.compile(r"^(web_search|web_fetch|code_execution)_\d{8}$")
_AZURE_LACKS_BETAS = ("files-api", "skills", "code-execution")
_AZURE_LACKS_FIELDS = ("container", "output_config.format")


def family(beta: str) -> str:
    return re.sub(r"(-\d+)+$", "", beta.strip().lower())


@dataclass
class Hosting:
    mode: str = "azure"  # azure | anthropic
    lacks_betas: frozenset[str] = field(default_factory=frozenset)  # beta families refused besides the mode's

    def check(self, body: dict[str, Any], betas: frozenset[str]) -> None:
        """Raise the 400 this resource answers, if any."""
        if self.mode == "anthropic" and not self.lacks_betas:
            return
        refused = set(self.lacks_betas) | (set(_AZURE_LACKS_BETAS) if self.mode == "azure" else set())
        unexpected = sorted(b for b in betas if family(b) in refused)
        if unexpected:
            raise InvalidRequest(
                f"Unexpected value(s) `{', '.join(unexpected)}` for the `anthropic-beta` header. Please consult our "
                "documentation at docs.claude.com or try again without the header."
            )
        if self.mode != "azure":
            return
        config = body.get("output_config")
        present = {
            "container": "container" in body,
            "output_config.format": isinstance(config, dict) and "format" in config,
        }
        for name in _AZURE_LACKS_FIELDS:
            if present[name]:
                raise InvalidRequest(f"{name}: Extra inputs are not permitted")
        for i, tool in enumerate(body.get("tools") or []):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and _SERVER_TOOL.match(kind) and kind not in _SERVED_SERVER_TOOLS:
                raise InvalidRequest(
                    f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                    f"{', '.join(repr(t) for t in sorted(_SERVED_SERVER_TOOLS))}, 'custom'"
                )
            if isinstance(tool, dict) and "allowed_callers" in tool:
                raise InvalidRequest(f"tools.{i}.allowed_callers: Extra inputs are not permitted")
        for i, message in enumerate(body.get("messages") or []):
            content = message.get("content") if isinstance(message, dict) else None
            for j, block in enumerate(content if isinstance(content, list) else []):
                source = block.get("source") if isinstance(block, dict) else None
                if isinstance(source, dict) and source.get("type") == "file":
                    raise InvalidRequest(f"messages.{i}.content.{j}.source: the Files API is not available")
