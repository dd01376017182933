"""Config reloads with the start-up heap frozen (gc.freeze): the replaced configs are freed, not kept."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.__main__ import settle_heap
from gateway.app import create_app
from gateway.app_keys import LIVE
from gateway.config import load_config
from gateway.reload import reload_once


def config(routes: int, version: int) -> dict[str, Any]:
    return {
        "upstreams": [
            {
                "name": "east",
                "base_url": "https://east.services.ai.azure.com/anthropic",
                "auth": {"type": "api_key", "key_env": "RELOAD_TEST_KEY"},
            }
        ],
        "routes": [
            {"model": f"model-{i}", "targets": [{"upstream": "east", "deployment": f"deployment-{i}-v{version}"}]}
            for i in range(routes)
        ],
    }


@pytest.mark.asyncio
async def test_reloads_do_not_grow_the_heap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELOAD_TEST_KEY", "not-a-real-key")
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config(10, 0)))
    app = create_app(load_config(path))
    thresholds = gc.get_threshold()
    settle_heap()  # as __main__ does after start-up
    try:

        async def reload(times: int, start: int) -> None:
            for version in range(start, start + times):
                path.write_text(yaml.safe_dump(config(10, version)))
                assert await reload_once(app, path)
                assert app[LIVE].runtime.config.routes[0].targets[0].deployment == f"deployment-0-v{version}"

        await reload(20, 1)  # the frozen start-up config replaced
        tracemalloc.start()
        await reload(20, 21)  # traced from here: one live config in each measure below
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        await reload(100, 41)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    # A config of 10 routes holds about 10 KiB; 100 replaced ones kept would be a megabyte. What
    # does remain is tens of bytes a reload (log lines' formatting caches), under this bound.
    assert grown < 128 * 1024, f"100 reloads grew the heap by {grown} bytes"
