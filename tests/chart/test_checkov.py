"""checkov on every rendered scenario: no failed check, and every skipped one says why (not --quiet:
its passed checks show that each scenario was checked).

One checkov run over all the scenarios' manifests (its start-up is most of its time), read back
per scenario by file."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from devtools.harness import ROOT
from tests.chart.render import CHART, SCENARIOS, helm

CHECKOV = ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"
NAMES = [p.name.removesuffix("-values.yaml") for p in SCENARIOS]


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[Any]]]:
    """Each scenario's passed, failed and skipped checks."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make tools` installs it"
    rendered_dir = tmp_path_factory.mktemp("checkov")
    for name, values in zip(NAMES, SCENARIOS, strict=True):
        rendered = helm("template", "fgw", str(CHART), "--namespace", "ai", "-f", str(values))
        assert rendered.returncode == 0, rendered.stderr
        (rendered_dir / f"{name}.yaml").write_text(rendered.stdout)
    result = subprocess.run(
        [str(CHECKOV), "-d", str(rendered_dir), "--framework", "kubernetes", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(result.stdout)
    results = (report[0] if isinstance(report, list) else report)["results"]
    by_scenario: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for kind in ("passed_checks", "failed_checks", "skipped_checks"):
        for check in results.get(kind, []):
            by_scenario[Path(check["file_path"]).stem][kind].append(check)
    return by_scenario


@pytest.mark.parametrize("name", NAMES)
def test_checkov_passes(checks: dict[str, dict[str, list[Any]]], name: str) -> None:
    results = checks[name]
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']})" for c in results["failed_checks"]]
    assert failed == []
    assert len(results["passed_checks"]) > 50, "checkov really checked the objects"
    for skipped in results["skipped_checks"]:
        reason = skipped.get("suppress_comment") or skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} is skipped without a reason"
