"""What the capability profile check costs one request, in CPU instructions under callgrind.

`fit_request` on Claude Code's request (its betas, and 20 tools or none) against an Azure-hosted
route, where the check runs and finds nothing to change, and an Anthropic-hosted one, which skips
it: each counted over A and then B calls in a process of its own, (B - A) / (B - A calls) per call,
start-up cancelled out. Run by make bench-instructions after the gateway rows.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.instructions import CLAUDE_CODE_BETAS  # noqa: E402

CALLS = (2_000, 22_000)

_SCRIPT = """
import sys
from gateway.capabilities.fit import fit_request
from gateway.capabilities.profile import RouteProfile, profile_for
from gateway.config import CapabilityChanges
schema = {{"type": "object", "properties": {{"path": {{"type": "string"}}}}, "required": ["path"]}}
body = {{"model": "m", "max_tokens": 1000, "messages": [{{"role": "user", "content": "w0 w1 w2"}}],
        "tools": [{{"name": f"Tool{{i}}", "description": "A tool.", "input_schema": schema}} for i in range({tools})]}}
profile = RouteProfile.of([profile_for("{hosting}", CapabilityChanges())])
for _ in range({calls}):
    fit_request(body, "{betas}", profile, "r", 3000)
"""


def instructions(hosting: str, tools: int, calls: int, work: Path) -> int:
    out = work / f"callgrind.{hosting}.{tools}.{calls}"
    script = _SCRIPT.format(hosting=hosting, tools=tools, calls=calls, betas=CLAUDE_CODE_BETAS)
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    found = re.search(r"summary: (\d+)", out.read_text())
    assert found is not None, f"no callgrind summary in {out}"
    return int(found.group(1))


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="fgw-profile-check-"))
    for tools in (20, 0):
        per_call = {}
        for hosting in ("anthropic", "azure"):
            low, high = (instructions(hosting, tools, calls, work) for calls in CALLS)
            per_call[hosting] = (high - low) / (CALLS[1] - CALLS[0])
        check = per_call["azure"] - per_call["anthropic"]
        print(f"{tools} tools: the profile check costs {check / 1000:.1f} k instructions a request "
              f"(fit_request {per_call['azure'] / 1000:.1f} k on an Azure-hosted route, "
              f"{per_call['anthropic'] / 1000:.1f} k on an Anthropic-hosted one)", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
