{{- define "metrics.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{/* The parent's define of the same name wins, as in Helm. */}}
{{- define "webapp.name" -}}from-subchart{{- end }}
