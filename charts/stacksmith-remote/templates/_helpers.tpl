{{/* The chart's name. */}}
{{- define "stacksmith-remote.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the name of every object this chart makes. */}}
{{- define "stacksmith-remote.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "stacksmith-remote.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "stacksmith-remote.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "stacksmith-remote.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "stacksmith-remote.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount stacksmith acts as. */}}
{{- define "stacksmith-remote.serviceAccountName" -}}
{{- default (include "stacksmith-remote.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The name of the token Secret. */}}
{{- define "stacksmith-remote.tokenSecretName" -}}
{{- printf "%s-token" (include "stacksmith-remote.serviceAccountName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
