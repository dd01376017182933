"""A translated dialect's side of the stream relay, written once for every translator pair.

The relay (gateway/handlers/streaming.py) hands it each upstream read; it cuts the read into
whole SSE events and has the dialect's translator turn them into the client's events. What
stands before a failure in the same read is kept, in order, on the StreamError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import orjson

from gateway.errors import GatewayError, StreamError
from gateway.sse import FRAMED_EVENT, SSEDecoder, only_framed_events, parse_events

NOT_AN_OBJECT = "upstream sent an event that is not a JSON object"

# Text and thinking deltas, nearly every event of a stream, in the exact bytes Anthropic's API
# writes (compact JSON, its key order), need not be parsed: their text is already a JSON string
# literal, which JSON_STRING checks is well-formed, and a translator splices it into its own
# event as it is. Anything else is parsed: the pattern decides speed, never what a client gets.
# A JSON string as orjson.loads would accept it: no raw control character, only JSON's escapes,
# and no escaped surrogate (orjson refuses a lone one; an event holding any is parsed instead).
_JSON_STRING = rb'"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4})*+"'
# Groups, for a delta in Anthropic's own bytes: its data, block index, delta kind (text, thinking)
# and string; else, for any framed event: its name and data.
DELTA_OR_EVENT = re.compile(
    rb'event: content_block_delta\ndata: (\{"type":"content_block_delta","index":(\d+),'
    rb'"delta":\{"type":"(text|thinking)_delta","\3":(' + _JSON_STRING + rb")\}\})(?:\n\n|\Z)"
    rb"|" + FRAMED_EVENT
)
# Stands in for a delta's text while an event's template is rendered.
SLOT = "\u2063slot\u2063"
SLOT_JSON = b'"' + SLOT.encode() + b'"'


def is_utf8(raw: bytes) -> bool:
    """Whether a string literal off the wire decodes: orjson would refuse the event otherwise."""
    if raw.isascii():
        return True
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def parsed_event(data: bytes) -> dict[str, Any]:
    """An upstream event's data, which must be a JSON object; a StreamError otherwise."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise StreamError("api_error", NOT_AN_OBJECT)
    return payload


class WireTranslator:
    """A pair's stream translator: whole upstream events in, the client's encoded events out.

    How it reads the wire is written once, here: a read framed as Foundry frames events goes
    through DELTA_OR_EVENT, its text and thinking deltas in Anthropic's own bytes offered to
    `splice` unparsed; every other event, and every delta `splice` declines, is parsed and goes to
    `feed`. So the splice decides speed, never what a client gets or which error ends a stream.
    A pair supplies `feed`, `splice` and what the relay reads of its progress."""

    __slots__ = ()
    stopped: bool  # message_stop came: the stream is complete (a slot of each pair's)
    delta_seen: bool  # a content delta went to the client: the time to first token is now

    @property
    def usage(self) -> Mapping[str, Any]:
        raise NotImplementedError

    @property
    def stop_reason(self) -> str | None:
        raise NotImplementedError

    @property
    def response_id(self) -> str | None:
        raise NotImplementedError

    def feed(self, event_type: str | None, data: dict[str, Any]) -> bytes:
        """One parsed upstream event in, the client's events for it out (b"" for none)."""
        raise NotImplementedError

    def splice(self, index: int, kind: bytes, text: bytes) -> bytes | None:
        """A delta's events with its string (`kind` text or thinking, of block `index`) as it came
        off the wire, well-formed and UTF-8; None where `feed` must decide."""
        raise NotImplementedError

    def translate(self, complete: bytes, out: list[bytes]) -> None:
        """Whole SSE events off the wire (`SSEDecoder.complete`) in; each one's events appended to
        `out` as it goes, so what came before a StreamError in the same read is kept, in order."""
        if not only_framed_events(complete):
            for name, data in parse_events(complete):
                if data:
                    out.append(self.feed(name, parsed_event(data)))
            return
        for delta, index, kind, text, event, data in DELTA_OR_EVENT.findall(complete):
            if text:
                spliced = self.splice(int(index), kind, text) if is_utf8(text) else None
                if spliced is not None:
                    out.append(spliced)
                    continue
                event, data = b"content_block_delta", delta
            if data:
                out.append(self.feed(event.decode("utf-8", "replace"), parsed_event(data)))


T = TypeVar("T", bound="WireTranslator")


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
