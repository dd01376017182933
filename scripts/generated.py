"""Files generated from the code: write them, or with --check report the stale ones (the tests do)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def emit(files: Mapping[Path, str], script: str) -> int:
    """Write each file, or with --check in argv return 1 and name the ones that differ."""
    if "--check" not in sys.argv:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return 0
    stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text() != text]
    if stale:
        print(f"stale: {', '.join(stale)}; run python {script}", file=sys.stderr)
        return 1
    return 0
