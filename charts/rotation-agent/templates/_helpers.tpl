{{/* Names and labels. */}}
{{- define "rotation-agent.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rotation-agent.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "rotation-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rotation-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rotation-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "rotation-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rotation-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rotation-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rotation-agent.inventoryConfigMap" -}}
{{- default (printf "%s-inventory" (include "rotation-agent.fullname" .)) .Values.existingInventoryConfigMap }}
{{- end }}

{{- define "rotation-agent.hasInventory" -}}
{{- if or .Values.inventory .Values.existingInventoryConfigMap }}true{{ end }}
{{- end }}

{{/* Where files the agent reads are mounted. */}}
{{- define "rotation-agent.paths" -}}
inventory: /etc/rotation-agent/inventory
vaultCA: /etc/rotation-agent/vault-ca
vaultAuth: /etc/rotation-agent/vault-auth
vaultToken: /var/run/secrets/rotation-agent/vault
nats: /etc/rotation-agent/nats
natsTLS: /etc/rotation-agent/nats-tls
sidecarSinks: /etc/rotation-agent/sidecar
evidenceKey: /etc/rotation-agent/evidence-key
{{- end }}

{{- define "rotation-agent.sinksConfigMap" -}}
{{- printf "%s-sinks" (include "rotation-agent.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The agent's environment: every setting the chart models, then agent.extraEnv. */}}
{{- define "rotation-agent.env" -}}
{{- $p := include "rotation-agent.paths" . | fromYaml -}}
{{- $v := .Values.vault -}}
{{- $n := .Values.nats -}}
- name: ROTATION_AGENT_AGENT_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: ROTATION_AGENT_LOG_LEVEL
  value: {{ .Values.agent.logLevel | quote }}
- name: ROTATION_AGENT_SUBJECT_PREFIX
  value: {{ .Values.agent.subjectPrefix | quote }}
- name: ROTATION_AGENT_SHUTDOWN_TIMEOUT
  value: {{ .Values.agent.shutdownTimeout | quote }}
- name: ROTATION_AGENT_METRICS_LISTEN
  value: {{ printf ":%d" (int .Values.metrics.port) | quote }}
{{- if include "rotation-agent.hasInventory" . }}
- name: ROTATION_AGENT_INVENTORY_FILE
  value: {{ printf "%s/inventory.yaml" $p.inventory | quote }}
{{- end }}
- name: ROTATION_AGENT_VAULT_ADDR
  value: {{ required "vault.addr is required (for example https://vault.vault.svc:8200)" $v.addr | quote }}
{{- with $v.namespace }}
- name: ROTATION_AGENT_VAULT_NAMESPACE
  value: {{ . | quote }}
{{- end }}
{{- if or $v.ca.secretName $v.ca.configMapName }}
- name: ROTATION_AGENT_VAULT_CA_CERT
  value: {{ printf "%s/%s" $p.vaultCA $v.ca.key | quote }}
{{- end }}
- name: ROTATION_AGENT_VAULT_AUTH_METHOD
  value: {{ $v.auth.method | quote }}
{{- if eq $v.auth.method "kubernetes" }}
- name: ROTATION_AGENT_VAULT_KUBERNETES_ROLE
  value: {{ required "vault.auth.kubernetes.role is required" $v.auth.kubernetes.role | quote }}
- name: ROTATION_AGENT_VAULT_KUBERNETES_MOUNT
  value: {{ $v.auth.kubernetes.mount | quote }}
{{- if $v.auth.kubernetes.audience }}
- name: ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE
  value: {{ printf "%s/token" $p.vaultToken | quote }}
{{- end }}
{{- else if eq $v.auth.method "approle" }}
- name: ROTATION_AGENT_VAULT_APP_ROLE_MOUNT
  value: {{ $v.auth.approle.mount | quote }}
- name: ROTATION_AGENT_VAULT_APP_ROLE_ROLE_ID
  value: {{ required "vault.auth.approle.roleId is required for the approle method" $v.auth.approle.roleId | quote }}
- name: ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_FILE
  value: {{ printf "%s/%s" $p.vaultAuth $v.auth.approle.secretIdKey | quote }}
- name: ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_WRAPPED
  value: {{ $v.auth.approle.wrapped | quote }}
{{- else if eq $v.auth.method "token" }}
- name: ROTATION_AGENT_VAULT_TOKEN_FILE
  value: {{ printf "%s/%s" $p.vaultAuth $v.auth.token.key | quote }}
{{- end }}
- name: ROTATION_AGENT_NATS_URL
  value: {{ join "," $n.urls | quote }}
- name: ROTATION_AGENT_NATS_REPLICAS
  value: {{ $n.streamReplicas | quote }}
- name: ROTATION_AGENT_NATS_BIND_STREAMS
  value: {{ $n.bindStreams | quote }}
- name: ROTATION_AGENT_NATS_CONSUMER
  value: {{ $n.consumer | quote }}
{{- if eq $n.auth.type "creds" }}
- name: ROTATION_AGENT_NATS_CREDS_FILE
  value: {{ printf "%s/%s" $p.nats $n.auth.credsKey | quote }}
{{- else if eq $n.auth.type "nkey" }}
- name: ROTATION_AGENT_NATS_NKEY_SEED_FILE
  value: {{ printf "%s/%s" $p.nats $n.auth.nkeySeedKey | quote }}
{{- else if eq $n.auth.type "userPassword" }}
- name: ROTATION_AGENT_NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ $n.auth.secretName | quote }}
      key: {{ $n.auth.userKey | quote }}
- name: ROTATION_AGENT_NATS_PASSWORD_FILE
  value: {{ printf "%s/%s" $p.nats $n.auth.passwordKey | quote }}
{{- else if eq $n.auth.type "token" }}
- name: ROTATION_AGENT_NATS_TOKEN_FILE
  value: {{ printf "%s/%s" $p.nats $n.auth.tokenKey | quote }}
{{- end }}
{{- if $n.tls.secretName }}
- name: ROTATION_AGENT_NATS_CA_CERT
  value: {{ printf "%s/%s" $p.natsTLS $n.tls.caKey | quote }}
{{- if $n.tls.certKey }}
- name: ROTATION_AGENT_NATS_CERT
  value: {{ printf "%s/%s" $p.natsTLS $n.tls.certKey | quote }}
- name: ROTATION_AGENT_NATS_KEY
  value: {{ printf "%s/%s" $p.natsTLS $n.tls.keyKey | quote }}
{{- end }}
{{- end }}
{{- $e := .Values.evidence }}
- name: ROTATION_AGENT_EVIDENCE_SIGNER
  value: {{ $e.signer | quote }}
{{- if eq $e.signer "transit" }}
- name: ROTATION_AGENT_EVIDENCE_TRANSIT_MOUNT
  value: {{ $e.transitMount | quote }}
- name: ROTATION_AGENT_EVIDENCE_TRANSIT_KEY
  value: {{ $e.transitKey | quote }}
{{- else if eq $e.signer "file" }}
- name: ROTATION_AGENT_EVIDENCE_KEY_FILE
  value: {{ printf "%s/%s" $p.evidenceKey $e.file.key | quote }}
{{- end }}
- name: ROTATION_AGENT_EVIDENCE_PROBE_CAPABILITIES
  value: {{ $e.probeCapabilities | quote }}
{{- if eq .Values.mode "sidecar" }}
{{- $s := .Values.sidecar }}
- name: ROTATION_AGENT_SIDECAR_APP
  value: {{ required "sidecar.app is required in sidecar mode" $s.app | quote }}
- name: ROTATION_AGENT_SIDECAR_SINKS_FILE
  value: {{ printf "%s/sinks.yaml" $p.sidecarSinks | quote }}
- name: ROTATION_AGENT_SIDECAR_NOTIFY
  value: {{ $s.notify.kind | quote }}
{{- if eq $s.notify.kind "signal" }}
- name: ROTATION_AGENT_SIDECAR_NOTIFY_SIGNAL
  value: {{ $s.notify.signal | quote }}
{{- with $s.notify.pidFile }}
- name: ROTATION_AGENT_SIDECAR_NOTIFY_PID_FILE
  value: {{ . | quote }}
{{- end }}
{{- with $s.notify.process }}
- name: ROTATION_AGENT_SIDECAR_NOTIFY_PROCESS
  value: {{ . | quote }}
{{- end }}
{{- else if eq $s.notify.kind "http" }}
- name: ROTATION_AGENT_SIDECAR_NOTIFY_URL
  value: {{ required "sidecar.notify.url is required with notify.kind http" $s.notify.url | quote }}
{{- else if eq $s.notify.kind "command" }}
- name: ROTATION_AGENT_SIDECAR_NOTIFY_COMMAND
  value: {{ join "," (required "sidecar.notify.command is required with notify.kind command" $s.notify.command) | quote }}
{{- end }}
- name: ROTATION_AGENT_SIDECAR_CONFIRM
  value: {{ $s.confirm.kind | quote }}
{{- if eq $s.confirm.kind "health" }}
- name: ROTATION_AGENT_SIDECAR_HEALTH_URL
  value: {{ required "sidecar.confirm.healthUrl is required with confirm.kind health" $s.confirm.healthUrl | quote }}
{{- end }}
- name: ROTATION_AGENT_SIDECAR_CONFIRM_TIMEOUT
  value: {{ $s.confirm.timeout | quote }}
- name: ROTATION_AGENT_SIDECAR_CONFIRM_INTERVAL
  value: {{ $s.confirm.interval | quote }}
{{- end }}
{{- with .Values.agent.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The volumes the container mounts. */}}
{{- define "rotation-agent.volumes" -}}
{{- $v := .Values.vault -}}
{{- $n := .Values.nats -}}
- name: tmp
  emptyDir:
    sizeLimit: 16Mi
{{- if eq .Values.mode "sidecar" }}
# The files the agent writes for the application: in memory, never on a node's disk.
- name: rotation-credentials
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.sidecar.sizeLimit }}
- name: rotation-sinks
  configMap:
    name: {{ include "rotation-agent.sinksConfigMap" . }}
{{- end }}
{{- if include "rotation-agent.hasInventory" . }}
- name: inventory
  configMap:
    name: {{ include "rotation-agent.inventoryConfigMap" . }}
{{- end }}
{{- if $v.ca.secretName }}
- name: vault-ca
  secret:
    secretName: {{ $v.ca.secretName }}
{{- else if $v.ca.configMapName }}
- name: vault-ca
  configMap:
    name: {{ $v.ca.configMapName }}
{{- end }}
{{- if eq $v.auth.method "approle" }}
- name: vault-auth
  secret:
    secretName: {{ required "vault.auth.approle.secretName is required for the approle method" $v.auth.approle.secretName }}
    defaultMode: 0400
{{- else if eq $v.auth.method "token" }}
- name: vault-auth
  secret:
    secretName: {{ required "vault.auth.token.secretName is required for the token method" $v.auth.token.secretName }}
    defaultMode: 0400
{{- else if and (eq $v.auth.method "kubernetes") $v.auth.kubernetes.audience }}
- name: vault-token
  projected:
    sources:
      - serviceAccountToken:
          path: token
          audience: {{ $v.auth.kubernetes.audience }}
          expirationSeconds: 3600
{{- end }}
{{- if ne $n.auth.type "none" }}
- name: nats-auth
  secret:
    secretName: {{ required "nats.auth.secretName is required when nats.auth.type is not none" $n.auth.secretName }}
    defaultMode: 0400
{{- end }}
{{- if $n.tls.secretName }}
- name: nats-tls
  secret:
    secretName: {{ $n.tls.secretName }}
    defaultMode: 0400
{{- end }}
{{- if eq .Values.evidence.signer "file" }}
- name: evidence-key
  secret:
    secretName: {{ required "evidence.file.secretName is required for the file signer" .Values.evidence.file.secretName }}
    defaultMode: 0400
{{- end }}
{{- end }}

