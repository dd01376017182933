{{/* The token sidecar container; native: an initContainer that keeps running (restartPolicy Always). */}}
{{- define "fgw.sidecarContainer" -}}
{{- $root := .root -}}
{{- $v := $root.Values.sidecar -}}
- name: token-sidecar
  image: {{ include "fgw.sidecarImage" $root }}
  imagePullPolicy: {{ $root.Values.image.sidecar.pullPolicy }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  ports:
    - name: sidecar-health
      containerPort: {{ $v.healthPort }}
      protocol: TCP
  env:
    - name: AZURE_TENANT_ID
      value: {{ $v.tenantId | quote }}
    - name: AZURE_CLIENT_ID
      value: {{ $v.clientId | quote }}
    {{- if $v.authorityHost }}
    - name: AZURE_AUTHORITY_HOST
      value: {{ $v.authorityHost | quote }}
    {{- end }}
    {{- if eq $v.credential "clientSecret" }}
    # A file rather than a variable: it never shows in the process environment, and rotates.
    - name: TOKEN_SIDECAR_CLIENT_SECRET_FILE
      value: /etc/foundry-gateway/entra-secret/{{ $v.clientSecret.secretKey }}
    {{- else if eq $v.credential "certificate" }}
    - name: AZURE_CLIENT_CERTIFICATE_PATH
      value: /etc/foundry-gateway/entra-certificate/{{ $v.certificate.secretKey }}
    {{- end }}
    - name: TOKEN_SIDECAR_OUTPUT
      value: {{ include "fgw.tokenFile" $root }}
    - name: TOKEN_SIDECAR_SCOPE
      value: {{ $v.scope | quote }}
    - name: TOKEN_SIDECAR_HEALTH_PORT
      value: {{ $v.healthPort | quote }}
    - name: TOKEN_SIDECAR_READY_MARGIN
      value: {{ $v.readyMarginSeconds | quote }}
    - name: TOKEN_SIDECAR_LOG_FORMAT
      value: {{ $root.Values.gateway.logFormat | quote }}
    {{- include "fgw.tracingEnv" (dict "root" $root "service" "foundry-gateway-token-sidecar") | nindent 4 }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  startupProbe:
    # Passes once the first token is written: a native sidecar holds the gateway back until then.
    httpGet: {path: /readyz, port: sidecar-health}
    periodSeconds: 1
    failureThreshold: 120
  readinessProbe:
    httpGet: {path: /readyz, port: sidecar-health}
    periodSeconds: 10
  livenessProbe:
    httpGet: {path: /healthz, port: sidecar-health}
    periodSeconds: 10
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: token
      mountPath: {{ include "fgw.tokenDir" $root }}
    {{- if eq $v.credential "certificate" }}
    - name: entra-certificate
      mountPath: /etc/foundry-gateway/entra-certificate
      readOnly: true
    {{- else if eq $v.credential "clientSecret" }}
    - name: entra-secret
      mountPath: /etc/foundry-gateway/entra-secret
      readOnly: true
    {{- end }}
{{- end -}}
