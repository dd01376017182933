"""The chart and the code agree: the rendered pod's containers run here, as a kubelet would run them."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import yaml

from devtools.harness import free_port, start_entra_emulator, start_foundry_emulator
from tests.chart.kubelet import Pod
from tests.chart.render import gateway_config, one, render

SECRET = "chart-pod-client-secret-31c7"


def test_rendered_pod_serves_a_request_through_the_service_port(tmp_path: Path) -> None:
    entra = start_entra_emulator(tmp_path, clients={"chart-app": SECRET})
    foundry, foundry_url = start_foundry_emulator("--jwt-public-key", str(entra.public_key), log_dir=tmp_path)
    values = {
        "upstreams": [{"name": "local", "base_url": foundry_url, "auth": {"type": "entra"}}],
        "routes": [{"model": "claude-sonnet-4-5", "targets": [{"upstream": "local", "deployment": "sonnet"}]}],
        "gateway": {"port": free_port(), "adminPort": free_port()},
        "service": {"port": 80},
        "sidecar": {
            "healthPort": free_port(),
            "tenantId": entra.tenant,
            "clientId": "chart-app",
            "authorityHost": entra.authority,
            "clientSecret": {"existingSecret": "entra-sp"},
            # A cluster would mount its CA bundle; the emulator's CA is a local file here.
            "extraEnv": [{"name": "SSL_CERT_FILE", "value": str(entra.ca_file)}],
        },
    }
    objects = render(values, tmp=tmp_path)
    pod = Pod(one(objects, "Deployment"), objects, {"entra-sp": {"client-secret": SECRET}}, tmp_path / "pod")
    try:
        # Native sidecar: the kubelet starts it first and waits for its startupProbe.
        pod.start("token-sidecar")
        pod.wait_probe("token-sidecar", "startupProbe")
        pod.start("gateway")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            pod.wait_probe("gateway", probe)

        service = one(objects, "Service")
        target = next(p for p in service["spec"]["ports"] if p["name"] == "http")["targetPort"]
        base = f"http://127.0.0.1:{pod.port('gateway', target)}/v1"
        client = openai.OpenAI(base_url=base, api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi pod"}]
        )
        assert reply.choices[0].message.content == "You said: hi pod"
        assert [m.id for m in client.models.list()] == ["claude-sonnet-4-5"]
        assert httpx.get(base.removesuffix("/v1") + "/metrics").status_code == 404, "metrics are off the API port"
        metrics_port = next(p for p in service["spec"]["ports"] if p["name"] == "metrics")["targetPort"]
        metrics = httpx.get(f"http://127.0.0.1:{pod.port('gateway', metrics_port)}/metrics").text
        assert 'foundry_gateway_requests_total{dialect="openai",route="claude-sonnet-4-5",status="200"}' in metrics

        config = yaml.safe_load(gateway_config(objects)["data"]["config.yaml"])
        assert config["upstreams"][0]["auth"]["token_file"] == "/var/run/foundry-token/token.json"
        token_dir = pod.volumes["token"]
        assert (token_dir / "token.json").exists(), "the sidecar wrote into the shared volume"
        for process in pod.processes:
            assert SECRET not in process.log()
    finally:
        pod.stop()
        foundry.stop()
        entra.process.stop()
