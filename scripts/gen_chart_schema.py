"""Writes helm/foundry-gateway/values.schema.json.

`upstreams` and `routes` come straight from the gateway's config schema (gateway/config.py),
so the chart and the code cannot drift apart; the chart's own values are described here.
`--check` fails when the committed file is stale (the tests run that).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import json_schema
from scripts.generated import emit

OUT = Path(__file__).resolve().parent.parent / "helm" / "foundry-gateway" / "values.schema.json"


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


STR: dict[str, Any] = {"type": "string"}
BOOL: dict[str, Any] = {"type": "boolean"}
PORT: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 65535}
MAP: dict[str, Any] = {"type": "object"}
LIST: dict[str, Any] = {"type": "array"}
RESOURCES: dict[str, Any] = {"type": "object", "properties": {"requests": MAP, "limits": MAP}}
IMAGE = obj(
    {
        "repository": {"type": "string", "minLength": 1},
        "tag": STR,
        "digest": {"type": "string", "pattern": "^(sha256:[0-9a-f]{64})?$", "description": "Pins the image."},
        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    }
)
PROBE = obj({"periodSeconds": {"type": "integer", "minimum": 1}, "failureThreshold": {"type": "integer", "minimum": 1}})


def gateway_defs() -> dict[str, Any]:
    """The code's definitions, with the chart's conveniences for API keys held in Secrets."""
    defs: dict[str, Any] = copy.deepcopy(json_schema()["$defs"])
    api_key = defs["ApiKeyAuth"]
    api_key["properties"]["secretName"] = {
        "type": "string",
        "minLength": 1,
        "description": "A Secret holding the Foundry API key (chart only).",
    }
    api_key["properties"]["secretKey"] = {
        "type": "string",
        "default": "api-key",
        "description": "The key in secretName (chart only).",
    }
    return defs


def schema() -> dict[str, Any]:
    gateway = json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "foundry-gateway chart values",
        "type": "object",
        "additionalProperties": False,
        "required": ["upstreams", "routes"],
        "$defs": gateway_defs(),
        "properties": {
            "global": MAP,
            "replicaCount": {"type": "integer", "minimum": 0},
            "image": obj({"gateway": IMAGE, "sidecar": IMAGE}),
            "imagePullSecrets": LIST,
            "nameOverride": STR,
            "fullnameOverride": STR,
            "upstreams": copy.deepcopy(gateway["properties"]["upstreams"]),
            "routes": copy.deepcopy(gateway["properties"]["routes"]),
            "retries": {"$ref": "#/$defs/RetryConfig"},
            "inbound": {"$ref": "#/$defs/InboundConfig"},
            "gateway": obj(
                {
                    "port": PORT,
                    "adminPort": PORT,
                    "maxConnections": {"type": "integer", "minimum": 1},
                    "headerTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
                    "idleTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
                    "logLevel": {"enum": ["debug", "info", "warning", "error"]},
                    "logFormat": {"enum": ["json", "console"]},
                    "maxBodyBytes": {"type": "integer", "minimum": 1024},
                    "upstreamConnections": {"type": "integer", "minimum": 1},
                    "maxConcurrentRequests": {"type": "integer", "minimum": 1},
                    "heartbeatSeconds": {"type": "number", "exclusiveMinimum": 0},
                    "drainDelaySeconds": {"type": "number", "minimum": 0},
                    "drainTimeoutSeconds": {"type": "number", "minimum": 0},
                    "resources": RESOURCES,
                    "extraEnv": LIST,
                    "extraVolumes": LIST,
                    "extraVolumeMounts": LIST,
                }
            ),
            "sidecar": obj(
                {
                    "mode": {"enum": ["native", "classic"], "description": "native needs Kubernetes 1.29+."},
                    "healthPort": PORT,
                    "scope": {"type": "string", "pattern": "/\\.default$"},
                    "readyMarginSeconds": {"type": "number", "minimum": 0},
                    "tenantId": STR,
                    "clientId": STR,
                    "authorityHost": STR,
                    "credential": {"enum": ["clientSecret", "certificate", "workloadIdentity"]},
                    "clientSecret": obj({"existingSecret": STR, "secretKey": STR, "value": STR}),
                    "certificate": obj({"existingSecret": STR, "secretKey": STR}),
                    "tokenVolumeSizeLimit": STR,
                    "resources": RESOURCES,
                    "extraEnv": LIST,
                }
            ),
            "serviceAccount": obj({"create": BOOL, "name": STR, "annotations": MAP}),
            "service": obj({"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "port": PORT}),
            "podAnnotations": MAP,
            "podLabels": MAP,
            "podSecurityContext": MAP,
            "securityContext": MAP,
            "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
            "preStopSleepSeconds": {"type": "integer", "minimum": 0},
            "probes": obj({"startup": PROBE, "readiness": PROBE, "liveness": PROBE}),
            "podDisruptionBudget": obj({"maxUnavailable": {"type": ["integer", "string"]}}),
            "autoscaling": obj(
                {
                    "enabled": BOOL,
                    "minReplicas": {"type": "integer", "minimum": 1},
                    "maxReplicas": {"type": "integer", "minimum": 1},
                    "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
                }
            ),
            "topologySpread": obj({"enabled": BOOL, "maxSkew": {"type": "integer", "minimum": 1}}),
            "networkPolicy": obj(
                {
                    "enabled": BOOL,
                    "allowedNamespaces": {"type": "array", "items": STR},
                    "allowedPodLabels": MAP,
                    "monitoringNamespace": STR,
                }
            ),
            "monitoring": obj(
                {
                    "serviceMonitor": obj({"enabled": BOOL, "interval": STR, "labels": MAP}),
                    "prometheusRule": obj({"enabled": BOOL, "labels": MAP}),
                    "dashboards": obj({"enabled": BOOL, "labels": MAP}),
                }
            ),
            "nodeSelector": MAP,
            "tolerations": LIST,
            "affinity": MAP,
        },
    }


def render() -> str:
    return json.dumps(schema(), indent=2) + "\n"


def main() -> int:
    return emit({OUT: render()}, "scripts/gen_chart_schema.py")


if __name__ == "__main__":
    sys.exit(main())