{{- define "rotation-agent.volumeMounts" -}}
{{- $p := include "rotation-agent.paths" . | fromYaml -}}
{{- $v := .Values.vault -}}
{{- $n := .Values.nats -}}
- name: tmp
  mountPath: /tmp
{{- if eq .Values.mode "sidecar" }}
- name: rotation-credentials
  mountPath: {{ .Values.sidecar.mountPath }}
- name: rotation-sinks
  mountPath: {{ $p.sidecarSinks }}
  readOnly: true
{{- end }}
{{- if include "rotation-agent.hasInventory" . }}
# A directory mount (no subPath), so ConfigMap updates reach the agent, which reloads them.
- name: inventory
  mountPath: {{ $p.inventory }}
  readOnly: true
{{- end }}
{{- if or $v.ca.secretName $v.ca.configMapName }}
- name: vault-ca
  mountPath: {{ $p.vaultCA }}
  readOnly: true
{{- end }}
{{- if or (eq $v.auth.method "approle") (eq $v.auth.method "token") }}
- name: vault-auth
  mountPath: {{ $p.vaultAuth }}
  readOnly: true
{{- else if and (eq $v.auth.method "kubernetes") $v.auth.kubernetes.audience }}
- name: vault-token
  mountPath: {{ $p.vaultToken }}
  readOnly: true
{{- end }}
{{- if ne $n.auth.type "none" }}
- name: nats-auth
  mountPath: {{ $p.nats }}
  readOnly: true
{{- end }}
{{- if $n.tls.secretName }}
- name: nats-tls
  mountPath: {{ $p.natsTLS }}
  readOnly: true
{{- end }}
{{- if eq .Values.evidence.signer "file" }}
- name: evidence-key
  mountPath: {{ $p.evidenceKey }}
  readOnly: true
{{- end }}
{{- end }}

{{/* The agent's container, shared by every mode. */}}
{{- define "rotation-agent.container" -}}
name: rotation-agent
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["run"]
env:
  {{- include "rotation-agent.env" . | nindent 2 }}
ports:
  - name: metrics
    containerPort: {{ .Values.metrics.port }}
    protocol: TCP
livenessProbe:
  {{- toYaml .Values.livenessProbe | nindent 2 }}
{{- if ne .Values.mode "sidecar" }}
readinessProbe:
  {{- toYaml .Values.readinessProbe | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
volumeMounts:
  {{- include "rotation-agent.volumeMounts" . | nindent 2 }}
{{- end }}
