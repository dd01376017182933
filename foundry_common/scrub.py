"""The secret values the gateway holds, and scrubbing them out of text it relays or logs.

Pattern redaction (gateway.observability.logging) catches what looks like a secret; an upstream that
echoes the gateway's own key or token back in an error message need not make it look like
one. So every credential registers its values here as it loads them, and text that came
from an upstream is scrubbed of them before it reaches a client or a log line.

Kept per process and bounded: a token rotates every hour or so, and the last few values
are what an upstream could still echo.
"""

from __future__ import annotations

from collections import OrderedDict

REDACTED = "[redacted]"

_MAX_VALUES = 32  # a few upstreams, each with its current and previous credential
_MIN_LENGTH = 8  # shorter values would scrub ordinary words; no real key or token is this short

_values: OrderedDict[str, bytes] = OrderedDict()


def remember(value: str) -> None:
    """Register a secret the gateway now holds (an API key, a bearer token)."""
    if len(value) < _MIN_LENGTH:
        return
    _values[value] = value.encode("utf-8", "surrogateescape")
    _values.move_to_end(value)
    while len(_values) > _MAX_VALUES:
        _values.popitem(last=False)


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by [redacted]."""
    for value in _values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def scrub_bytes(data: bytes) -> bytes:
    """The same for bytes relayed as they came (a native stream's error event)."""
    for encoded in _values.values():
        if encoded in data:
            data = data.replace(encoded, REDACTED.encode())
    return data


def forget_all() -> None:
    """For tests."""
    _values.clear()
