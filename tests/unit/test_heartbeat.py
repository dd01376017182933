"""Heartbeat comments: only while the client has been sent nothing, never mid-event or mid-write.

On looptime's fake loop clock: every sleep is fast-forwarded, so the counts are exact and no test
waits or depends on how busy the machine is.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiohttp import web

from gateway.handlers.streaming import HEARTBEAT, Heartbeat

pytestmark = pytest.mark.looptime


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(data)


async def beats(seconds: float, *, between_events: bool = True, busy: bool = False) -> list[bytes]:
    recorder = Recorder()
    beat = Heartbeat(cast(web.StreamResponse, recorder), 0.05, lambda: between_events)
    beat.busy = busy
    try:
        await asyncio.sleep(seconds)
    finally:
        beat.stop()
    return recorder.writes


@pytest.mark.asyncio
async def test_a_quiet_stream_gets_heartbeats() -> None:
    writes = await beats(0.28)
    assert writes and set(writes) == {HEARTBEAT}
    assert len(writes) == 5, "one each 50 ms of 280 ms, on the loop's own clock"


@pytest.mark.asyncio
@pytest.mark.parametrize("state", [{"between_events": False}, {"busy": True}])
async def test_no_heartbeat_inside_an_event_or_while_a_write_is_in_progress(state: dict[str, Any]) -> None:
    assert await beats(0.28, **state) == []


@pytest.mark.asyncio
async def test_data_pushes_the_next_heartbeat_back() -> None:
    recorder = Recorder()
    beat = Heartbeat(cast(web.StreamResponse, recorder), 0.1, lambda: True)
    try:
        for _ in range(6):
            await asyncio.sleep(0.03)
            beat.last = beat.loop.time()
        assert recorder.writes == []
    finally:
        beat.stop()
