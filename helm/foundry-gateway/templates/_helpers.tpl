{{- define "fgw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fgw.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "fgw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fgw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "fgw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fgw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fgw.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fgw.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}
{{- end -}}

{{- define "fgw.gatewayImage" -}}
{{- include "fgw.image" (merge (dict "appVersion" .Chart.AppVersion) .Values.image.gateway) -}}
{{- end -}}

{{- define "fgw.sidecarImage" -}}
{{- include "fgw.image" (merge (dict "appVersion" .Chart.AppVersion) .Values.image.sidecar) -}}
{{- end -}}

{{/* Paths inside the pod; the gateway config refers to them. */}}
{{- define "fgw.tokenDir" -}}/var/run/foundry-token{{- end -}}
{{- define "fgw.tokenFile" -}}/var/run/foundry-token/token.json{{- end -}}
{{- define "fgw.configDir" -}}/etc/foundry-gateway/config{{- end -}}
{{- define "fgw.apiKeyDir" -}}/etc/foundry-gateway/api-keys{{- end -}}
{{- define "fgw.reasoningKeysDir" -}}/etc/foundry-gateway/reasoning-keys{{- end -}}
{{- define "fgw.redisDir" -}}/etc/foundry-gateway/redis{{- end -}}

{{/* True ("true") when any upstream authenticates with Entra, so the pod needs the sidecar. */}}
{{- define "fgw.needsSidecar" -}}
{{- range .Values.upstreams -}}{{- if eq .auth.type "entra" -}}true{{- end -}}{{- end -}}
{{- end -}}

{{/* Cross-references the JSON schema cannot express, refused with the key and the reason. */}}
{{- define "fgw.validate" -}}
{{- $names := list -}}
{{- range $i, $u := .Values.upstreams -}}
{{- if has $u.name $names -}}{{- fail (printf "upstreams[%d].name: %q is defined twice" $i $u.name) -}}{{- end -}}
{{- $names = append $names $u.name -}}
{{- if and (eq $u.auth.type "api_key") (not (or $u.auth.secretName $u.auth.key_env $u.auth.key_file)) -}}
{{- fail (printf "upstreams[%d].auth: api_key needs secretName (a Secret holding the Foundry key), key_env or key_file" $i) -}}
{{- end -}}
{{- end -}}
{{- range $i, $r := .Values.routes -}}
{{- range $j, $t := $r.targets -}}
{{- if not (has $t.upstream $names) -}}
{{- fail (printf "routes[%d].targets[%d].upstream: %q is not one of the upstreams (%s)" $i $j $t.upstream (join ", " $names)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $drain := add .Values.preStopSleepSeconds .Values.gateway.drainDelaySeconds .Values.gateway.drainTimeoutSeconds -}}
{{- if gt (int $drain) (int .Values.terminationGracePeriodSeconds) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must cover preStopSleepSeconds + gateway.drainDelaySeconds + gateway.drainTimeoutSeconds (%d), or streams are cut" (int .Values.terminationGracePeriodSeconds) (int $drain)) -}}
{{- end -}}
{{- if include "fgw.needsSidecar" . -}}
{{- if not (and .Values.sidecar.tenantId .Values.sidecar.clientId) -}}
{{- fail "sidecar.tenantId and sidecar.clientId are required when an upstream uses auth.type entra" -}}
{{- end -}}
{{- if and (eq .Values.sidecar.credential "clientSecret") (not (or .Values.sidecar.clientSecret.existingSecret .Values.sidecar.clientSecret.value)) -}}
{{- fail "sidecar.clientSecret.existingSecret (or .value) is required when sidecar.credential is clientSecret" -}}
{{- end -}}
{{- if and (eq .Values.sidecar.credential "certificate") (not .Values.sidecar.certificate.existingSecret) -}}
{{- fail "sidecar.certificate.existingSecret is required when sidecar.credential is certificate" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The gateway config file: the schema gateway/config.py reads. */}}
{{- define "fgw.config" -}}
{{- $upstreams := list -}}
{{- range .Values.upstreams -}}
{{- $auth := dict "type" .auth.type -}}
{{- if eq .auth.type "entra" -}}
{{- $_ := set $auth "token_file" (default (include "fgw.tokenFile" $) .auth.token_file) -}}
{{- if hasKey .auth "recheck_seconds" }}{{ $_ := set $auth "recheck_seconds" .auth.recheck_seconds }}{{ end -}}
{{- else if .auth.secretName -}}
{{- $_ := set $auth "key_file" (printf "%s/%s" (include "fgw.apiKeyDir" $) .name) -}}
{{- else -}}
{{- $auth = omit .auth "secretName" "secretKey" -}}
{{- end -}}
{{- $u := dict "name" .name "base_url" .base_url "auth" $auth -}}
{{- if .timeouts }}{{ $_ := set $u "timeouts" .timeouts }}{{ end -}}
{{- if .hosting }}{{ $_ := set $u "hosting" .hosting }}{{ end -}}
{{- if .capabilities }}{{ $_ := set $u "capabilities" .capabilities }}{{ end -}}
{{- $upstreams = append $upstreams $u -}}
{{- end -}}
{{- $g := .Values.gateway -}}
{{- $server := dict "host" "0.0.0.0" "admin_host" "0.0.0.0" -}}
{{- range (include "fgw.serverKeys" . | splitList " ") -}}
{{- $pair := splitList ":" . -}}
{{- if hasKey $g (first $pair) }}{{ $_ := set $server (last $pair) (get $g (first $pair)) }}{{ end -}}
{{- end -}}
{{- $config := dict "server" $server "logging" (dict "level" $g.logLevel "format" $g.logFormat)
  "upstreams" $upstreams "routes" .Values.routes -}}
{{- with .Values.retries }}{{ $_ := set $config "retries" . }}{{ end -}}
{{- with .Values.inbound }}{{ $_ := set $config "inbound" . }}{{ end -}}
{{- /* Each replica meters its share of a quota pool while it cannot share it: under an HPA, the most
  replicas there may be, so the pods together never overrun the pool. */ -}}
{{- $state := dict "replicas" (ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled) -}}
{{- with .Values.state.redis }}{{ if .enabled -}}
{{- $redis := dict "url_file" (printf "%s/url" (include "fgw.redisDir" $)) "key_prefix" .keyPrefix "timeout_ms" .timeoutMs "on_error" .onError -}}
{{- $_ := set $state "redis" $redis -}}
{{- end }}{{ end -}}
{{- $_ := set $config "state" $state -}}
{{- with .Values.quotaPools }}{{ $_ := set $config "quota_pools" . }}{{ end -}}
{{- $responses := dict -}}
{{- if .Values.responses.reasoningKeys.existingSecret -}}
{{- $_ := set $responses "reasoning_keys_file" (printf "%s/keys" (include "fgw.reasoningKeysDir" .)) -}}
{{- end -}}
{{- with .Values.responses.storeTtlSeconds }}{{ $_ := set $responses "store_ttl_seconds" . }}{{ end -}}
{{- if $responses }}{{ $_ := set $config "responses" $responses }}{{ end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "fgw.apiKeyUpstreams" -}}
{{- range .Values.upstreams -}}{{- if and (eq .auth.type "api_key") .auth.secretName -}}x{{- end -}}{{- end -}}
{{- end -}}

{{/* OTEL_* for both containers: on only with tracing.exporter set. */}}
{{- define "fgw.tracingEnv" -}}
{{- $t := .root.Values.tracing -}}
{{- if $t.exporter }}
- name: OTEL_TRACES_EXPORTER
  value: {{ $t.exporter | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $t.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $t.samplerArg | quote }}
{{- with $t.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if $t.headers.existingSecret }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ $t.headers.existingSecret }}
      key: {{ $t.headers.secretKey }}
{{- end }}
{{- end }}
{{- end -}}
