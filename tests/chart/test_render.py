"""The chart rendered by real helm: lint, Kubernetes schemas, security checks, and agreement with the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from devtools.harness import ROOT
from gateway.config import ServerConfig, parse_config
from scripts.gen_chart_schema import camel
from tests.chart.render import CHART, SCENARIOS, by_kind, gateway_config, helm, one, render

KUBERNETES_VERSIONS = ["1.31.0", "1.35.0"]
CUSTOM_RESOURCES = {"ServiceMonitor", "PrometheusRule"}
SCENARIO_IDS = [p.name.removesuffix("-values.yaml") for p in SCENARIOS]


@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_lint(values: Path) -> None:
    result = helm("lint", str(CHART), "-f", str(values), "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_objects_pass_strict_kubernetes_validation(values: Path, version: str) -> None:
    objects = render(values)
    for obj in objects:
        if obj["kind"] in CUSTOM_RESOURCES:
            continue
        kubernetes_validate.validate(obj, version, strict=True)


def test_custom_resources(tmp_path: Path) -> None:
    objects = render(CHART / "ci" / "monitoring-values.yaml")
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics", "sidecar-metrics"]
    service_ports = {p["name"] for p in one(objects, "Service")["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    rule = one(objects, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_rendered_config_is_what_the_gateway_accepts(values: Path) -> None:
    objects = render(values)
    config_map = gateway_config(objects)
    config = parse_config(yaml.safe_load(config_map["data"]["config.yaml"]), f"{values.name} ConfigMap")
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    gateway = next(c for c in pod["containers"] if c["name"] == "gateway")
    mounts = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
    config_path = Path(gateway["args"][gateway["args"].index("--config") + 1])
    assert mounts[str(config_path.parent)] == "config"
    assert gateway["ports"][0]["containerPort"] == config.server.port
    for upstream in config.upstreams:
        auth = upstream.auth
        path = auth.token_file if auth.type == "entra" else auth.key_file
        assert path is not None
        assert str(path.parent) in mounts, f"{path} is not on a mounted volume"
    values_data = yaml.safe_load(values.read_text())
    expected_routes = [r["model"] for r in values_data.get("routes", [])] or [
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-1",
    ]
    assert [r.model for r in config.routes] == expected_routes


def containers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod.get("initContainers", []) + pod["containers"]}


def test_native_sidecar_shares_an_in_memory_volume() -> None:
    objects = render(CHART / "ci" / "client-secret-values.yaml")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    sidecar = pod["initContainers"][0]
    assert sidecar["name"] == "token-sidecar" and sidecar["restartPolicy"] == "Always"
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    token = next(v for v in pod["volumes"] if v["name"] == "token")
    assert token["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Mi"}
    for c in containers(objects).values():
        assert all("subPath" not in m for m in c["volumeMounts"]), "a subPath mount never sees a renamed file"
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert "AZURE_CLIENT_SECRET" not in env, "the secret is a file, never an environment variable"
    secret_file = Path(env["TOKEN_SIDECAR_CLIENT_SECRET_FILE"])
    mount = next(m for m in sidecar["volumeMounts"] if m["mountPath"] == str(secret_file.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "foundry-gateway-entra" and secret_file.name == "client-secret"


def test_classic_sidecar() -> None:
    objects = render(CHART / "ci" / "classic-sidecar-values.yaml")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["gateway", "token-sidecar"]
    assert "restartPolicy" not in pod["containers"][1]


def test_workload_identity() -> None:
    objects = render(CHART / "ci" / "workload-identity-values.yaml")
    account = one(objects, "ServiceAccount")
    assert (
        account["metadata"]["annotations"]["azure.workload.identity/client-id"]
        == "66666666-7777-8888-9999-000000000000"
    )
    template = one(objects, "Deployment")["spec"]["template"]
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert template["spec"]["automountServiceAccountToken"] is True, "the webhook projects the token through it"
    env = {e["name"]: e.get("value") for e in containers(objects)["token-sidecar"]["env"]}
    assert (
        "AZURE_CLIENT_SECRET" not in env
        and env["TOKEN_SIDECAR_SCOPE"] == "https://cognitiveservices.azure.com/.default"
    )
    assert not by_kind(objects, "Secret")


def test_chart_created_secret_and_single_replica() -> None:
    objects = render(CHART / "ci" / "chart-secret-values.yaml")
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == "fgw-foundry-gateway-entra" and "client-secret" in secret["data"]
    assert not by_kind(objects, "PodDisruptionBudget"), "no PDB for a single replica"


def test_api_keys_without_sidecar() -> None:
    objects = render(CHART / "ci" / "api-key-values.yaml")
    assert list(containers(objects)) == ["gateway"]
    assert [p["name"] for p in one(objects, "Service")["spec"]["ports"]] == ["http", "metrics"]


def test_autoscaling_and_disruption_budget() -> None:
    objects = render(CHART / "ci" / "hpa-values.yaml")
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["minReplicas"] == 3
    assert "replicas" not in one(objects, "Deployment")["spec"], "the HPA owns the replica count"
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_network_policy_and_dashboards_slot() -> None:
    objects = render(CHART / "ci" / "monitoring-values.yaml")
    policy = one(objects, "NetworkPolicy")
    allowed = [
        f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for f in policy["spec"]["ingress"][0]["from"]
    ]
    assert allowed == ["team-a", "team-b"]
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == ["http"], "callers reach the API only"
    egress_ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert egress_ports == [53, 53, 443]
    dashboards = [o for o in by_kind(objects, "ConfigMap") if o["metadata"].get("labels", {}).get("grafana_dashboard")]
    assert len(dashboards) == len(list((CHART / "dashboards").glob("*.json")))


def test_config_change_rolls_the_pods(tmp_path: Path) -> None:
    base = CHART / "ci" / "client-secret-values.yaml"
    before = one(render(base), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    changed = render(base, {"gateway": {"logLevel": "debug"}}, tmp=tmp_path)
    assert one(changed, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != before


def test_restricted_security_context_everywhere() -> None:
    for values in SCENARIOS:
        objects = render(values)
        for workload in by_kind(objects, "Deployment") + by_kind(objects, "Pod"):
            spec = workload["spec"]["template"]["spec"] if workload["kind"] == "Deployment" else workload["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            for c in spec.get("initContainers", []) + spec["containers"]:
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
                assert sc["capabilities"] == {"drop": ["ALL"]}
                assert c["resources"]["limits"]["memory"]


BAD_VALUES = [
    ({"routes": [{"model": "m", "targets": []}]}, "/routes/0/targets"),
    (
        {"upstreams": [{"name": "u", "base_url": "https://x/anthropic", "auth": {"type": "magic"}}]},
        "/upstreams/0/auth/type",
    ),
    (
        {"routes": [{"model": "m", "targets": [{"upstream": "nowhere", "deployment": "d"}]}]},
        'routes[0].targets[0].upstream: "nowhere" is not one of the upstreams (eastus2)',
    ),
    ({"sidecar": {"tenantId": ""}}, "sidecar.tenantId and sidecar.clientId are required"),
    ({"gateway": {"prot": 1}}, "additional properties 'prot' not allowed"),
    ({"terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds (30) must cover"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES)
def test_bad_values_are_refused_with_a_readable_message(tmp_path: Path, override: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(override))
    result = helm("template", "x", str(CHART), "-f", str(CHART / "ci" / "client-secret-values.yaml"), "-f", str(path))
    assert result.returncode != 0
    assert message in result.stderr


def test_values_schema_is_generated_from_the_code() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_chart_schema.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert "ApiKeyAuth" in schema["$defs"] and schema["properties"]["routes"]["items"]["$ref"] == "#/$defs/RouteConfig"


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and f"| `{path}` |" not in (CHART / "README.md").read_text():
            keys += _leaf_keys(value, path + ".")
        else:
            keys.append(path)
    return keys


def test_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [k for k in _leaf_keys(values) if f"| `{k}` |" not in readme]
    assert missing == []


def test_every_server_setting_is_a_chart_value_that_reaches_the_config(tmp_path: Path) -> None:
    """gateway.<camelCase> for each setting of the config's server section, generated from its schema."""
    chosen = {"maxUpstreamBodyBytes": 2_000_000, "headerTimeoutSeconds": 3, "bodyReadTimeoutSeconds": 7,
              "maxMessages": 50}  # fmt: skip
    objects = render(CHART / "ci" / "api-key-values.yaml", {"gateway": chosen}, tmp=tmp_path)
    config = parse_config(yaml.safe_load(gateway_config(objects)["data"]["config.yaml"]), "rendered")
    assert config.server.max_upstream_body_bytes == 2_000_000 and config.server.header_timeout_seconds == 3
    assert config.server.body_read_timeout_seconds == 7 and config.server.max_messages == 50
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["gateway"]["properties"]
    settings = set(ServerConfig.model_fields) - {"host", "admin_host"}
    assert {camel(name) for name in settings} <= set(schema)
    with pytest.raises(AssertionError, match="maxUpstreamBodyBytes"):  # under its minimum: the schema refuses it
        render(CHART / "ci" / "api-key-values.yaml", {"gateway": {"maxUpstreamBodyBytes": 10}}, tmp=tmp_path)


