"""Hot reload: a changed config file (Kubernetes swaps the mounted ConfigMap by symlink) is
validated and applied to new requests; in-flight ones keep the Runtime they started with.
A config that fails validation is refused, logged and counted, and the running one stays.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog
from aiohttp import web

from foundry_common.watched_file import WatchedFile
from gateway.app_keys import LIVE, RECORDER
from gateway.config import ConfigError, load_config
from gateway.served import Served, served_for

log = structlog.get_logger("gateway")


async def reload_once(app: web.Application, path: Path) -> bool:
    """Load, validate and apply the file; False (and the old config kept) when it is refused."""
    recorder = app[RECORDER]
    try:
        config = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        recorder.config_reloaded("refused")
        log.error("config_reload_refused", path=str(path), problems=[f"{k}: {r}" for k, r in exc.problems])
        return False
    live = app[LIVE]
    old = live.current
    if config == old.config:
        return True
    if config.server != old.config.server:
        log.warning("config_reload_server_unchanged", reason="server settings take effect at the next restart")
    new = served_for(config, recorder, old)
    live.replace(new)
    recorder.config_reloaded("applied")
    log.info(
        "config_reloaded",
        path=str(path),
        routes=sorted(r.model for r in config.routes),
        limiter="kept" if new.limiter is old.limiter else "replaced",
        response_store=_store_change(old, new),
    )
    return True


def _store_change(old: Served, new: Served) -> str:
    if new.store is old.store:
        return "kept" if new.store is not None else "off"
    if new.store is None:
        return "off"
    return "on" if old.store is None else "replaced"


async def watch(app: web.Application, path: Path, interval: float = 1.0) -> None:
    watched = WatchedFile(path, 0.0, secret=False)  # a ConfigMap holds no secret; the sleep paces the checks
    with contextlib.suppress(OSError):
        watched.changed()  # what was loaded at start
    while True:
        await asyncio.sleep(interval)
        try:
            changed = watched.changed()  # a stat, and a read only when the file changed
        except OSError:
            continue  # mid-swap, or gone for now: looked at again next time
        if changed is not None:
            await reload_once(app, path)
