"""Server-sent events: an incremental push decoder and the encoders the gateway writes.

The decoder works on bytes and decodes only whole lines, so a UTF-8 character split
across network reads is safe; it accepts LF, CRLF and CR line ends, comment lines and
multi-line `data:` fields, as the SSE specification says.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF: keep it for the next read.
            hold = buf.endswith(b"\r")
            body = buf[:-1] if hold else buf
            buf = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if hold else b"")
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 1 :]
        events: list[SSEEvent] = []
        for line in buf[:end].split(b"\n"):
            self._line(line, events)
        return events

    def finish(self) -> list[SSEEvent]:
        """End of stream: a held CR ends its line; an event without its blank line is dropped (per spec)."""
        events = self.feed(b"\n") if self._buf.endswith(b"\r") else []
        self._buf = b""
        self._event = None
        self._data = []
        return events

    @property
    def pending(self) -> bool:
        """True when part of an event has been read but not completed."""
        return bool(self._buf or self._data or self._event)

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data or self._event is not None:
                events.append(SSEEvent(self._event, "\n".join(self._data)))
            self._event = None
            self._data = []
            return
        if line[0] == 0x3A:  # ":" starts a comment
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # id and retry carry nothing the gateway uses; unknown fields are ignored per spec.


def encode_data(payload: object) -> bytes:
    """One `data:` event, as the OpenAI chunk protocol writes them."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(event: str, payload: object) -> bytes:
    """One named event, as the Anthropic Messages stream writes them."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
