{{/* Object names: "<release>-clinical-platform" unless overridden, cut to 63 characters. */}}
{{- define "cp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cp.fullname" -}}
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

{{/* The name of one service's objects; call with (dict "root" $ "service" "orders"). */}}
{{- define "cp.serviceName" -}}
{{- printf "%s-%s" (include "cp.fullname" .root | trunc 50 | trimSuffix "-") .service -}}
{{- end -}}

{{- define "cp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cp.labels" -}}
helm.sh/chart: {{ include "cp.chart" . }}
app.kubernetes.io/name: {{ include "cp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clinical-platform
{{- end -}}

{{/* Labels of one service's objects; call with (dict "root" $ "service" "orders"). */}}
{{- define "cp.serviceLabels" -}}
{{ include "cp.labels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "cp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "cp.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The environment variable prefix of a service's own settings: ORDERS_, GATEWAY_ ... */}}
{{- define "cp.envPrefix" -}}
{{- printf "%s_" (upper .) -}}
{{- end -}}

{{/* The security context of every container: non-root, read-only root, nothing extra. */}}
{{- define "cp.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "cp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Zone and node spread of one service's pods; call with (dict "root" $ "service" "orders"). */}}
{{- define "cp.topologySpread" -}}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: {{ .root.Values.topologySpread.zoneWhenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "cp.selectorLabels" . | nindent 6 }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: {{ .root.Values.topologySpread.nodeWhenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "cp.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* Probes on the standard health service (the server sets NOT_SERVING before it stops, and
while Vault is sealed, its writer fenced or a projection crash-looping): the kubelet's gRPC probe
speaks plaintext only, so over mutual TLS the pod asks it itself with its own certificate.
Readiness wants SERVING; liveness ("alive": true) only an answer, so an outage of a dependency
makes a pod unready, never restarts it. Call with (dict "root" $ "service" "orders"). */}}
{{- define "cp.probeCheck" -}}
{{- if and .alive (not .root.Values.grpcTls.enabled) -}}
tcpSocket:
  port: {{ .root.Values.grpcPort }}
{{- else if .root.Values.grpcTls.enabled -}}
exec:
  command:
    - python
    - -m
    - clinical_platform.healthcheck
    - --port={{ .root.Values.grpcPort }}
    - --cert=/etc/clinical/grpc-tls/tls.crt
    - --key=/etc/clinical/grpc-tls/tls.key
    - --ca=/etc/clinical/grpc-tls/ca.crt
    - --server-name={{ include "cp.serviceName" . }}
    {{- if .alive }}
    - --answering
    {{- end }}
timeoutSeconds: 5
{{- else -}}
grpc:
  port: {{ .root.Values.grpcPort }}
{{- end -}}
{{- end -}}

{{- define "cp.probes" -}}
startupProbe:
  {{- include "cp.probeCheck" . | nindent 2 }}
  periodSeconds: 5
  failureThreshold: 60
readinessProbe:
  {{- include "cp.probeCheck" . | nindent 2 }}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  {{- include "cp.probeCheck" (merge (dict "alive" true) .) | nindent 2 }}
  periodSeconds: 10
  failureThreshold: 6
{{- end -}}

{{/* The config checksum that rolls the pods when the shared configuration changes. */}}
{{- define "cp.configChecksum" -}}
{{- include (print .Template.BasePath "/configmap.yaml") . | sha256sum -}}
{{- end -}}

{{/* NetworkPolicy peers (to or from) of a {namespaceLabels, podLabels, cidrs} value. */}}
{{- define "cp.peers" -}}
{{- $peers := list -}}
{{- if or .namespaceLabels .podLabels -}}
{{- $peer := dict -}}
{{- if .namespaceLabels -}}
{{- $_ := set $peer "namespaceSelector" (dict "matchLabels" .namespaceLabels) -}}
{{- end -}}
{{- if .podLabels -}}
{{- $_ := set $peer "podSelector" (dict "matchLabels" .podLabels) -}}
{{- end -}}
{{- $peers = append $peers $peer -}}
{{- end -}}
{{- range .cidrs -}}
{{- $peers = append $peers (dict "ipBlock" (dict "cidr" .)) -}}
{{- end -}}
{{- toYaml $peers -}}
{{- end -}}

{{/* The enabled services, as a JSON list: the record services, then the gateway. */}}
{{- define "cp.enabledServices" -}}
{{- $enabled := list -}}
{{- range $name := list "patient" "orders" "results" "notify" "audit" -}}
{{- if (index $.Values.services $name).enabled -}}
{{- $enabled = append $enabled $name -}}
{{- end -}}
{{- end -}}
{{- if .Values.gateway.enabled -}}
{{- $enabled = append $enabled "gateway" -}}
{{- end -}}
{{- toJson $enabled -}}
{{- end -}}

{{/* Secret-fed variables of a service: its Kafka SCRAM credentials and, for the record
services, MongoDB's URL. */}}
{{- define "cp.secretEnv" -}}
{{- $kafka := .root.Values.kafka -}}
{{- if eq $kafka.securityProtocol "SASL_SSL" -}}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s%s" $kafka.credentialsSecretPrefix .service }}
      key: username
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s%s" $kafka.credentialsSecretPrefix .service }}
      key: password
{{ end -}}
{{- if .root.Values.grpcTls.enabled -}}
{{- $prefix := include "cp.envPrefix" .service -}}
- name: {{ $prefix }}GRPC_TLS_CERT_FILE
  value: /etc/clinical/grpc-tls/tls.crt
- name: {{ $prefix }}GRPC_TLS_KEY_FILE
  value: /etc/clinical/grpc-tls/tls.key
- name: {{ $prefix }}GRPC_TLS_CA_FILE
  value: /etc/clinical/grpc-tls/ca.crt
{{ end -}}
{{- if or (ne .service "gateway") .root.Values.gateway.export.enabled -}}
- name: MONGODB_URL
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.mongodb.urlSecret }}
      key: {{ .root.Values.mongodb.urlSecretKey }}
{{- end -}}
{{- end -}}

{{- define "cp.secretMounts" -}}
{{- if .root.Values.grpcTls.enabled -}}
- name: grpc-tls
  mountPath: /etc/clinical/grpc-tls
  readOnly: true
{{ end -}}
{{- if eq .root.Values.kafka.securityProtocol "SASL_SSL" -}}
- name: kafka-ca
  mountPath: /etc/clinical/kafka
  readOnly: true
{{ end -}}
{{- if eq .service "gateway" -}}
- name: signing-keys
  mountPath: /etc/clinical/gateway
  readOnly: true
{{- end -}}
{{- end -}}

{{- define "cp.secretVolumes" -}}
{{- if .root.Values.grpcTls.enabled -}}
- name: grpc-tls
  secret:
    secretName: {{ printf "%s%s" .root.Values.grpcTls.secretPrefix .service }}
    defaultMode: 0440
{{ end -}}
{{- if eq .root.Values.kafka.securityProtocol "SASL_SSL" -}}
- name: kafka-ca
  secret:
    secretName: {{ .root.Values.kafka.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{ end -}}
{{- if eq .service "gateway" -}}
- name: signing-keys
  secret:
    secretName: {{ .root.Values.gateway.signingKeySecret }}
    defaultMode: 0440
{{- end -}}
{{- end -}}
