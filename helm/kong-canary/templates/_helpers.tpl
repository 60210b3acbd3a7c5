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
{{- end }}
