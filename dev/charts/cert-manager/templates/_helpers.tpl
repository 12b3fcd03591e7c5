{{- define "cert-manager.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name, with the chart's unless it holds it. */}}
{{- define "cert-manager.fullname" -}}
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

{{- define "webhook.fullname" -}}
{{- printf "%s-webhook" (include "cert-manager.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cainjector.fullname" -}}
{{- printf "%s-cainjector" (include "cert-manager.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "startupapicheck.fullname" -}}
{{- printf "%s-startupapicheck" (include "cert-manager.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret the webhook keeps its CA in, which the cainjector reads. */}}
{{- define "webhook.caRef" -}}
{{- printf "%s/%s-ca" (include "cert-manager.namespace" .) (include "webhook.fullname" .) -}}
{{- end -}}

{{- define "cert-manager.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{- define "chartName" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A component's labels: call with (dict "context" $ "component" "controller"). */}}
{{- define "cert-manager.labels" -}}
{{ include "cert-manager.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
helm.sh/chart: {{ include "chartName" .context }}
{{- with .context.Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* What a component's selector matches: call as cert-manager.labels. */}}
{{- define "cert-manager.selectorLabels" -}}
app.kubernetes.io/name: {{ eq .component "controller" | ternary (include "cert-manager.name" .context) .component }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{/* An image reference; the tag defaults to the chart's appVersion. */}}
{{- define "cert-manager.image" -}}
{{- printf "%s:%s" .image.repository (default .context.Chart.AppVersion (toString .image.tag)) -}}
{{- end -}}

{{/* A component's service account: call with (dict "sa" ... "default" "..."). */}}
{{- define "cert-manager.serviceAccountName" -}}
{{- if .sa.create -}}
{{- default .default .sa.name -}}
{{- else -}}
{{- default "default" .sa.name -}}
{{- end -}}
{{- end -}}

{{/* The CRDs' metadata: name, labels, and the keep policy. */}}
{{- define "cert-manager.crd.metadata" -}}
name: {{ .name }}
labels:
  {{- include "cert-manager.labels" (dict "context" .context "component" "crds") | nindent 2 }}
{{- if .context.Values.crds.keep }}
annotations:
  helm.sh/resource-policy: keep
{{- end }}
{{- end -}}

{{/* Whether the chart renders its CRDs (installCRDs is the old switch). */}}
{{- define "cert-manager.crd.enabled" -}}
{{- if or .Values.crds.enabled .Values.installCRDs -}}true{{- end -}}
{{- end -}}

{{/* A condition as every cert-manager kind reports it. */}}
{{- define "cert-manager.crd.conditions" -}}
conditions:
  type: array
  x-kubernetes-list-type: map
  x-kubernetes-list-map-keys: [type]
  items:
    type: object
    required: [status, type]
    properties:
      type:
        type: string
      status:
        type: string
        enum: ["True", "False", "Unknown"]
      reason:
        type: string
      message:
        type: string
      lastTransitionTime:
        type: string
        format: date-time
      observedGeneration:
        type: integer
        format: int64
{{- end -}}

{{/* A reference to an issuer. */}}
{{- define "cert-manager.crd.issuerRef" -}}
issuerRef:
  type: object
  required: [name]
  properties:
    name:
      type: string
    kind:
      type: string
    group:
      type: string
{{- end -}}

{{/* An issuer's spec (Issuer and ClusterIssuer share it). */}}
{{- define "cert-manager.crd.issuerSpec" -}}
type: object
properties:
  acme:
    type: object
    required: [privateKeySecretRef, server]
    properties:
      server:
        type: string
      email:
        type: string
      skipTLSVerify:
        type: boolean
      privateKeySecretRef:
        type: object
        required: [name]
        properties:
          name:
            type: string
          key:
            type: string
      solvers:
        type: array
        items:
          type: object
          x-kubernetes-preserve-unknown-fields: true
  ca:
    type: object
    required: [secretName]
    properties:
      secretName:
        type: string
  selfSigned:
    type: object
    properties:
      crlDistributionPoints:
        type: array
        items:
          type: string
  vault:
    type: object
    x-kubernetes-preserve-unknown-fields: true
{{- end -}}
