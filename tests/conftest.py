"""Session-wide test settings."""

from __future__ import annotations

import os

# Credential files must not be world-readable (the gateway refuses them), as in a pod; the
# tests and the processes they start create files the way a careful operator would.
os.umask(0o027)
