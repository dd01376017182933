"""Running a coding agent's command line the way people run it in CI: no terminal, a home of its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from devtools.harness import ROOT

BIN = ROOT / "tests" / "clients" / "js" / "node_modules" / ".bin"


def run_agent(name: str, args: list[str], workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`name` (installed by npm ci in tests/clients/js) with `args`, in `workdir`, with only PATH and `env`."""
    binary = BIN / name
    assert binary.exists(), f"make tools installs {name} (npm ci in tests/clients/js)"
    return subprocess.run(
        [str(binary), *args],
        cwd=workdir,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
