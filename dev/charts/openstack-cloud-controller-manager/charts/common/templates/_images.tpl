{{/* An image reference: call with (dict "imageRoot" .Values.image "context" $); the
tag defaults to the chart's appVersion. */}}
{{- define "common.images.image" -}}
{{- $tag := default .context.Chart.AppVersion (toString .imageRoot.tag) -}}
{{- printf "%s:%s" .imageRoot.repository $tag -}}
{{- end -}}
