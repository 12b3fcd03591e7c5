{{- define "cinder-csi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cinder-csi.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "cinder-csi.labels" -}}
helm.sh/chart: {{ include "cinder-csi.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of a component: call with (dict "context" $ "component" "..."). */}}
{{- define "cinder-csi.selectorLabels" -}}
app: {{ include "cinder-csi.name" .context }}
release: {{ .context.Release.Name }}
component: {{ .component }}
{{- end -}}

{{/* A sidecar's image; the plugin's tag defaults to the chart's appVersion. */}}
{{- define "cinder-csi.image" -}}
{{- printf "%s:%s" .image.repository (default .context.Chart.AppVersion (toString .image.tag)) -}}
{{- end -}}

{{/* Where the plugin finds cloud.conf. */}}
{{- define "cinder-csi.cloudConfigPath" -}}
{{- printf "/etc/kubernetes/%s" .Values.secret.filename -}}
{{- end -}}

{{/* The volume and mount that carry cloud.conf. */}}
{{- define "cinder-csi.cloudConfigVolume" -}}
- name: cloud-config
  {{- if .Values.secret.enabled }}
  secret:
    secretName: {{ required "secret.name names the Secret holding cloud.conf" .Values.secret.name }}
  {{- else }}
  hostPath:
    path: /etc/kubernetes
  {{- end }}
{{- end -}}
