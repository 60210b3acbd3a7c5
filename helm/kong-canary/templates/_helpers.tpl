{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "kong-canary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: "<release>-<chart>", or the release name alone when it already contains the chart name.
*/}}
{{- define "kong-canary.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kong-canary.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "kong-canary.labels" -}}
helm.sh/chart: {{ include "kong-canary.chart" . }}
{{ include "kong-canary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kong-canary
{{- end }}

{{/*
Selector labels shared by everything of this release. Workloads add a component label so the
Service, PDB and NetworkPolicy select only the server pods (never hook Jobs or test pods).
*/}}
{{- define "kong-canary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kong-canary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kong-canary.serverSelectorLabels" -}}
{{ include "kong-canary.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "kong-canary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kong-canary.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kong-canary.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
In-cluster URL. It ends in ".svc", not ".svc.cluster.local": Orca's default
user-configured-url-restrictions exclude hosts ending in "local" (UserConfiguredUrlRestrictions.java).
*/}}
{{- define "kong-canary.inClusterUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "kong-canary.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}

{{- define "kong-canary.publicUrl" -}}
{{- default (include "kong-canary.inClusterUrl" .) .Values.config.publicUrl }}
{{- end }}

{{- define "kong-canary.secretName" -}}
{{- default (include "kong-canary.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/*
Secret keys: the chart's own Secret uses fixed keys, an existing one the configured keys.
*/}}
{{- define "kong-canary.secretKey.tokens" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKeys.tokens }}{{ else }}tokens{{ end }}
{{- end }}
{{- define "kong-canary.secretKey.kongAdminToken" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKeys.kongAdminToken }}{{ else }}kong-admin-token{{ end }}
{{- end }}
{{- define "kong-canary.secretKey.konnectToken" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKeys.konnectToken }}{{ else }}konnect-token{{ end }}
{{- end }}
{{- define "kong-canary.secretKey.rampSecret" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKeys.rampSecret }}{{ else }}ramp-secret{{ end }}
{{- end }}
{{- define "kong-canary.secretKey.gatewayIngestToken" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKeys.gatewayIngestToken }}{{ else }}gateway-ingest-token{{ end }}
{{- end }}

{{/*
Gateway metrics: where Kong's proxies post, and which token they send. The default URL is the
in-cluster one, not config.publicUrl: Kong's proxies usually run in this cluster (the NetworkPolicy
admits them by pod), while publicUrl is what Spinnaker reaches, often through an ingress.
*/}}
{{- define "kong-canary.gatewayIngestUrl" -}}
{{- default (include "kong-canary.inClusterUrl" .) .Values.gatewayMetrics.ingestUrl }}
{{- end }}

{{/* Name of the token the chart generates for Kong's http-log when auth.tokens is empty. */}}
{{- define "kong-canary.generatedIngestTokenName" -}}kong-http-log{{- end }}

{{/* Name of the ingest token's auth.tokens line; empty with auth.existingSecret (unknown). */}}
{{- define "kong-canary.gatewayIngestTokenName" -}}
{{- if .Values.auth.existingSecret }}
{{- else if .Values.auth.tokens }}{{ .Values.gatewayMetrics.ingestTokenName }}
{{- else }}{{ include "kong-canary.generatedIngestTokenName" . }}
{{- end }}
{{- end }}

{{/*
Fixed paths inside the container; the Dockerfile and the app use the same ones.
*/}}
{{- define "kong-canary.metricsDir" -}}/var/run/kong-canary/metrics{{- end }}
{{- define "kong-canary.tokensDir" -}}/etc/kong-canary/tokens{{- end }}
{{- define "kong-canary.kongTlsDir" -}}/etc/kong-canary/kong-tls{{- end }}

{{/*
Cross-field checks JSON Schema draft-07 cannot express; each message names the fields.
*/}}
{{- define "kong-canary.validate" -}}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set only one of minAvailable and maxUnavailable (set the other to null)" }}
{{- end }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "podDisruptionBudget: set one of minAvailable and maxUnavailable" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (kindIs "invalid" .Values.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" .Values.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling: set targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- $tls := .Values.kong.tls }}
{{- if and (or $tls.caKey $tls.clientCertKey $tls.clientKeyKey) (not $tls.existingSecret) }}
{{- fail "kong.tls.existingSecret is required when kong.tls.caKey, clientCertKey or clientKeyKey is set" }}
{{- end }}
{{- if ne (empty $tls.clientCertKey) (empty $tls.clientKeyKey) }}
{{- fail "kong.tls.clientCertKey and kong.tls.clientKeyKey must be set together" }}
{{- end }}
{{- if gt (float64 .Values.config.leaseDefault) (float64 .Values.config.leaseMax) }}
{{- fail "config.leaseDefault must not exceed config.leaseMax (the app refuses to start)" }}
{{- end }}
{{- include "kong-canary.validateGatewayMetrics" . }}
{{- end }}

{{/*
The ingest token goes into Kong's http-log config and comes back on every batch: the app accepts
it only if it is one of the API tokens with role write (sidecar/settings.py, _validate_gateway).
Checked here for tokens the chart knows; an existing Secret's are checked by the app at start.
*/}}
{{- define "kong-canary.validateGatewayMetrics" -}}
{{- $gm := .Values.gatewayMetrics }}
{{- if $gm.enabled }}
{{- if .Values.auth.existingSecret }}
{{- if $gm.ingestTokenName }}
{{- fail "gatewayMetrics.ingestTokenName must be empty with auth.existingSecret: Kong's token is read from its key auth.existingSecretKeys.gatewayIngestToken (and must be a write token of its tokens file)" }}
{{- end }}
{{- else if .Values.auth.tokens }}
{{- if not $gm.ingestTokenName }}
{{- fail "gatewayMetrics.ingestTokenName is required with auth.tokens: name the write token Kong's http-log sends (best a dedicated one, e.g. {name: kong-http-log, token: ...})" }}
{{- end }}
{{- $found := dict }}
{{- range .Values.auth.tokens }}
{{- if eq .name $gm.ingestTokenName }}{{ $found = . }}{{ end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "gatewayMetrics.ingestTokenName: no auth.tokens entry is named %q" $gm.ingestTokenName) }}
{{- end }}
{{- $role := default "write" $found.role }}
{{- if ne $role "write" }}
{{- fail (printf "gatewayMetrics.ingestTokenName: token %q has role %s, needs role write (/v1/kong-log refuses read; an admin token would sit in Kong's plugin config, readable through its Admin API)" $gm.ingestTokenName $role) }}
{{- end }}
{{- else if $gm.ingestTokenName }}
{{- fail (printf "gatewayMetrics.ingestTokenName: auth.tokens is empty, so no token is named %q; leave it empty and the chart generates the write token %q" $gm.ingestTokenName (include "kong-canary.generatedIngestTokenName" .)) }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.kongHttpLog.from) }}
{{- fail "networkPolicy.kongHttpLog.from is empty while gatewayMetrics.enabled: the NetworkPolicy would drop every http-log batch from Kong's proxies" }}
{{- end }}
{{- end }}
{{- end }}
