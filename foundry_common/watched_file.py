"""A small file re-read only when it changed: credentials, keys, the config file.

Kubernetes updates a mounted Secret or ConfigMap by swapping a symlink, so a change shows as a
new inode, not a write: identity is what `stat` says after following the link.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path


class WorldReadable(OSError):
    """A credential file anyone on the node could read or write: refused, so the mistake is noticed."""


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is rewritten or its (Kubernetes ..data) symlink is swapped."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class WatchedFile:
    """Re-reads a small file only when it changed, checking at most every `recheck` seconds."""

    __slots__ = ("_checked_at", "_clock", "_identity", "_secret", "path", "recheck")

    def __init__(
        self, path: Path, recheck: float, clock: Callable[[], float] = time.monotonic, *, secret: bool = True
    ) -> None:
        self.path = path
        self._secret = secret  # a secret file must not be world-readable; public keys may be
        self.recheck = recheck
        self._clock = clock
        self._checked_at = float("-inf")
        self._identity: tuple[int, int, int, int] | None = None

    def changed(self, force: bool = False) -> bytes | None:
        """The new content when the file changed since the last read; None when it did not.

        Raises OSError when the file cannot be read (it is then re-read on the next check).
        """
        now = self._clock()
        if not force and now - self._checked_at < self.recheck:
            return None
        self._checked_at = now
        try:
            st = os.stat(self.path)  # follows symlinks: a swapped ..data link changes the inode
        except OSError:
            self._identity = None
            raise
        identity = file_identity(st)
        if identity == self._identity and not force:
            return None
        # Readable by anyone leaks the secret; writable by anyone lets them swap in their own.
        if self._secret and st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
            self._identity = None
            which = "world-readable" if st.st_mode & stat.S_IROTH else "world-writable"
            raise WorldReadable(f"{which} (mode {stat.S_IMODE(st.st_mode):04o})")
        content = self.path.read_bytes()
        self._identity = identity
        return content

    def invalidate_identity(self) -> None:
        """Forget what was read, so the next check reads again even if the file looks unchanged."""
        self._identity = None
