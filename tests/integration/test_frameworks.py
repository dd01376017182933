"""Python frameworks' structured outputs on the native dialect (tests/clients/python, their own venv):
LlamaIndex's structured_predict and DSPy's JSON adapter send output_config.format. Where the
route's deployments have native structured outputs it is relayed; where they lack it (Azure-hosted,
as the emulator's default resource refuses it) the gateway emulates it, and each framework parses
the object it asked for either way."""

from __future__ import annotations

import subprocess

import jsonschema
import orjson
import pytest

from devtools.harness import ROOT
from tests.integration.conftest import CLIENT_KEY, Stack

PYTHON = ROOT / "tests" / "clients" / "python" / ".venv" / "bin" / "python"
SCRIPT = ROOT / "tests" / "clients" / "python" / "frameworks.py"


def run(stack: Stack, scenario: str, model: str) -> dict[str, object]:
    assert PYTHON.exists(), "make tools installs the Python frameworks (make py-clients)"
    done = subprocess.run(
        [str(PYTHON), str(SCRIPT), scenario, stack.base, CLIENT_KEY, model],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(orjson.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("scenario", ["llamaindex-structured-predict", "dspy-json-adapter"])
@pytest.mark.parametrize(("model", "emulated"), [("claude-sonnet-4-5", True), ("claude-sonnet-4-6", False)],
                         ids=["azure-hosted", "anthropic-hosted"])  # fmt: skip
def test_native_structured_outputs_from_frameworks(stack: Stack, scenario: str, model: str, emulated: bool) -> None:
    got = run(stack, scenario, model)
    assert got.get("ok") == {"city": "example", "population": 1}, got
    sent = stack.last_request()["body"]
    schema = sent["tools"][-1]["input_schema"] if emulated else sent["output_config"]["format"]["schema"]
    jsonschema.validate(got["ok"], schema)
    assert ("format" in sent.get("output_config", {})) is not emulated
    assert ("structured_outputs_emulated" in stack.last_access_line().get("adjusted", ())) is emulated
