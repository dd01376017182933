"""checkov on every rendered scenario: no failed check, and every skipped one says why."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.chart.render import CHART, SCENARIOS, helm
from tests.harness import ROOT

CHECKOV = ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"


@pytest.mark.parametrize("values", SCENARIOS, ids=[p.name.removesuffix("-values.yaml") for p in SCENARIOS])
def test_checkov_passes(values: Path, tmp_path: Path) -> None:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make tools` installs it"
    rendered = helm("template", "fgw", str(CHART), "--namespace", "ai", "-f", str(values))
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered.stdout)
    result = subprocess.run(
        [str(CHECKOV), "-f", str(manifest), "--framework", "kubernetes", "--quiet", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    results = report["results"]
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']})" for c in results["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 50, "checkov really checked the objects"
    for skipped in results.get("skipped_checks", []):
        assert len(skipped.get("suppress_comment", "")) > 20, f"{skipped['check_id']} is skipped without a reason"
