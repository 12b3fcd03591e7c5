{{/* The manager's labels, over the common chart's standard ones. */}}
{{- define "occm.labels" -}}
{{- include "common.labels.standard" (dict "customLabels" .Values.commonLabels "context" .) }}
{{- end -}}

{{- define "occm.selectorLabels" -}}
{{- include "common.labels.matchLabels" (dict "component" "controllermanager" "context" .) }}
{{- end -}}

{{/* cloud.conf: cloudConfigContents as given, else the INI sections of cloudConfig. */}}
{{- define "cloudConfig" -}}
{{- if .Values.cloudConfigContents -}}
{{- .Values.cloudConfigContents -}}
{{- else -}}
[Global]
{{- range $key, $value := .Values.cloudConfig.global }}
{{ $key }} = {{ $value | quote }}
{{- end }}

[Networking]
{{- range $key, $value := .Values.cloudConfig.networking }}
{{ $key }} = {{ $value | quote }}
{{- end }}

[LoadBalancer]
{{- range $key, $value := .Values.cloudConfig.loadBalancer }}
{{ $key }} = {{ $value | quote }}
{{- end }}

[BlockStorage]
{{- range $key, $value := .Values.cloudConfig.blockStorage }}
{{ $key }} = {{ $value | quote }}
{{- end }}

[Metadata]
{{- range $key, $value := .Values.cloudConfig.metadata }}
{{ $key }} = {{ $value | quote }}
{{- end }}
{{- end -}}
{{- end -}}
