"""Which deployment a session belongs on: the one that holds its prompt cache.

A session is named by what its client sends (Claude Code's session header, OpenAI's
prompt_cache_key or user, Anthropic's metadata.user_id), else by its cacheable prefix. Weighted
rendezvous hashing maps it to a target, so every replica agrees without sharing state and
removing a target moves only its own sessions; a session moved for want of quota is remembered
where it went, so it stays there.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import orjson

SESSIONS_KEPT = 65536  # at most about 300 bytes each (a key of up to 128): ~20 MB, a day's sessions of a large team


class Placeable(Protocol):
    """What affinity needs of a target: a stable id and its weight."""

    @property
    def affinity_id(self) -> bytes: ...

    @property
    def weight(self) -> int: ...


T = TypeVar("T", bound=Placeable)


def _named(value: Any) -> bytes | None:
    if isinstance(value, str) and value:
        return value.encode("utf-8", "replace")
    return None


def session_key(header: str | None, client_body: Mapping[str, Any], messages_body: Mapping[str, Any]) -> bytes | None:
    """A key naming the request's session, or None when it names none and has no cacheable prefix.
    The client's own names come first: a short one is its own key (Claude Code's header is at most
    128 printable characters), a longer one its 16-byte digest; the prefix hash costs a serialisation."""
    if header:  # Claude Code's, the common case
        return header.encode("ascii", "replace")
    metadata = client_body.get("metadata")
    named = (
        _named(client_body.get("prompt_cache_key"))
        or (_named(metadata.get("user_id")) if isinstance(metadata, Mapping) else None)
        or _named(client_body.get("user"))
    )
    if named is not None:
        return named if len(named) <= 128 else hashlib.blake2b(named, digest_size=16, person=b"session").digest()
    prefix = cacheable_prefix(messages_body)
    return None if prefix is None else hashlib.blake2b(prefix, digest_size=16, person=b"prefix").digest()


def cacheable_prefix(body: Mapping[str, Any]) -> bytes | None:
    """The tools and system prompt up to the first cache breakpoint (all of them when none is
    marked), in Claude's prefix order: what a prompt cache would hold for every turn of a session."""
    parts: list[Any] = []
    system = body.get("system")
    blocks = system if isinstance(system, list) else ([] if system is None else [system])
    for part in [*(body.get("tools") or ()), *blocks]:
        parts.append(part)
        if isinstance(part, dict) and part.get("cache_control"):
            break
    if not parts:
        return None
    try:
        return orjson.dumps(parts)
    except orjson.JSONEncodeError:
        return None  # nested past what JSON may carry upstream: the request is refused when it is encoded


def rendezvous(key: bytes, targets: Sequence[T]) -> list[T]:
    """`targets` in the session's order of preference: weighted highest-random-weight hashing."""
    if len(targets) == 1:
        return list(targets)
    return sorted(targets, key=lambda t: _score(key, t), reverse=True)


def _score(key: bytes, target: Placeable) -> float:
    digest = hashlib.blake2b(key + target.affinity_id, digest_size=8).digest()
    unit = (int.from_bytes(digest, "big") + 0.5) / 2.0**64  # in (0, 1)
    return -target.weight / math.log(unit)


class SessionEntry:
    __slots__ = ("cached_tokens", "target")

    def __init__(self, target: bytes, cached_tokens: int = 0) -> None:
        self.target = target  # the affinity_id it was last sent to
        self.cached_tokens = cached_tokens  # input its last answer read or wrote to that target's cache


class Sessions:
    """Where each recent session went, and how much of its prompt that target has cached; the
    least recently seen are forgotten past `kept`."""

    __slots__ = ("_entries", "kept")

    def __init__(self, kept: int = SESSIONS_KEPT) -> None:
        self._entries: OrderedDict[bytes, SessionEntry] = OrderedDict()
        self.kept = kept

    def get(self, key: bytes) -> SessionEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def add(self, key: bytes, target: bytes) -> SessionEntry:
        """A session first seen here, sent to `target`. (A session seen before is moved by changing its entry.)"""
        entry = self._entries[key] = SessionEntry(target)
        if len(self._entries) > self.kept:
            self._entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._entries)
