"""Running a coding agent's command line the way people run it in CI: no terminal, a home of its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from devtools.harness import ROOT

# Codex CLI is pinned with the JavaScript clients (tests/clients/js); opencode and Qwen Code by the
# Makefile's AGENTS, in a folder of their own.
BINS = (ROOT / "tests/clients/js/node_modules/.bin", ROOT / ".tools/agents/node_modules/.bin")


def run_agent(name: str, args: list[str], workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`name` with `args`, in `workdir`, with only PATH and `env`."""
    binary = next((b / name for b in BINS if (b / name).exists()), None)
    assert binary is not None, f"make tools installs {name} (make js-clients, make agents)"
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
