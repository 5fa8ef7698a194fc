{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "tmf-events.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. Kept short enough that "<fullname>-processor-headless" and the
StatefulSet's pod names fit in a DNS label.
*/}}
{{- define "tmf-events.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tmf-events.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tmf-events.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tmf-events.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tmf-events.labels" -}}
helm.sh/chart: {{ include "tmf-events.chart" . }}
{{ include "tmf-events.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tmf-events
{{- end }}

{{/* Selector labels of one component: include "tmf-events.componentSelectorLabels" (list $ "processor") */}}
{{- define "tmf-events.componentSelectorLabels" -}}
{{ include "tmf-events.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "tmf-events.componentLabels" -}}
{{ include "tmf-events.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "tmf-events.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tmf-events.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tmf-events.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "tmf-events.configMapName" -}}
{{- printf "%s-config" (include "tmf-events.fullname" .) }}
{{- end }}

{{- define "tmf-events.configPath" -}}/etc/tmf-events/config.yaml{{- end }}
{{- define "tmf-events.kafkaCaDir" -}}/etc/tmf-events/kafka-tls{{- end }}

{{/* librdkafka security.protocol from the tls/sasl switches. */}}
{{- define "tmf-events.securityProtocol" -}}
{{- $k := .Values.kafka }}
{{- if and $k.tls.enabled $k.sasl.enabled }}SASL_SSL
{{- else if $k.sasl.enabled }}SASL_PLAINTEXT
{{- else if $k.tls.enabled }}SSL
{{- end }}
{{- end }}

{{/*
The settings file (config.yaml): the `config` values plus what the chart manages itself.
Secrets never appear here: the SASL credentials come from env vars (see the README).
*/}}
{{- define "tmf-events.configYaml" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "bootstrap_servers" .Values.kafka.bootstrapServers }}
{{- $_ := set $cfg "http_port" (int .Values.httpPort) }}
{{- $kafka := deepCopy .Values.kafka.config }}
{{- $protocol := include "tmf-events.securityProtocol" . }}
{{- if $protocol }}
{{- $_ := set $kafka "security.protocol" $protocol }}
{{- end }}
{{- $tls := .Values.kafka.tls }}
{{- if $tls.enabled }}
{{- $_ := required "kafka.tls.existingSecret is required when kafka.tls.enabled is true" $tls.existingSecret }}
{{- $dir := include "tmf-events.kafkaCaDir" . }}
{{- $_ := set $kafka "ssl.ca.location" (printf "%s/ca.crt" $dir) }}
{{- if and $tls.clientCertKey $tls.clientKeyKey }}
{{- $_ := set $kafka "ssl.certificate.location" (printf "%s/tls.crt" $dir) }}
{{- $_ := set $kafka "ssl.key.location" (printf "%s/tls.key" $dir) }}
{{- end }}
{{- end }}
{{- if .Values.kafka.sasl.enabled }}
{{- $_ := required "kafka.sasl.existingSecret is required when kafka.sasl.enabled is true" .Values.kafka.sasl.existingSecret }}
{{- $_ := set $kafka "sasl.mechanism" .Values.kafka.sasl.mechanism }}
{{- end }}
{{- if $kafka }}
{{- $_ := set $cfg "kafka" $kafka }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Env vars shared by the processor and the API: SASL credentials from the Secret. */}}
{{- define "tmf-events.kafkaEnv" -}}
{{- if .Values.kafka.sasl.enabled }}
{{- $s := .Values.kafka.sasl }}
# Merged by pydantic-settings into the `kafka` mapping of config.yaml (nested delimiter "__").
- name: TMF_EVENTS_KAFKA__sasl.username
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret }}
      key: {{ $s.usernameKey }}
- name: TMF_EVENTS_KAFKA__sasl.password
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret }}
      key: {{ $s.passwordKey }}
{{- end }}
{{- end }}

{{- define "tmf-events.volumeMounts" -}}
- name: config
  mountPath: /etc/tmf-events/config.yaml
  subPath: config.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  mountPath: {{ include "tmf-events.kafkaCaDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "tmf-events.volumes" -}}
- name: config
  configMap:
    name: {{ include "tmf-events.configMapName" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- include "tmf-events.kafkaTlsVolume" . }}
{{- end }}

{{/* HTTP probes on the named port "http". */}}
{{- define "tmf-events.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: {{ .startupFailureThreshold | default 60 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}

{{/* The projected volume of the Kafka CA and client certificate, when TLS is on. */}}
{{- define "tmf-events.kafkaTlsVolume" -}}
{{- if .Values.kafka.tls.enabled }}
{{- $tls := .Values.kafka.tls }}
- name: kafka-tls
  projected:
    defaultMode: 0440
    sources:
      - secret:
          name: {{ $tls.existingSecret }}
          items:
            - key: {{ $tls.caKey }}
              path: ca.crt
      {{- if and $tls.clientCertKey $tls.clientKeyKey }}
      - secret:
          name: {{ default $tls.existingSecret $tls.clientSecret }}
          items:
            - key: {{ $tls.clientCertKey }}
              path: tls.crt
            - key: {{ $tls.clientKeyKey }}
              path: tls.key
      {{- end }}
{{- end }}
{{- end }}
