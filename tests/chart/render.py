"""Rendering the chart with the real helm binary (fetched into .tools/ by `make tools`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from devtools.harness import ROOT

HELM = ROOT / ".tools" / "helm"
CHART = ROOT / "helm" / "foundry-gateway"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM.exists(), f"{HELM} is missing: `make tools` fetches it"
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False, timeout=60)


def render(*values: Path | dict[str, Any], release: str = "fgw", tmp: Path | None = None) -> list[dict[str, Any]]:
    """The rendered objects (hooks such as the test pod included); values are files or dicts."""
    args = ["template", release, str(CHART), "--namespace", "ai"]
    for i, v in enumerate(values):
        if isinstance(v, dict):
            assert tmp is not None, "dict values need a tmp directory"
            path = tmp / f"values-{i}.yaml"
            path.write_text(yaml.safe_dump(v))
            v = path
        args += ["-f", str(v)]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def gateway_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The ConfigMap that holds the gateway's config.yaml (dashboards are ConfigMaps too)."""
    found = [o for o in by_kind(objects, "ConfigMap") if "config.yaml" in o.get("data", {})]
    assert len(found) == 1, f"expected one gateway ConfigMap, found {len(found)}"
    return found[0]
