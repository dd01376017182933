"""Docs that must agree with the code: the config reference and the metrics table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.observability.metrics import GatewayMetrics, QuotaCollector, TokenExpiryCollector
from gateway.runtime import QuotaState
from token_sidecar.metrics import SidecarMetrics

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_generated_from_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_config_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def emitted_metrics(registry: CollectorRegistry, defined: object, prefix: str) -> dict[str, set[str]]:
    """Metric name -> label names, from what a registry emits plus what `defined` declares.

    Only the process's own metrics (by prefix): the standard process_* and python_* ones are
    documented as a group."""
    emitted: dict[str, set[str]] = {}
    for family in registry.collect():
        if not family.name.startswith(prefix):
            continue
        for sample in family.samples:
            if family.type == "histogram":  # named by the family: its samples are _bucket, _count, _sum
                emitted.setdefault(family.name, set()).update(k for k in sample.labels if k != "le")
                continue
            if sample.name.endswith(("_created", "_bucket", "_count", "_sum")) and family.type != "gauge":
                continue
            emitted.setdefault(sample.name, set()).update(k for k in sample.labels if k != "le")
    # Metrics with labels emit no sample until used; add their names from the definitions.
    for attr in vars(defined).values():
        name = getattr(attr, "_name", None)
        if name and getattr(attr, "_type", "") in ("counter", "histogram", "gauge"):
            full = name + "_total" if attr._type == "counter" else name
            emitted.setdefault(full, set()).update(attr._labelnames)
    return emitted


def documented_metrics(prefix: str) -> dict[str, set[str]]:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    return {
        m.group(1): {label.strip() for label in m.group(2).split(",") if label.strip()}
        for m in re.finditer(rf"^\| `({prefix}\w+)` \| \w+ \|([^|]*)\|", doc, re.M)
    }


def test_metrics_doc_lists_exactly_what_the_gateway_registers() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    registry.register(TokenExpiryCollector(lambda: [("u", 1.0)]))
    quota = QuotaState(
        [("pool", (1.0, 0.5, None), True)],
        [("route", "interactive", 0, 30.0)],
        [("pool", (3.0, 10.0, None), (3.0, 8.0, 0.0))],
        [(("route", "kept"), 2)],
        [(("route", "interactive"), [("0.005", 2.0), ("+Inf", 2.0)], 0.0)],
    )
    registry.register(QuotaCollector(lambda: quota))
    metrics.span_exporter_pid = os.getpid  # with tracing on, the export process's; this one stands in
    metrics.record_tokens("route", {"input_tokens": 1}, "upstream", "deployment")  # emitted once there is one
    assert documented_metrics("foundry_gateway_") == emitted_metrics(registry, metrics, "foundry_gateway_")


def test_metrics_doc_lists_exactly_what_the_sidecar_registers() -> None:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    metrics.init_token("default")
    assert documented_metrics("token_sidecar_") == emitted_metrics(registry, metrics, "token_sidecar_")


def test_both_processes_export_the_process_metrics_the_dashboard_reads() -> None:
    for make in (GatewayMetrics, SidecarMetrics):
        registry = CollectorRegistry()
        make(registry)
        names = {sample.name for family in registry.collect() for sample in family.samples}
        assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_gc_collections_total"} <= names
