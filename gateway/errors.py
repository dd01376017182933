"""Errors a client can see, and how each API dialect spells them.

Handlers raise `GatewayError`; the error middleware renders it in the dialect of the
endpoint that was called, so the OpenAI and Anthropic SDKs each raise their own
typed exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Dialect(Enum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    RESPONSES = "responses"  # OpenAI's Responses API: its errors are spelled as OpenAI's


# Anthropic's error type for each status it documents; the OpenAI rendering reuses them
# as `code` so a caller can still tell an overload from a rate limit.
ANTHROPIC_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_OPENAI_TYPES: Mapping[str, str] = {
    "invalid_request_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "billing_error": "insufficient_quota",
}


# The types Anthropic documents. An upstream's own type outside this set is not passed on: it
# would become a metric label (unbounded series) and a client's error class (unknown to its SDK).
KNOWN_ERROR_TYPES = frozenset(ANTHROPIC_ERROR_TYPES.values())

# Longest piece of a caller's input quoted back in an error or a log line: enough to recognise
# it, never the whole of a 30 MB string.
ECHO_LIMIT = 200
# Longest message a client sees or a log line holds.
MESSAGE_LIMIT = 4096


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` as quoted in an error message, cut to `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        return repr(text[:limit]) + f" (cut; {len(text)} characters in all)"
    return repr(text)


def known_error_type(kind: object) -> str | None:
    return kind if isinstance(kind, str) and kind in KNOWN_ERROR_TYPES else None


def anthropic_type_for(status: int) -> str:
    if status in ANTHROPIC_ERROR_TYPES:
        return ANTHROPIC_ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


@dataclass
class GatewayError(Exception):
    """An error to show the client, in its own dialect.

    `message` must be safe to show: no credential, token or secret may ever be put here.
    """

    status: int
    message: str
    param: str | None = None
    error_type: str | None = None  # Anthropic error type; derived from status when None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every message may quote a caller's input or an upstream's text: none is passed on whole.
        if len(self.message) > MESSAGE_LIMIT:
            self.message = self.message[:MESSAGE_LIMIT] + " … (cut)"
        if self.param is not None and len(self.param) > ECHO_LIMIT:
            self.param = self.param[:ECHO_LIMIT]
        super().__init__(self.message)

    @property
    def anthropic_type(self) -> str:
        return self.error_type or anthropic_type_for(self.status)

    def openai_body(self) -> dict[str, Any]:
        kind = self.anthropic_type
        return {
            "error": {
                "message": self.message,
                "type": _OPENAI_TYPES.get(kind, "server_error" if self.status >= 500 else "invalid_request_error"),
                "param": self.param,
                "code": kind,
            }
        }

    def anthropic_body(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}
        if request_id:
            body["request_id"] = request_id
        return body

    def body(self, dialect: Dialect, request_id: str | None = None) -> dict[str, Any]:
        return self.anthropic_body(request_id) if dialect is Dialect.ANTHROPIC else self.openai_body()


class StreamError(Exception):
    """An upstream stream that cannot go on: an error event, events out of order, an unreadable event.

    `before` holds what the client is still owed from the same read, in order, ahead of the error.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.before = b""


def upstream_error_event(data: Mapping[str, Any]) -> StreamError:
    """An upstream stream's `error` event, as the StreamError a translated dialect ends with."""
    err = data.get("error")
    err = err if isinstance(err, dict) else {}
    message = err.get("message")
    return StreamError(
        known_error_type(err.get("type")) or "api_error",
        message if isinstance(message, str) and message else "upstream stream error",
    )


def invalid_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param)


# orjson writes at most this many levels of nesting; the gateway re-encodes every body it forwards.
MAX_JSON_DEPTH = 254


def too_deeply_nested() -> GatewayError:
    return invalid_request(
        f"Request body nests JSON more than {MAX_JSON_DEPTH} levels deep, the most this gateway forwards"
    )


def unauthenticated(message: str) -> GatewayError:
    return GatewayError(401, message, error_type="authentication_error")


def upstream_error_message(body: Any) -> tuple[str | None, str]:
    """The error type and message from an upstream error body.

    Foundry answers in Anthropic's shape, but Azure's front layer may answer auth and
    routing failures in its own (`{"error": {"code", "message"}}`).
    """
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            message = err.get("message")
            kind = known_error_type(err.get("type"))
            if kind is None:
                code = err.get("code")
                if isinstance(code, str) and message:
                    message = f"{code}: {message}"
            if isinstance(message, str) and message:
                return kind, message
        if isinstance(err, str):
            return None, err
    return None, "the upstream answered with an error and no readable message"
