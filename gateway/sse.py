"""Server-sent events: an incremental push decoder and the encoders the gateway writes.

The decoder works on bytes and splits only at blank lines, so a UTF-8 character split
across network reads is safe; it accepts LF, CRLF and CR line ends, comment lines and
multi-line `data:` fields, as the SSE specification says. Data stays bytes: the next
step is a JSON parser, which takes bytes, so decoding it to text first would be waste.
"""

from __future__ import annotations

import re

import orjson

from gateway.errors import StreamError

# One event as Foundry frames every event: an `event:` line and one `data:` line (groups: name, data).
FRAMED_EVENT = rb"event: ([^\n]*)\ndata: ([^\n]*)(?:\n\n|\Z)"
_ONLY_FRAMED = re.compile(rb"(?:" + FRAMED_EVENT + rb")*+")


def only_framed_events(complete: bytes) -> bool:
    """True when `complete` (as `SSEDecoder.complete` returns it) holds nothing but events framed
    as Foundry frames them, so a pattern over FRAMED_EVENT reads every byte of it, in one pass;
    anything else (comments, multi-line data, other spacing) is left to `parse_events`."""
    return _ONLY_FRAMED.fullmatch(complete) is not None


# (event name or None, data): a plain tuple, because a stream decodes one per upstream event.
SSEEvent = tuple[str | None, bytes]


# The default bound on one event: far above any event Claude sends (deltas are small; a tool's
# input arrives in pieces), far below what would hurt the pod.
MAX_EVENT_BYTES = 4 * 1024 * 1024


class SSEDecoder:
    """Push decoder: bytes in as they arrive, whole events out.

    An unfinished event is held until its blank line, up to `max_event_bytes`: a stream with no
    blank lines would otherwise grow the buffer until the total timeout.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""  # everything after the last blank line: at most one unfinished event
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        complete = self.complete(chunk)
        return [] if complete is None else parse_events(complete)

    def complete(self, chunk: bytes) -> bytes | None:
        """The events this chunk completes, LF-framed, without the last blank line; None if none.

        For a reader that parses them its own way (the OpenAI stream translator); `feed` is this
        and `parse_events`.
        """
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF: keep it for the next read.
            hold = buf.endswith(b"\r")
            body = buf[:-1] if hold else buf
            buf = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if hold else b"")
        end = buf.rfind(b"\n\n")
        if end < 0:
            if len(buf) > self._max:
                raise StreamError("api_error", f"upstream sent an event over {self._max} bytes without ending it")
            self._buf = buf
            return None
        rest = buf[end + 2 :]
        if len(rest) > self._max:
            raise StreamError("api_error", f"upstream sent an event over {self._max} bytes without ending it")
        self._buf = rest
        return buf[:end]

    def finish(self) -> list[SSEEvent]:
        """End of stream: a held CR ends its line; an event without its blank line is dropped (per spec)."""
        events = self.feed(b"\n") if self._buf.endswith(b"\r") else []
        self._buf = b""
        return events

    @property
    def pending(self) -> bool:
        """True when part of an event has been read but not completed."""
        return bool(self._buf.strip(b"\r\n"))


class SSEWatcher(SSEDecoder):
    """A decoder for a relay that forwards the bytes untouched and needs only a few events.

    It returns the events named in `only`, in order, and of those in `once` just the first.
    Only the events whose bytes contain one of those names are decoded: the native relay
    watches four event types (and the first content delta) among hundreds of deltas.
    """

    __slots__ = ("_markers", "_once")

    def __init__(
        self, only: frozenset[str], once: frozenset[str] = frozenset(), max_event_bytes: int = MAX_EVENT_BYTES
    ) -> None:
        super().__init__(max_event_bytes)
        self._once = set(once)
        self._markers = {name: name.encode() for name in only | once}

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        complete = self.complete(chunk)
        if complete is None:
            return []
        found: dict[int, SSEEvent] = {}
        for name, marker in list(self._markers.items()):
            at = complete.find(marker)
            while at >= 0:
                start = complete.rfind(b"\n\n", 0, at)
                start = 0 if start < 0 else start + 2
                end = complete.find(b"\n\n", at)
                end = len(complete) if end < 0 else end
                event = _event(complete[start:end])
                if event is not None and event[0] == name:
                    found[start] = event
                    if name in self._once:
                        del self._markers[name]
                        break
                at = complete.find(marker, end)
        return [found[start] for start in sorted(found)]


def parse_events(complete: bytes) -> list[SSEEvent]:
    """The events of LF-framed, blank-line-separated blocks, as `SSEDecoder.complete` returns them."""
    events = []
    for block in complete.split(b"\n\n"):
        event = _event(block)
        if event is not None:
            events.append(event)
    return events


def _event(block: bytes) -> SSEEvent | None:
    """One event from the lines between two blank lines; None when it carries neither event nor data."""
    if block.startswith(b"event: "):
        # What Foundry sends: `event: NAME` then one `data: JSON` line.
        nl = block.find(b"\n")
        if nl > 0 and block.startswith(b"data: ", nl + 1) and block.find(b"\n", nl + 1) < 0:
            return block[7:nl].decode("utf-8", "replace"), block[nl + 7 :]
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # blank, or ":" starting a comment
            continue
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        # id and retry carry nothing the gateway uses; unknown fields are ignored per spec.
    if not data and event is None:
        return None
    return event, b"\n".join(data)


def encode_data(payload: object) -> bytes:
    """One `data:` event, as the OpenAI chunk protocol writes them."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(event: str, payload: object) -> bytes:
    """One named event, as the Anthropic Messages stream writes them."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
