{{/* The chart's name, cut to fit a label. */}}
{{- define "cilium.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* name-version, for the helm.sh/chart label. */}}
{{- define "cilium.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "cilium.labels" -}}
helm.sh/chart: {{ include "cilium.chart" . }}
app.kubernetes.io/part-of: cilium
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of a component: call with (dict "ctx" $ "component" "agent"). */}}
{{- define "cilium.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "cilium-%s" .component }}
k8s-app: {{ eq .component "agent" | ternary "cilium" (printf "cilium-%s" .component) }}
{{- end -}}

{{/* An image reference from {repository, tag}. */}}
{{- define "cilium.image" -}}
{{- printf "%s:%s" .repository (.tag | toString) -}}
{{- end -}}

{{/* The PodDisruptionBudget API the cluster serves. */}}
{{- define "cilium.pdb.apiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}
