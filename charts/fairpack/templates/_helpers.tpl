{{/* Name of the chart's objects. */}}
{{- define "fairpack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object's name: <release>-<chart>, or the release alone when it already holds the chart name. */}}
{{- define "fairpack.fullname" -}}
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

{{/* Names of the three components' objects (Deployment, ServiceAccount, Service, ...). */}}
{{- define "fairpack.operator.name" -}}{{ include "fairpack.fullname" . | trunc 54 | trimSuffix "-" }}-operator{{- end -}}
{{- define "fairpack.extender.name" -}}{{ include "fairpack.fullname" . | trunc 54 | trimSuffix "-" }}-extender{{- end -}}
{{- define "fairpack.scheduler.name" -}}{{ include "fairpack.fullname" . | trunc 53 | trimSuffix "-" }}-scheduler{{- end -}}
{{- define "fairpack.extender.tlsSecret" -}}
{{- if eq .Values.extender.tls.source "secret" -}}{{ .Values.extender.tls.secretName }}{{- else -}}{{ include "fairpack.extender.name" . }}-tls{{- end -}}
{{- end -}}

{{/* The extender Service's in-cluster DNS name: what its certificate names and the scheduler dials. */}}
{{- define "fairpack.extender.host" -}}
{{ include "fairpack.extender.name" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* Labels of every object. */}}
{{- define "fairpack.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "fairpack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fairpack
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "fairpack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fairpack.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* fairpack's own image. */}}
{{- define "fairpack.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Pod affinity: the value given, else a preferred spread of one component's replicas over nodes. */}}
{{- define "fairpack.affinity" -}}
{{- if .affinity -}}
{{ toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "fairpack.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end -}}
{{- end -}}

{{/* The operator webhook Service's in-cluster DNS name: what its certificate names. */}}
{{- define "fairpack.webhook.name" -}}{{ include "fairpack.operator.name" . }}-webhook{{- end -}}
{{- define "fairpack.webhook.host" -}}
{{ include "fairpack.webhook.name" . }}.{{ .Release.Namespace }}.svc
{{- end -}}
{{- define "fairpack.webhook.tlsSecret" -}}
{{- if eq .Values.extender.tls.source "secret" -}}{{ .Values.operator.webhook.tls.secretName }}{{- else -}}{{ include "fairpack.webhook.name" . }}-tls{{- end -}}
{{- end -}}

{{/* A selfSigned Secret's data (tls.crt, tls.key, ca.crt, base64) as YAML: the Secret's current data
when it exists, so the CA a client trusts stays valid across upgrades, else a new CA and certificate.
Call with (dict "ctx" $ "secretName" ... "caName" ... "host" ... "dnsNames" (list ...) "ips" (list ...)). */}}
{{- define "fairpack.selfSignedData" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secretName }}
{{- if and $existing (index $existing.data "ca.crt") -}}
tls.crt: {{ index $existing.data "tls.crt" }}
tls.key: {{ index $existing.data "tls.key" }}
ca.crt: {{ index $existing.data "ca.crt" }}
{{- else -}}
{{- $days := int .ctx.Values.extender.tls.selfSignedDays }}
{{- $ca := genCA .caName $days }}
{{- $cert := genSignedCert .host .ips .dnsNames $days $ca -}}
tls.crt: {{ $cert.Cert | b64enc }}
tls.key: {{ $cert.Key | b64enc }}
ca.crt: {{ $ca.Cert | b64enc }}
{{- end -}}
{{- end -}}
