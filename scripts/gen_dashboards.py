"""Writes the Grafana dashboards the chart ships (helm/foundry-gateway/dashboards/*.json).

Panels are declared once here, so every one gets a datasource variable, $__rate_interval,
a unit and a stable uid. `--check` fails when the committed files are stale; the tests also
run every query against a real Prometheus scraping the gateway and the sidecar.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.generated import emit

OUT = Path(__file__).resolve().parent.parent / "helm" / "foundry-gateway" / "dashboards"
NS = '{namespace=~"$namespace"}'
RI = "$__rate_interval"


# Selects the gateway container's series among the pod's: both processes export process_* metrics.
GATEWAY = f"foundry_gateway_build_info{NS}"
S5XX = '{namespace=~"$namespace", status=~"5.."}'
S429 = '{namespace=~"$namespace", status="429"}'


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    targets: tuple[tuple[str, str], ...]  # (expr, legend)
    description: str = ""
    kind: str = "timeseries"
    exemplars: bool = False  # show the trace ids the histogram carries (docs/observability.md, Traces)


def quantiles(metric: str, by: str, label: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{NS}[{RI}])))",
            f"p{int(q * 100)} {{{{{label}}}}}",
        )
        for q in (0.5, 0.95)
    )


TARGET_TOKENS = "foundry_gateway_target_tokens_total"
ROUTE_TOKENS = "foundry_gateway_tokens_total"
PROMPT_TYPES = 'type=~"input|cache_read|cache_creation"'


def cache_read_share(metric: str, by: str) -> str:
    return (
        f'sum by ({by}) (rate({metric}{{namespace=~"$namespace", type="cache_read"}}[{RI}])) / '
        f'sum by ({by}) (rate({metric}{{namespace=~"$namespace", {PROMPT_TYPES}}}[{RI}]))'
    )


# Foundry quota (docs/quota.md): the pools' headroom, who waits, where sessions go, what the caches save.
QUOTA = (
    Panel("Quota", "", (), kind="row"),
    Panel(
        "Quota headroom by pool",
        "percentunit",
        (
            (
                f"max by (pool, dimension) (foundry_gateway_quota_headroom_ratio{NS})",
                "{{pool}} {{dimension}}",
            ),
        ),
        "What each pool's bucket holds as a share of full (the fullest replica's view). At 0 requests wait; "
        "alert FoundryGatewayQuotaPoolSaturated fires under 5% for 10 minutes.",
    ),
    Panel(
        "Quota consumed by pool (per minute)",
        "short",
        (
            (
                f"sum by (pool, dimension) (rate(foundry_gateway_quota_consumed_total{NS}[{RI}])) * 60",
                "{{pool}} {{dimension}} consumed",
            ),
            (
                f"sum by (pool, dimension) (rate(foundry_gateway_quota_admitted_total{NS}[{RI}])) * 60",
                "{{pool}} {{dimension}} admitted",
            ),
        ),
        "Per minute, to compare with the pool's limits: what Foundry counted, and what was charged when sent.",
    ),
    Panel(
        "Foundry 429s for metered pools",
        "reqps",
        ((f"sum by (pool) (rate(foundry_gateway_quota_upstream_throttled_total{NS}[{RI}]))", "{{pool}}"),),
        "Each means the gateway's view of the pool was wrong: someone else spends the subscription, or its "
        "limits are set above what is granted.",
    ),
    Panel(
        "Requests waiting for quota",
        "short",
        ((f"sum by (route, priority) (foundry_gateway_quota_queue_depth{NS})", "{{route}} {{priority}}"),),
    ),
    Panel(
        "Wait for quota",
        "s",
        quantiles("foundry_gateway_quota_wait_seconds", "route, priority", "route"),
        "Alert FoundryGatewayQuotaWaitsLong fires when p90 passes half the route's max_wait_seconds.",
    ),
    Panel(
        "Refused for want of quota",
        "reqps",
        (
            (
                f"sum by (route, priority, reason) (rate(foundry_gateway_quota_refused_total{NS}[{RI}]))",
                "{{route}} {{priority}} {{reason}}",
            ),
        ),
        "429 with a computed retry-after: queue_full, wait_bound (refused at once), waited (max_wait_seconds).",
    ),
    Panel(
        "Session affinity",
        "reqps",
        ((f"sum by (route, result) (rate(foundry_gateway_affinity_total{NS}[{RI}]))", "{{route}} {{result}}"),),
        "kept: the session's own deployment (its prompt cache); moved: its pool was short or it was unhealthy.",
    ),
    Panel(
        "Cache-read share of prompt tokens",
        "percentunit",
        (
            (cache_read_share(ROUTE_TOKENS, "route"), "route {{route}}"),
            (cache_read_share(TARGET_TOKENS, "upstream, deployment"), "{{upstream}}/{{deployment}}"),
        ),
        "Cache reads over all prompt tokens; cache reads do not count against ITPM, writes do.",
    ),
    Panel(
        "Pools shared across replicas",
        "short",
        ((f"min by (pool) (foundry_gateway_quota_shared{NS})", "{{pool}}"),),
        "1: leases through Redis; 0: a replica meters its share alone (no state.redis, or Redis down).",
    ),
)

OVERVIEW = (
    Panel(
        "Requests by route",
        "reqps",
        ((f"sum by (route) (rate(foundry_gateway_requests_total{NS}[{RI}]))", "{{route}}"),),
    ),
    Panel(
        "5xx ratio by route",
        "percentunit",
        (
            (
                f"sum by (route) (rate(foundry_gateway_requests_total{S5XX}[{RI}]))"
                f" / sum by (route) (rate(foundry_gateway_requests_total{NS}[{RI}]))",
                "{{route}}",
            ),
        ),
        "Share of requests answered with a server error (502, 503, 504, Foundry's 5xx and 529).",
    ),
    Panel(
        "Responses by status",
        "reqps",
        ((f"sum by (status) (rate(foundry_gateway_requests_total{NS}[{RI}]))", "{{status}}"),),
    ),
    Panel(
        "Request duration by route",
        "s",
        quantiles("foundry_gateway_request_duration_seconds", "route", "route"),
        "From request received to response complete; streams included. With tracing on, exemplars open traces.",
        exemplars=True,
    ),
    Panel(
        "Time to first token by route",
        "s",
        quantiles("foundry_gateway_time_to_first_token_seconds", "route", "route"),
        "With tracing on, exemplars open the trace of a slow first token.",
        exemplars=True,
    ),
    Panel(
        "Time per output token by route",
        "s",
        quantiles("foundry_gateway_time_per_output_token_seconds", "route", "route"),
    ),
    Panel(
        "Tokens per second by type",
        "short",
        ((f"sum by (type) (rate(foundry_gateway_tokens_total{NS}[{RI}]))", "{{type}}"),),
        "input, output, cache_read and cache_creation tokens reported by Foundry.",
    ),
    Panel(
        "Upstream responses by status",
        "reqps",
        (
            (
                f"sum by (upstream, status) (rate(foundry_gateway_upstream_requests_total{NS}[{RI}]))",
                "{{upstream}} {{status}}",
            ),
        ),
    ),
    Panel(
        "Upstream 429s by deployment",
        "reqps",
        (
            (
                f"sum by (upstream, deployment) (rate(foundry_gateway_upstream_requests_total{S429}[{RI}]))",
                "{{upstream}}/{{deployment}}",
            ),
        ),
        "Foundry throttling: the deployment's quota is exhausted.",
    ),
    Panel(
        "Upstream latency to headers",
        "s",
        quantiles("foundry_gateway_upstream_duration_seconds", "upstream", "upstream"),
    ),
    Panel(
        "Retries and fallbacks",
        "reqps",
        ((f"sum by (route, kind) (rate(foundry_gateway_retries_total{NS}[{RI}]))", "{{route}} {{kind}}"),),
        "Further attempts before the first byte: fallback to another target, or retry of the same one.",
    ),
    Panel(
        "Targets put in cooldown",
        "reqps",
        (
            (
                f"sum by (upstream, deployment) (rate(foundry_gateway_target_cooldowns_total{NS}[{RI}]))",
                "{{upstream}}/{{deployment}}",
            ),
        ),
    ),
    Panel(
        "Upstream answers refused",
        "reqps",
        (
            (
                f"sum by (upstream, reason) (rate(foundry_gateway_upstream_unusable_answers_total{NS}[{RI}]))",
                "{{upstream}} {{reason}}",
            ),
        ),
        "Answered 502 instead: redirects (never followed), statuses other than 200, bodies over the limit or "
        "not a Messages API answer. Anything here is a misconfigured or misbehaving upstream (or what is in front "
        "of it); alert FoundryGatewayUpstreamAnswersRefused.",
    ),
    Panel(
        "Fitted to the deployments' capabilities",
        "reqps",
        (
            (
                f"sum by (upstream, beta) (rate(foundry_gateway_betas_dropped_total{NS}[{RI}]))",
                "{{upstream}} dropped {{beta}}",
            ),
            (
                f"sum by (upstream, deployment, feature) (rate(foundry_gateway_capability_refused_total{NS}[{RI}]))",
                "{{upstream}}/{{deployment}} refused {{feature}}",
            ),
        ),
        "Betas the route's capability profile kept back, and what Foundry refused that the profile did not say "
        "was lacking (alert FoundryGatewayCapabilityProfileIncomplete: a line to add to upstreams[].capabilities; "
        "docs/capabilities.md).",
    ),
    Panel("In-flight requests", "short", ((f"sum(foundry_gateway_in_flight_requests{NS})", "in flight"),)),
    Panel(
        "Client connections",
        "short",
        (
            (f"sum(foundry_gateway_open_connections{NS})", "open"),
            (
                f"sum by (reason) (rate(foundry_gateway_connections_closed_total{NS}[{RI}]))",
                "closed by the gateway: {{reason}} (/s)",
            ),
        ),
        "limit: refused at server.max_connections (alert FoundryGatewayConnectionLimit); header_timeout: no "
        "request head within server.header_timeout_seconds (slow or idle clients).",
    ),
    Panel(
        "Streams ended by an error",
        "reqps",
        ((f"sum by (route, reason) (rate(foundry_gateway_stream_errors_total{NS}[{RI}]))", "{{route}} {{reason}}"),),
    ),
    Panel(
        "Client disconnects",
        "reqps",
        ((f"sum by (route) (rate(foundry_gateway_client_disconnects_total{NS}[{RI}]))", "{{route}}"),),
    ),
    Panel(
        "Gateway memory (RSS) per pod",
        "bytes",
        ((f"process_resident_memory_bytes{NS} and on (instance) {GATEWAY}", "{{pod}} {{instance}}"),),
        "Resident memory of the gateway process; idle is about 55 MB, and 1,000 open streams add about 40 MB.",
    ),
    Panel(
        "Gateway CPU per pod",
        "percentunit",
        ((f"rate(process_cpu_seconds_total{NS}[{RI}]) and on (instance) {GATEWAY}", "{{pod}} {{instance}}"),),
        "One event loop: at 100% of a core the pod serves no more, whatever its CPU limit (scale out instead).",
    ),
    Panel(
        "Span export process CPU per pod",
        "percentunit",
        ((f"rate(foundry_gateway_span_exporter_process_cpu_seconds_total{NS}[{RI}])", "{{pod}}"),),
        "With tracing on: the process beside the event loop that makes and exports the gateway's spans "
        "(docs/observability.md). Near one core, it falls behind and spans are dropped.",
    ),
    Panel(
        "Spans dropped",
        "short",
        ((f"sum by (reason) (rate(foundry_gateway_spans_dropped_total{NS}[{RI}]))", "{{reason}}"),),
        "With tracing on: spans never exported. backlog: the export process is behind (collector slow or "
        "down, or too little CPU); exporter_down: it is restarting. Alert FoundryGatewaySpansDropped.",
    ),
    Panel(
        "Gateway garbage collections",
        "ops",
        (
            (
                f"sum by (generation) (rate(python_gc_collections_total{NS}[{RI}]) and on (instance) {GATEWAY})",
                "generation {{generation}}",
            ),
        ),
        "Start-up objects are frozen and young collections run every 10,000 allocations (docs/benchmarks.md).",
    ),
    *QUOTA,
)

TOKENS = (
    Panel(
        "Gateway: time until each upstream's token expires",
        "s",
        (
            (
                f"min by (upstream) (foundry_gateway_upstream_token_expiry_timestamp_seconds{NS}) - time()",
                "{{upstream}}",
            ),
        ),
        "Alert FoundryGatewayTokenExpiringSoon fires under 10 minutes.",
    ),
    Panel(
        "Sidecar: time until the written token expires",
        "s",
        ((f"min by (token) (token_sidecar_token_expiry_timestamp_seconds{NS}) - time()", "{{token}}"),),
    ),
    Panel(
        "Sidecar: refreshes by result",
        "ops",
        ((f"sum by (token, result) (rate(token_sidecar_refresh_attempts_total{NS}[{RI}]))", "{{token}} {{result}}"),),
    ),
    Panel(
        "Sidecar: consecutive refresh failures",
        "short",
        ((f"max by (token) (token_sidecar_consecutive_failures{NS})", "{{token}}"),),
        "0 when healthy; alert TokenSidecarRefreshFailing fires at 3 for 5 minutes.",
    ),
    Panel(
        "Sidecar: time since the last successful refresh",
        "s",
        ((f"time() - max by (token) (token_sidecar_last_success_timestamp_seconds{NS})", "{{token}}"),),
    ),
)


COST = f"foundry_gateway_cost_usd_total{NS}"
CLIENT_TOKENS = "foundry_gateway_client_tokens_total"
SPEND = (
    Panel(
        "Spend per client, per UTC day",
        "currencyUSD",
        ((f"sum by (client) (increase({COST}[1d]))", "{{client}}"),),
        "At the routes' prices (docs/cost.md); anonymous is traffic with inbound auth off.",
    ),
    Panel(
        "Spend rate by client (USD an hour)",
        "currencyUSD",
        ((f"sum by (client) (rate({COST}[{RI}])) * 3600", "{{client}}"),),
    ),
    Panel(
        "Top routes by spend, last 24 h",
        "currencyUSD",
        ((f"topk(10, sum by (route) (increase({COST}[1d])))", "{{route}}"),),
    ),
    Panel(
        "Tokens by client and type",
        "short",
        ((f"sum by (client, type) (rate({CLIENT_TOKENS}{NS}[{RI}]))", "{{client}} {{type}}"),),
    ),
    Panel(
        "Prompt cache hit rate",
        "percentunit",
        (
            (
                f'sum(rate({CLIENT_TOKENS}{{namespace=~"$namespace", type="cache_read"}}[{RI}])) / '
                f'sum(rate({CLIENT_TOKENS}{{namespace=~"$namespace", type=~"input|cache_read|cache_write"}}[{RI}]))',
                "cache reads / input",
            ),
        ),
        "Share of prompt tokens read from the cache; reads cost a tenth of input.",
    ),
    Panel(
        "What caching saved, last 24 h",
        "currencyUSD",
        ((f"sum by (route) (increase(foundry_gateway_cache_savings_usd_total{NS}[1d]))", "{{route}}"),),
    ),
    Panel(
        "Shared limits store (Redis): admission round trip",
        "s",
        quantiles("foundry_gateway_shared_state_duration_seconds", "namespace", "namespace"),
        "Bounded by state.redis.timeout_ms; empty without state.redis.",
    ),
    Panel(
        "Shared limits store (Redis): failures",
        "ops",
        ((f"sum by (operation) (rate(foundry_gateway_shared_state_errors_total{NS}[{RI}]))", "{{operation}}"),),
        "Alert FoundryGatewaySharedStateErrors fires after 5 minutes of failures.",
    ),
)


def _layout(panels: tuple[Panel, ...]) -> list[dict[str, int]]:
    """Two panels a line; a row takes a line of its own."""
    places, x, y = [], 0, 0
    for panel in panels:
        if panel.kind == "row":
            y += 8 if x else 0
            places.append({"h": 1, "w": 24, "x": 0, "y": y})
            x, y = 0, y + 1
            continue
        places.append({"h": 8, "w": 12, "x": x, "y": y})
        x, y = (12, y) if x == 0 else (0, y + 8)
    return places


def dashboard(uid: str, title: str, panels: tuple[Panel, ...], metric_for_namespaces: str) -> dict[str, Any]:
    rendered: list[dict[str, Any]] = []
    for i, (panel, place) in enumerate(zip(panels, _layout(panels), strict=True)):
        if panel.kind == "row":
            rendered.append({"id": i + 1, "type": "row", "title": panel.title, "collapsed": False,
                             "gridPos": place, "panels": []})  # fmt: skip
            continue
        rendered.append(
            {
                "id": i + 1,
                "type": panel.kind,
                "title": panel.title,
                "description": panel.description,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": place,
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
                "targets": [
                    {
                        "refId": chr(ord("A") + j),
                        "datasource": {"type": "prometheus", "uid": "${datasource}"},
                        "expr": expr,
                        "legendFormat": legend,
                        **({"exemplar": True} if panel.exemplars else {}),
                    }
                    for j, (expr, legend) in enumerate(panel.targets)
                ],
            }
        )
    return {
        "uid": uid,
        "title": title,
        "tags": ["foundry-gateway"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": f"label_values({metric_for_namespaces}, namespace)",
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "refresh": 2,
                },
            ]
        },
        "panels": rendered,
    }


DASHBOARDS = {
    "foundry-gateway-overview.json": dashboard(
        "foundry-gateway-overview", "Foundry gateway: overview", OVERVIEW, "foundry_gateway_build_info"
    ),
    "foundry-gateway-spend.json": dashboard(
        "foundry-gateway-spend", "Foundry gateway: spend", SPEND, "foundry_gateway_build_info"
    ),
    "foundry-gateway-tokens.json": dashboard(
        "foundry-gateway-tokens", "Foundry gateway: Entra tokens", TOKENS, "token_sidecar_build_info"
    ),
}


def main() -> int:
    files = {OUT / name: json.dumps(board, indent=2) + "\n" for name, board in DASHBOARDS.items()}
    return emit(files, "scripts/gen_dashboards.py")


if __name__ == "__main__":
    sys.exit(main())
