{{/* The chart's name. */}}
{{- define "stacksmith.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the name of every object this chart makes. */}}
{{- define "stacksmith.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "stacksmith.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "stacksmith.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "stacksmith.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "stacksmith.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pod. */}}
{{- define "stacksmith.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stacksmith.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "stacksmith.serviceAccountName" -}}
{{- default (include "stacksmith.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The namespaces holding member kubeconfig Secrets, one a line. */}}
{{- define "stacksmith.secretNamespaces" -}}
{{- $namespaces := .Values.kubeconfigSecretNamespaces | default (list .Release.Namespace) }}
{{- range $namespaces | uniq }}
{{ . }}
{{- end }}
{{- end }}

{{/*
The operator's log filter: logLevel with `kube_client=off` appended, so the Kubernetes client
library's own lines (which can show request details) stay off whatever logLevel says. The most
specific directive for a target wins, and nothing is more specific for the client's lines than
`kube_client` unless logLevel names `kube_client` itself or holds a span directive (`[...]`,
which enables every line inside the span): both are refused here and by values.schema.json.
*/}}
{{- define "stacksmith.logFilter" -}}
{{- $level := .Values.logLevel | trim | trimSuffix "," }}
{{- if or (contains "kube_client" $level) (contains "[" $level) }}
{{- fail (printf "logLevel %q: may name neither kube_client nor a span ([...]); the chart keeps kube_client=off" .Values.logLevel) }}
{{- end }}
{{- printf "%s,kube_client=off" $level }}
{{- end }}
