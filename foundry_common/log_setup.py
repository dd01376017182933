"""structlog set-up for both containers: JSON lines for clusters, readable lines for people, secrets
redacted in both."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from foundry_common import scrub
from foundry_common.scrub import REDACTED

_SECRET_KEYS = re.compile(r"(authorization|api[-_]?key|secret|password|token$|access_token|cookie)", re.I)
# Bearer tokens, JWTs and key-like headers inside free text (exception messages, say).
_SECRET_TEXT = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|((?:api[-_]?key|x-api-key|client_secret|access_token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"
)


_secret_key_cache: dict[str, bool] = {}


def _redact_text(text: str) -> str:
    # Every match of _SECRET_TEXT contains one of these words; text with none (nearly all of it)
    # is passed over by five substring tests instead of the full pattern, once most of a line's cost.
    lowered = text.lower()
    if not ("key" in lowered or "token" in lowered or "bearer" in lowered or "eyj" in lowered or "secret" in lowered):
        return text
    return _SECRET_TEXT.sub(lambda m: (m.group(1) or m.group(2) or "") + REDACTED, text)


def _classify_key(key: str) -> bool:
    """Whether a field of this name holds a secret; the answer is cached (redact_secrets reads the cache)."""
    secret = bool(_SECRET_KEYS.search(key)) and key != "token_file"
    if len(_secret_key_cache) < 1024:  # field names are few; the bound only guards against a bug
        _secret_key_cache[key] = secret
    return secret


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: code must not log secrets, and this catches what slips through."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            secret = _secret_key_cache.get(key)  # read inline: every access-log line comes here
            if secret is None:
                secret = _classify_key(key)
            if secret:
                event_dict[key] = REDACTED
            elif len(value) >= 12:
                event_dict[key] = _redact_text(value)
    return event_dict


def redact_known_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Every value the gateway holds as a secret, wherever it appears in a line (an upstream's echo)."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = scrub.scrub(value)
    return event_dict


def escape_controls(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Control characters (a percent-encoded ESC in a path, say) written as escapes, for the console."""
    for key, value in event_dict.items():
        if isinstance(value, str) and not value.isprintable():
            event_dict[key] = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    numeric = getattr(logging, level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
        redact_known_secrets,
    ]
    # JSON escapes what a caller sends; a terminal would run it: the console's lines escape it here.
    escaped: list[Any] = [] if fmt == "json" else [escape_controls]
    if fmt == "json":
        renderer: Any = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory: Any = structlog.BytesLoggerFactory(sys.stdout.buffer)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=[*shared, *escaped, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library: same format, same redaction, one stream.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared[:-2],
                structlog.stdlib.add_logger_name,
                redact_secrets,
                redact_known_secrets,
                *escaped,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _stdlib_renderer(fmt)],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # azure-identity repeats each failure (with the raw response) that the sidecar already logs.
    logging.getLogger("azure").setLevel(max(numeric, logging.ERROR))


def _stdlib_renderer(fmt: str) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj).decode())
    return structlog.dev.ConsoleRenderer(colors=False)
