"""Docs that must agree with the code: the config reference and the metrics table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics, TokenExpiryCollector

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_generated_from_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_config_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_metrics_doc_lists_exactly_what_the_gateway_registers() -> None:
    registry = CollectorRegistry()
    GatewayMetrics(registry)
    registry.register(TokenExpiryCollector(lambda: [("u", 1.0)]))
    emitted: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket", "_count", "_sum")) and family.type != "gauge":
                continue
            emitted.setdefault(sample.name, set()).update(k for k in sample.labels if k != "le")
    # Metrics with labels emit no sample until used; add their names from the definitions.
    metrics = GatewayMetrics(CollectorRegistry())
    for attr in vars(metrics).values():
        name = getattr(attr, "_name", None)
        if name and getattr(attr, "_type", "") in ("counter", "histogram", "gauge"):
            full = name + "_total" if attr._type == "counter" else name
            emitted.setdefault(full, set()).update(attr._labelnames)

    doc = (ROOT / "docs" / "metrics.md").read_text()
    documented = {
        m.group(1): {label.strip() for label in m.group(2).split(",") if label.strip()}
        for m in re.finditer(r"^\| `(foundry_gateway_\w+)` \| \w+ \|([^|]*)\|", doc, re.M)
    }
    assert documented == emitted
