"""The refresh loop outlives any number of failures, and liveness fails if a loop ends all the same."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from token_sidecar.config import SidecarConfig, TokenSpec
from token_sidecar.health import create_health_app
from token_sidecar.metrics import SidecarMetrics
from token_sidecar.refresher import TokenRefresher


class Unreachable:
    """A credential whose every request fails, as during an Entra outage or with an expired secret."""

    async def __aenter__(self) -> Unreachable:
        return self

    async def __aexit__(self, *_: Any) -> None:
        return None

    async def get_token_info(self, *_: Any, **__: Any) -> Any:
        raise ConnectionError("Entra ID is unreachable")


def refresher(tmp_path: Path, **settings: Any) -> TokenRefresher:
    spec = TokenSpec(tenant_id="t", client_id="c", client_secret_env="SECRET", output=tmp_path / "token.json")
    config = SidecarConfig(tokens=[spec], retry_initial_seconds=0.01, retry_max_seconds=0.02, **settings)
    return TokenRefresher(
        spec,
        config,
        SidecarMetrics(CollectorRegistry()),
        credential_factory=lambda *_: Unreachable(),  # type: ignore[arg-type]
        rng=random.Random(1),
    )


@pytest.mark.asyncio
async def test_the_loop_keeps_trying_past_a_thousand_failures(tmp_path: Path) -> None:
    r = refresher(tmp_path)
    r.failures = 1_100  # some 64 hours into an outage at the default backoff: 2 ** 1100 overflows a float
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    try:
        while r.failures < 1_110:
            await asyncio.sleep(0.01)
            assert not task.done(), task.exception() if task.done() else None
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert 0 < r.next_delay(succeeded=False) <= 0.02


@pytest.mark.asyncio
async def test_liveness_fails_once_a_refresh_loop_has_ended(tmp_path: Path) -> None:
    r = refresher(tmp_path)
    client = TestClient(TestServer(create_health_app([r], 0, CollectorRegistry())))
    await client.start_server()
    try:
        r.task = asyncio.create_task(asyncio.sleep(3600))
        assert (await client.get("/healthz")).status == 200
        r.task.cancel()
        await asyncio.sleep(0)
        response = await client.get("/healthz")
        assert response.status == 503
        assert await response.json() == {"status": "refresh loop stopped", "tokens": ["default"]}
    finally:
        await client.close()
