"""The chart's alerts: valid for promtool, and each one unit-tested firing and not firing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from devtools.harness import ROOT

ALERTS = ROOT / "helm" / "foundry-gateway" / "files" / "alerts.yaml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make tools` installs Debian's prometheus package"
    return subprocess.run(
        [binary, *args], cwd=UNIT_TESTS.parent, capture_output=True, text=True, timeout=60, check=False
    )


def test_rules_check() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


def test_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", UNIT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet_with_a_runbook() -> None:
    alerts = {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing = {c["alertname"] for t in tests for c in t["alert_rule_test"] if c["exp_alerts"]}
    quiet = {c["alertname"] for t in tests for c in t["alert_rule_test"] if not c["exp_alerts"]}
    assert firing == set(alerts) and quiet == set(alerts)
    for name, rule in alerts.items():
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert rule["labels"]["severity"] in ("warning", "critical")
