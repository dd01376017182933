"""What a refusal from Foundry says a deployment lacks, for a profile that did not know it. Pure.

Claude names what it refuses in its own words: an anthropic-beta value it does not take, a body
field it does not permit, a tool type it does not know. Those three are read here; any other
refusal is passed on to the client as it came.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from gateway.capabilities.profile import beta_name

_BETAS = re.compile(r"Unexpected value\(s\) `([^`]{1,512})` for the `anthropic-beta` header")
_FIELD = re.compile(r"^([A-Za-z_][\w.]{0,127}): Extra inputs are not permitted")
_TOOL_INDEX = re.compile(r"^tools\.\d+\.")
_TOOL = re.compile(r"^tools\.\d+: Input tag '([\w-]{1,128})' found using 'type'")


class Finding(NamedTuple):
    kind: Literal["beta", "field", "server_tool"]
    name: str

    @property
    def feature(self) -> str:
        """How logs and metrics name it: beta:effort-2025-11-24, field:context_management."""
        return f"{self.kind}:{self.name}"


def refused_features(status: int, message: str) -> tuple[Finding, ...]:
    """What a 400's message says the deployment lacks; () when it names nothing the gateway knows."""
    if status != 400:
        return ()
    found = _BETAS.search(message)
    if found is not None:
        return tuple(Finding("beta", beta_name(b)) for b in found.group(1).split(",") if beta_name(b))
    found = _FIELD.match(message)
    if found is not None:
        # A key of one tool (tools.3.strict) is a field of the profile's tools (tools.strict).
        return (Finding("field", _TOOL_INDEX.sub("tools.", found.group(1))),)
    found = _TOOL.match(message)
    if found is not None:
        return (Finding("server_tool", found.group(1)),)
    return ()
