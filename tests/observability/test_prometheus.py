"""Dashboards and alerts against a real Prometheus (Debian's package) scraping the real processes."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml

from devtools.harness import (
    Process,
    emulator_control,
    free_port,
    start_entra_emulator,
    start_foundry_emulator,
    start_gateway,
    start_sidecar,
    wait_http,
)
from tests.otlp_receiver import Receiver
from tests.unit.test_docs import documented_metrics

CHART = Path(__file__).resolve().parents[2] / "helm" / "foundry-gateway"
ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
# Panels traffic here cannot light up; each says why.
ALLOWED_EMPTY = {
    "Client disconnects": "no client goes away mid-stream in this test (the resilience tests do that)",
    # No state.redis here; tests/integration/test_shared_limits.py runs a real Redis, down and slow.
    "Shared limits store (Redis): admission round trip": "no Redis in this stack",
    "Shared limits store (Redis): failures": "no Redis in this stack",
}


class Stack:
    def __init__(self, work: Path) -> None:
        self.procs: list[Process] = []
        entra = start_entra_emulator(work, clients={"obs-app": "obs-secret-value"})
        self.procs.append(entra.process)
        foundry, self.foundry_url = start_foundry_emulator(
            "--jwt-public-key", str(entra.public_key), "--api-key", "obs-key", log_dir=work
        )
        self.procs.append(foundry)
        token_file = work / "token" / "token.json"
        env = {
            "AZURE_TENANT_ID": entra.tenant,
            "AZURE_CLIENT_ID": "obs-app",
            "AZURE_CLIENT_SECRET": "obs-secret-value",
            "AZURE_AUTHORITY_HOST": entra.authority,
            "SSL_CERT_FILE": str(entra.ca_file),
        }
        sidecar, self.sidecar_url = start_sidecar(["--output", str(token_file)], env, work)
        self.procs.append(sidecar)
        deadline = time.monotonic() + 20
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        config = {
            "upstreams": [
                {
                    "name": "entra",
                    "base_url": self.foundry_url,
                    "auth": {"type": "entra", "token_file": str(token_file)},
                },
                {
                    "name": "dead",
                    "base_url": f"http://127.0.0.1:{free_port()}/anthropic",
                    "auth": {"type": "api_key", "key_env": "OBS_KEY"},
                },
            ],
            "routes": [
                {"model": "claude-sonnet-4-5", "targets": [{"upstream": "entra", "deployment": "sonnet"}]},
                {"model": "claude-dead", "targets": [{"upstream": "dead", "deployment": "x"}]},
                # The Quota row: a pool with room, and one of a request a minute that refuses at once.
                {"model": "claude-quota", "strategy": "quota",
                 "targets": [{"upstream": "entra", "deployment": "q", "quota_pool": "roomy"}]},
                {"model": "claude-tight", "strategy": "quota", "max_wait_seconds": 0,
                 "targets": [{"upstream": "entra", "deployment": "t", "quota_pool": "tight"}]},
            ],
            "quota_pools": [
                {"name": "roomy", "requests_per_minute": 600, "input_tokens_per_minute": 1_000_000,
                 "output_tokens_per_minute": 100_000},
                {"name": "tight", "requests_per_minute": 1, "burst_seconds": 1},
            ],
            "server": {"header_timeout_seconds": 0.5},
        }  # fmt: skip
        # Tracing on, to a receiver: the span export process's panels read real series.
        self.receiver = Receiver()
        tracing = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": self.receiver.endpoint}
        gateway, self.gateway_url, _ = start_gateway(config, env={"OBS_KEY": "k", **tracing}, log_dir=work)
        self.gateway_admin_url = gateway.admin
        self.procs.append(gateway)
        self.prometheus_url = self._start_prometheus(work)

    def _start_prometheus(self, work: Path) -> str:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: `make tools` installs Debian's prometheus package"
        config = {
            # Twice a second: rates need two samples, and the fixture waits for a few of them.
            "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": "foundry-gateway",
                    "static_configs": [{"targets": [self.gateway_admin_url.removeprefix("http://")]}],
                },
                {
                    "job_name": "token-sidecar",
                    "static_configs": [{"targets": [self.sidecar_url.removeprefix("http://")]}],
                },
            ],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        proc = Process(
            "prometheus",
            [],
            log_dir=work,
            executable=[
                binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
        )
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/-/ready", timeout=30, proc=proc)
        return url

    def traffic(self) -> None:
        oa = openai.OpenAI(base_url=self.gateway_url + "/v1", api_key="x", max_retries=0)
        an = anthropic.Anthropic(base_url=self.gateway_url, api_key="x", max_retries=0)
        hello: Any = [{"role": "user", "content": "hello there general kenobi"}]
        for _ in range(3):
            oa.chat.completions.create(model="claude-sonnet-4-5", messages=hello)
            list(
                oa.chat.completions.create(
                    model="claude-sonnet-4-5", messages=hello, stream=True, stream_options={"include_usage": True}
                )
            )
            with an.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=hello) as s:
                s.get_final_message()
        cached: Any = [{"type": "text", "text": "You are terse. " * 50, "cache_control": {"type": "ephemeral"}}]
        for _ in range(2):
            an.messages.create(model="claude-sonnet-4-5", max_tokens=50, system=cached, messages=hello)
        for fault in ({"status": 429, "retry_after": "1"}, {"status": 529}, {"error_after": 4}):
            emulator_control(self.foundry_url, "faults", [fault])
            with contextlib.suppress(openai.APIError):
                list(oa.chat.completions.create(model="claude-sonnet-4-5", messages=hello, stream=True))
        self.quota_traffic(an, cached)
        self.capability_traffic(an)
        for model in ("nope", "claude-dead"):
            with contextlib.suppress(openai.APIError):
                oa.chat.completions.create(model=model, messages=hello)
        # A misbehaving upstream (a redirect) and a caller that never sends its request head.
        emulator_control(self.foundry_url, "faults", [{"redirect": 302}])
        with contextlib.suppress(openai.APIError):
            oa.chat.completions.create(model="claude-sonnet-4-5", messages=hello)
        host, port = self.gateway_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as silent:
            silent.settimeout(5)
            with contextlib.suppress(OSError):
                silent.recv(1)  # returns once the gateway closes it, after the header timeout

    def quota_traffic(self, an: anthropic.Anthropic, system: Any) -> None:
        """A session on a quota route (affinity, cache reads), a 429 from Foundry for its pool (it waits out
        the pause), and a route whose pool refuses at once."""
        session = {"x-claude-code-session-id": "obs-session"}
        hello: Any = [{"role": "user", "content": "quota please"}]
        for _ in range(2):
            an.messages.create(
                model="claude-quota", max_tokens=50, system=system, messages=hello, extra_headers=session
            )
        emulator_control(self.foundry_url, "faults", [{"status": 429, "retry_after": "1"}])
        an.messages.create(model="claude-quota", max_tokens=50, messages=hello, extra_headers=session)
        for _ in range(2):
            with contextlib.suppress(anthropic.RateLimitError):
                an.messages.create(model="claude-tight", max_tokens=10, messages=hello)

    def capability_traffic(self, an: anthropic.Anthropic) -> None:
        """A beta the Azure-hosted profile drops, and one the emulator's resource lacks though the profile
        does not say so: refused, learned, and the request sent again without it."""
        hello: Any = [{"role": "user", "content": "capabilities"}]
        an.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=hello,
                           extra_headers={"anthropic-beta": "files-api-2025-04-14"})  # fmt: skip
        emulator_control(self.foundry_url, "hosting", {"resource": "", "lacks_betas": ["interleaved-thinking"]})
        an.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=hello,
                           extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})  # fmt: skip

    def wait_for_scrapes(self, samples: int = 4, timeout: float = 60) -> None:
        """Until both targets have been scraped a few more times since now: rates need two samples."""
        start = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.time()
            fresh = self.query(f"min(count_over_time(up[{max(1, int(now - start))}s]))")["data"]["result"]
            if fresh and float(fresh[0]["value"][1]) >= samples:
                return
            time.sleep(0.25)
        raise AssertionError(f"Prometheus did not scrape both targets {samples} times in {timeout} s")

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(self.prometheus_url + "/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = response.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        return body

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.receiver.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("observability"))
    try:
        s.traffic()
        s.wait_for_scrapes()
        s.traffic()
        s.wait_for_scrapes()
        yield s
    finally:
        s.stop()


def concrete(expr: str) -> str:
    return expr.replace("$__rate_interval", "20s").replace("$namespace", ".*")


def panels() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", ()):  # a row has none
                found.append((path.name, panel["title"], target["expr"]))
    return found


@pytest.mark.parametrize(("dashboard", "title", "expr"), panels(), ids=[f"{d}:{t}" for d, t, _ in panels()])
def test_dashboard_query_returns_series(stack: Stack, dashboard: str, title: str, expr: str) -> None:
    result = stack.query(concrete(expr))["data"]["result"]
    if title in ALLOWED_EMPTY:
        return
    assert result, f"{dashboard} panel {title!r} shows no data: {concrete(expr)}"


def test_alert_expressions_evaluate_and_rules_are_healthy(stack: Stack) -> None:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            stack.query(rule["expr"])
    deadline = time.monotonic() + 10
    while True:
        groups = httpx.get(stack.prometheus_url + "/api/v1/rules").json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("health") == "ok" for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert len(rules) == 12


def test_dashboards_and_alerts_name_only_emitted_metrics() -> None:
    emitted = set(documented_metrics("foundry_gateway_")) | set(documented_metrics("token_sidecar_"))
    text = ALERTS.read_text() + "".join(p.read_text() for p in DASHBOARDS)
    named = {
        re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\b(?:foundry_gateway|token_sidecar)_\w+", text)
    }
    assert named - emitted == set()
    assert len(named) >= 12


def test_dashboards_are_generated_and_well_formed() -> None:
    root = CHART.parents[1]
    check = subprocess.run(
        [sys.executable, "scripts/gen_dashboards.py", "--check"], cwd=root, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        assert board["templating"]["list"][0]["name"] == "datasource"
        for panel in board["panels"]:
            if panel["type"] == "row":
                assert panel["gridPos"]["w"] == 24 and "targets" not in panel, panel["title"]
                continue
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
            for target in panel["targets"]:
                if "rate(" in target["expr"]:
                    assert "[$__rate_interval]" in target["expr"], panel["title"]
    assert len(uids) == len(DASHBOARDS) == 3
