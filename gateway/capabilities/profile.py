"""Capability profiles: what the deployments of an upstream have, as rules over beta names, body
fields and server tool types. Built once per config load; asked per request, with answers for
betas and tools remembered (clients send the same few names again and again)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from gateway.config import CapabilityChanges

Hosting = Literal["azure", "anthropic"]

# The body field of native structured outputs; a profile that lacks it has them emulated with a tool.
STRUCTURED_OUTPUTS = "output_config.format"
STRICT_TOOLS = "tools.strict"

# What each hosting option lacks by default (Microsoft Learn, "Claude in Microsoft Foundry", late 2026;
# docs/capabilities.md). The list has moved between doc revisions, which is why an upstream can change it.
_AZURE_LACKS_BETAS = ("files-api", "skills", "code-execution")
_AZURE_LACKS_FIELDS = (STRUCTURED_OUTPUTS, "container")
_AZURE_HAS_SERVER_TOOLS = ("web_search_20250305", "web_fetch_20250910")
_AZURE_LACKS_SERVER_TOOLS = ("web_search_*", "web_fetch_*", "code_execution_*")

# Remembered answers per kind, so a profile's memory stays bounded whatever names clients send.
_MEMORY = 1024


def beta_name(value: str) -> str:
    """A beta as a name to compare: what clients write as `"Effort-2025-11-24" ; q=1` is effort-2025-11-24."""
    return value.split(";", 1)[0].strip().strip("\"'").strip().lower()


def family(beta: str) -> str:
    """effort-2025-11-24 -> effort: a dated beta's family."""
    head, _, tail = beta.rpartition("-")
    while head and tail.isdigit():
        beta, (head, _, tail) = head, head.rpartition("-")
    return beta


class BetaFit(NamedTuple):
    """An anthropic-beta value fitted to a route: what to send, what was dropped, and their families."""

    sent: str | None
    dropped: tuple[str, ...]
    families: tuple[str, ...]


@dataclass(slots=True)
class Rules:
    """First match wins: (pattern, lacking). A name no rule matches is had."""

    rules: tuple[tuple[re.Pattern[str], bool], ...]
    remembered: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, ordered: Iterable[tuple[Iterable[str], bool]], *, by_family: bool = False) -> Rules:
        rules = []
        for patterns, lacking in ordered:
            for pattern in patterns:
                name = beta_name(pattern) if by_family else pattern.strip()
                # A beta's family (effort) names each of its dated versions (effort-2025-11-24).
                regex = fnmatch.translate(name)
                if by_family:
                    regex = f"(?:{regex})|(?:{fnmatch.translate(name + '-*')})"
                rules.append((re.compile(regex), lacking))
        return cls(tuple(rules))

    @property
    def may_lack(self) -> bool:
        return any(lacking for _, lacking in self.rules)

    def lacks(self, name: str) -> bool:
        known = self.remembered.get(name)
        if known is not None:
            return known
        lacking = next((lacks for pattern, lacks in self.rules if pattern.match(name)), False)
        if len(self.remembered) < _MEMORY:
            self.remembered[name] = lacking
        return lacking


@dataclass(slots=True)
class Profile:
    """What one upstream's deployments have. `fields` lacking are explicit dotted paths (a finite set:
    a request is checked for each); betas and server tools are rules, asked name by name."""

    hosting: Hosting
    betas: Rules
    server_tools: Rules
    lacks_fields: frozenset[str]

    @property
    def complete(self) -> bool:
        """Lacks nothing: a request needs no fitting."""
        return not self.betas.may_lack and not self.server_tools.may_lack and not self.lacks_fields


