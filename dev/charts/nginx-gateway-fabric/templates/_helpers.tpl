{{- define "nginx-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name, with the chart's unless it holds it. */}}
{{- define "nginx-gateway.fullname" -}}
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

{{- define "nginx-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nginx-gateway.labels" -}}
helm.sh/chart: {{ include "nginx-gateway.chart" . }}
{{ include "nginx-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "nginx-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nginx-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nginx-gateway.serviceAccountName" -}}
{{- default (include "nginx-gateway.fullname" .) .Values.nginxGateway.serviceAccount.name -}}
{{- end -}}

{{- define "nginx-gateway.proxy-config-name" -}}
{{- printf "%s-proxy-config" (include "nginx-gateway.fullname" .) -}}
{{- end -}}

{{- define "nginx-gateway.config-name" -}}
{{- printf "%s-config" (include "nginx-gateway.fullname" .) -}}
{{- end -}}

{{- define "nginx-gateway.leaderElectionName" -}}
{{- default (printf "%s-leader-election" (include "nginx-gateway.fullname" .)) .Values.nginxGateway.leaderElection.lockName -}}
{{- end -}}

{{/* An image from {repository, tag}; the tag defaults to the chart's appVersion. */}}
{{- define "nginx-gateway.image" -}}
{{- printf "%s:%s" .image.repository (default .context.Chart.AppVersion (toString .image.tag)) -}}
{{- end -}}
