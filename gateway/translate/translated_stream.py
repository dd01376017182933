"""A translated dialect's side of the stream relay, written once for every translator pair.

The relay (gateway/handlers/streaming.py) hands it each upstream read; it cuts the read into
whole SSE events and has the dialect's translator turn them into the client's events. What
stands before a failure in the same read is kept, in order, on the StreamError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

import orjson

from gateway.errors import GatewayError, StreamError
from gateway.sse import SSEDecoder

NOT_AN_OBJECT = "upstream sent an event that is not a JSON object"


def parsed_event(data: bytes) -> dict[str, Any]:
    """An upstream event's data, which must be a JSON object; a StreamError otherwise."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise StreamError("api_error", NOT_AN_OBJECT)
    return payload


class EventTranslator(Protocol):
    """A pair's stream translator: whole upstream events in, the client's encoded events out."""

    @property
    def stopped(self) -> bool: ...

    @property
    def delta_seen(self) -> bool: ...

    @property
    def usage(self) -> Mapping[str, Any]: ...

    @property
    def stop_reason(self) -> str | None: ...

    @property
    def response_id(self) -> str | None: ...

    def translate(self, complete: bytes, out: list[bytes]) -> None:
        """Append each event's output to `out` as it goes, so a StreamError keeps what came before."""
        ...


T = TypeVar("T", bound=EventTranslator)


class TranslatedStream(Generic[T]):
    """The StreamDialect of a translated dialect; a subclass says how its stream ends and fails."""

    __slots__ = ("_decoder", "_translator")

    pending = False  # only whole events are written: a heartbeat never lands inside one
    upstream_error = False  # an upstream error event becomes a StreamError, never passed on

    def __init__(self, translator: T, max_event_bytes: int) -> None:
        self._translator = translator
        self._decoder = SSEDecoder(max_event_bytes)

    @property
    def done(self) -> bool:
        return self._translator.stopped

    @property
    def first_token(self) -> bool:
        return self._translator.delta_seen

    @property
    def usage(self) -> dict[str, Any]:
        return dict(self._translator.usage)

    @property
    def stop_reason(self) -> str | None:
        return self._translator.stop_reason

    @property
    def response_id(self) -> str | None:
        return self._translator.response_id

    def feed(self, chunk: bytes) -> bytes:
        complete = self._decoder.complete(chunk)
        if complete is None:
            return b""
        out: list[bytes] = []
        try:
            self._translator.translate(complete, out)
        except StreamError as exc:
            exc.before = b"".join(out)  # what came before the failure in the same read still goes, in order
            raise
        return b"".join(out)

    async def completed(self) -> None:
        return None

    def ending(self) -> bytes:
        raise NotImplementedError

    def error(self, failure: GatewayError) -> bytes:
        raise NotImplementedError