def profile_for(hosting: Hosting, changes: CapabilityChanges) -> Profile:
    """A hosting option's default profile with an upstream's changes. Precedence: the upstream's add,
    then its remove, then the default's has, then the default's lacks."""
    azure = hosting == "azure"
    betas = changes.betas
    if betas.only is not None:
        beta_rules = Rules.of([(betas.only, False), (["*"], True)], by_family=True)
    else:
        beta_rules = Rules.of(
            [(betas.add, False), (betas.remove, True), (_AZURE_LACKS_BETAS if azure else (), True)], by_family=True
        )
    tool_rules = Rules.of(
        [
            (changes.server_tools.add, False),
            (changes.server_tools.remove, True),
            (_AZURE_HAS_SERVER_TOOLS if azure else (), False),
            (_AZURE_LACKS_SERVER_TOOLS if azure else (), True),
        ]
    )
    fields = set(_AZURE_LACKS_FIELDS if azure else ())
    fields = (fields | set(changes.fields.remove)) - set(changes.fields.add)
    return Profile(hosting, beta_rules, tool_rules, frozenset(fields))


@dataclass(slots=True)
class RouteProfile:
    """What every deployment of a route has: a route lacks what any of its upstreams lacks, so one
    fitted request serves each of its targets (and reads the same prompt cache prefix on each).
    What Foundry's refusals taught it is added (`learn`) and kept until the next config load."""

    profiles: tuple[Profile, ...]
    lacks_fields: frozenset[str] = frozenset()
    complete: bool = True
    learned_betas: set[str] = field(default_factory=set)
    _beta_fits: dict[str, BetaFit] = field(default_factory=dict)  # by anthropic-beta value, as clients repeat it
    # Worked out from the above once (and when it learns), for the check every request makes.
    lacks_structured_outputs: bool = False
    other_fields: tuple[tuple[str, str], ...] = ()  # the other lacking fields, as (first key, whole path)
    looks_at_tools: bool = False  # strict tools or some server tools are lacking: every request's tools are looked at

    def __post_init__(self) -> None:
        self._derive()

    def _derive(self) -> None:
        self.lacks_structured_outputs = STRUCTURED_OUTPUTS in self.lacks_fields
        others = sorted(self.lacks_fields - {STRUCTURED_OUTPUTS})
        self.other_fields = tuple((path.partition(".")[0], path) for path in others)
        self.looks_at_tools = self.lacks_structured_outputs or any(p.server_tools.may_lack for p in self.profiles)

    @classmethod
    def of(cls, profiles: Sequence[Profile]) -> RouteProfile:
        unique: list[Profile] = []
        for profile in profiles:
            if all(profile is not seen for seen in unique):
                unique.append(profile)
        fields = frozenset().union(*(p.lacks_fields for p in unique))
        return cls(tuple(unique), fields, all(p.complete for p in unique))

    def fit_betas(self, header: str) -> BetaFit:
        """The anthropic-beta value to send: as written when nothing is lacking, else each kept beta by its
        plain name. Remembered by value (bounded): a client sends the same one on every request."""
        known = self._beta_fits.get(header)
        if known is not None:
            return known
        kept: list[str] = []
        dropped: list[str] = []
        for beta in (beta_name(b) for b in header.split(",")):
            if beta:
                (dropped if self.lacks_beta(beta) else kept).append(beta)
        fit = BetaFit((",".join(kept) or None) if dropped else header, tuple(dropped), tuple(map(family, dropped)))
        if len(self._beta_fits) < _MEMORY:
            self._beta_fits[header] = fit
        return fit

    def lacks_beta(self, name: str) -> bool:
        return name in self.learned_betas or any(p.betas.lacks(name) for p in self.profiles)

    def lacks_server_tool(self, kind: str) -> bool:
        return any(p.server_tools.lacks(kind) for p in self.profiles)

    def learn(self, kind: str, name: str) -> None:
        """A beta or body field Foundry refused for one of the route's deployments: lacking from now on."""
        if kind == "beta":
            self.learned_betas.add(name)
            self._beta_fits.clear()
        elif kind == "field":
            # Strict tools are part of structured outputs: a deployment that refuses one lacks both.
            self.lacks_fields = self.lacks_fields | {STRUCTURED_OUTPUTS if name == STRICT_TOOLS else name}
            self._derive()
        self.complete = False

    @property
    def hosting(self) -> str:
        return "/".join(sorted({p.hosting for p in self.profiles}))