def test_an_upstreams_hosting_and_capabilities_reach_the_config(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "ci" / "api-key-values.yaml").read_text())
    values["upstreams"][0]["hosting"] = "anthropic"
    values["upstreams"][0]["capabilities"] = {"betas": {"remove": ["context-1m"]}, "fields": {"add": ["container"]}}
    config_map = gateway_config(render(values, tmp=tmp_path))
    upstream = parse_config(yaml.safe_load(config_map["data"]["config.yaml"]), "rendered").upstreams[0]
    assert upstream.hosting == "anthropic"
    assert upstream.capabilities.betas.remove == ["context-1m"]
    assert upstream.capabilities.fields.add == ["container"]


def test_reasoning_keys_come_from_a_secret_every_pod_mounts(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "ci" / "api-key-values.yaml").read_text())
    values["responses"] = {"reasoningKeys": {"existingSecret": "fgw-reasoning", "secretKey": "keys.txt"}}
    objects = render(values, tmp=tmp_path)
    config = yaml.safe_load(gateway_config(objects)["data"]["config.yaml"])
    keys_file = Path(config["responses"]["reasoning_keys_file"])
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    gateway = next(c for c in pod["containers"] if c["name"] == "gateway")
    mount = next(m for m in gateway["volumeMounts"] if m["mountPath"] == str(keys_file.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "fgw-reasoning" and volume["secret"]["defaultMode"] == 0o440
    assert volume["secret"]["items"] == [{"key": "keys.txt", "path": keys_file.name}]
    # Without a Secret: no keys file (a key per pod), and nothing mounted for it.
    default = yaml.safe_load(gateway_config(render(CHART / "ci" / "api-key-values.yaml"))["data"]["config.yaml"])
    assert "responses" not in default


def test_shared_state_reads_the_redis_url_from_a_secret_and_may_reach_redis(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "ci" / "api-key-values.yaml").read_text())
    values["state"] = {"redis": {"enabled": True, "existingSecret": "team-redis", "onError": "deny", "port": 6380}}
    values["networkPolicy"] = {"enabled": True}
    objects = render(values, tmp=tmp_path)
    redis = yaml.safe_load(gateway_config(objects)["data"]["config.yaml"])["state"]["redis"]
    assert redis["on_error"] == "deny" and redis["timeout_ms"] == 50 and "url" not in redis
    url_file = Path(redis["url_file"])
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    gateway = next(c for c in pod["containers"] if c["name"] == "gateway")
    mount = next(m for m in gateway["volumeMounts"] if m["mountPath"] == str(url_file.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"] == {"secretName": "team-redis", "defaultMode": 0o440,
                                "items": [{"key": "url", "path": url_file.name}]}  # fmt: skip
    egress = one(objects, "NetworkPolicy")["spec"]["egress"]
    assert {"port": 6380, "protocol": "TCP"} in [p for rule in egress for p in rule["ports"]]


def test_quota_pools_render_and_each_replica_knows_its_share(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "ci" / "api-key-values.yaml").read_text())
    values["quotaPools"] = [{"name": "sub-a", "requests_per_minute": 400, "output_tokens_per_minute": 80000}]
    values["routes"][0]["strategy"] = "quota"
    values["routes"][0]["targets"][0]["quota_pool"] = "sub-a"
    values["replicaCount"] = 3
    config = yaml.safe_load(gateway_config(render(values, tmp=tmp_path))["data"]["config.yaml"])
    assert config["quota_pools"] == values["quotaPools"] and config["state"] == {"replicas": 3}
    assert config["routes"][0]["targets"][0]["quota_pool"] == "sub-a"
    values["autoscaling"] = {"enabled": True, "minReplicas": 2, "maxReplicas": 12}
    config = yaml.safe_load(gateway_config(render(values, tmp=tmp_path))["data"]["config.yaml"])
    assert config["state"]["replicas"] == 12, "under an HPA, the most there may be: never more than the pool"


def test_shared_state_without_its_secret_is_refused(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "ci" / "api-key-values.yaml").read_text())
    values["state"] = {"redis": {"enabled": True}}
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm("template", "fgw", str(CHART), "-f", str(path))
    assert result.returncode != 0 and "name the Secret that holds the Redis URL" in result.stderr


