"""Writing the token file atomically: a reader sees the old file or the new one, never a part of either."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from foundry_common.token_file import Token, parse_token


class RefusedToken(ValueError):
    """A token not worth writing: it would replace a usable file with a useless one."""


def write_token(path: Path, token: Token, mode: int = 0o640, now: float | None = None) -> None:
    """Write `<dir>/.<name>.tmp.<random>` with `mode`, fsync it, rename it over `path`.

    Refuses an empty or already expired token, so a valid file is never replaced by one.
    """
    if not token.access_token or token.expires_on <= (time.time() if now is None else now):
        raise RefusedToken("refusing to write an empty or expired token")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp.")
    try:
        os.fchmod(fd, mode)  # mkstemp creates 0600; the gateway's group must read it
        data = token.payload()
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_token(path: Path) -> Token | None:
    """The token already in place (the volume outlives a container restart), or None."""
    try:
        return parse_token(path.read_bytes())
    except (OSError, ValueError):
        return None