def test_tracing_sets_the_otel_variables_in_both_containers(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "ci" / "api-key-values.yaml").read_text())
    values["tracing"] = {"exporter": "otlp", "endpoint": "http://otel.observability:4318",
                         "headers": {"existingSecret": "otel-auth"}}  # fmt: skip
    values["networkPolicy"] = {"enabled": True}
    values["sidecar"] = {"tenantId": "t", "clientId": "c", "clientSecret": {"existingSecret": "entra"}}
    values["upstreams"] = [{"name": "e", "base_url": "https://r.services.ai.azure.com/anthropic",
                            "auth": {"type": "entra"}}]  # fmt: skip
    values["routes"] = [{"model": "m", "targets": [{"upstream": "e", "deployment": "d"}]}]
    objects = render(values, tmp=tmp_path)
    for name, container in containers(objects).items():
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["OTEL_TRACES_EXPORTER"]["value"] == "otlp", name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel.observability:4318"
        assert env["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"]["secretKeyRef"] == {"name": "otel-auth", "key": "headers"}
        assert env["OTEL_SERVICE_NAME"]["value"] in ("foundry-gateway", "foundry-gateway-token-sidecar")
    egress = one(objects, "NetworkPolicy")["spec"]["egress"]
    assert {"port": 4318, "protocol": "TCP"} in [p for rule in egress for p in rule["ports"]]
    # Off by default: no OTEL_* anywhere.
    for container in containers(render(CHART / "ci" / "api-key-values.yaml")).values():
        assert not [e for e in container.get("env", []) if e["name"].startswith("OTEL_")]


def test_stored_responses_reach_the_config(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "ci" / "api-key-values.yaml").read_text())
    values["responses"] = {"storeTtlSeconds": 3600}
    values["state"] = {"redis": {"enabled": True, "existingSecret": "r"}}
    config = yaml.safe_load(gateway_config(render(values, tmp=tmp_path))["data"]["config.yaml"])
    assert config["responses"] == {"store_ttl_seconds": 3600}
